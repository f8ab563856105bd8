"""One process per data directory: a second holder waits for the first, or is refused."""

import logging
import os
import threading

import pytest

from k0s_store.backend import Backend
from k0s_store.backend.dir_lock import LOCK_FILE, FileLock, LockHeld

WAIT_S = 5.0
MAP_SIZE = 64 * 1024 * 1024


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    first = FileLock(tmp_path / "a.lock")
    with pytest.raises(LockHeld) as refused:
        FileLock(tmp_path / "a.lock")
    assert refused.value.owner == str(os.getpid())
    first.release()
    FileLock(tmp_path / "a.lock").release()  # free again
    first.release()  # idempotent


def test_a_second_backend_waits_for_the_first_to_close(tmp_path, caplog):
    first = Backend(tmp_path, map_size=MAP_SIZE, sync=False)
    second: list[Backend] = []
    opener = threading.Thread(
        target=lambda: second.append(Backend(tmp_path, map_size=MAP_SIZE, sync=False))
    )
    with caplog.at_level(logging.WARNING, logger="k0s_store.backend"):
        opener.start()
        opener.join(0.5)
        assert opener.is_alive(), "a second backend opened the directory beside the first"
        first.close()
        opener.join(WAIT_S)
    assert not opener.is_alive(), "the directory was not handed over once closed"
    assert f"pid {os.getpid()}" in caplog.text and "waiting for it to exit" in caplog.text
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    second[0].close()
