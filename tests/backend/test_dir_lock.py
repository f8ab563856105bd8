"""One process per data directory: a second opener waits for the first."""

import logging
import threading

from k0s_store.backend.dir_lock import LOCK_FILE, DataDirLock

WAIT_S = 5.0


def test_second_lock_waits_for_the_first_to_release(tmp_path, caplog):
    first = DataDirLock(str(tmp_path))
    second: list[DataDirLock] = []
    taker = threading.Thread(target=lambda: second.append(DataDirLock(str(tmp_path))))
    with caplog.at_level(logging.WARNING, logger="k0s_store.backend"):
        taker.start()
        taker.join(0.5)
        assert taker.is_alive(), "a second holder got the lock while the first held it"
        first.release()
        taker.join(WAIT_S)
    assert not taker.is_alive(), "the lock was not handed over once released"
    assert "waiting for it to exit" in caplog.text
    assert (tmp_path / LOCK_FILE).exists()
    second[0].release()
    second[0].release()  # idempotent


def test_lock_is_free_again_after_release(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="k0s_store.backend"):
        DataDirLock(str(tmp_path)).release()
        DataDirLock(str(tmp_path)).release()
    assert "waiting" not in caplog.text
