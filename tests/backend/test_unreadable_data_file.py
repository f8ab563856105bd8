"""A data file that cannot be opened (not LMDB's, or cut short) stops the
server at start-up with a one-line reason and exit status 1, not a traceback
or a crash."""

import subprocess
import sys

from k0s_store.backend.lmdb_env import DATA_FILE
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest


def serve(data_dir) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "k0s_store", "serve", f"--data-dir={data_dir}",
            "--listen-client-urls=http://127.0.0.1:0"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def refused(run: subprocess.CompletedProcess, data_dir, reason: str) -> None:
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"cannot open data directory {data_dir}" in run.stderr
    assert reason in run.stderr
    assert "Traceback" not in run.stderr


def test_the_server_refuses_a_data_file_that_is_not_lmdbs(tmp_path):
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    store.put(PutRequest(b"key", b"value"))
    store.close()
    (data_dir / DATA_FILE).write_bytes(b"\xff" * 8192)
    refused(serve(data_dir), data_dir, "not an LMDB file")


def test_the_server_refuses_a_truncated_data_file(tmp_path):
    """Cut after its meta pages: LMDB alone would read past the end (SIGBUS)."""
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    for n in range(2000):
        store.put(PutRequest(b"key%d" % n, b"v" * 200))
    store.close()
    data_file = data_dir / DATA_FILE
    size = data_file.stat().st_size
    with open(data_file, "r+b") as f:
        f.truncate(size // 2)
    refused(serve(data_dir), data_dir, f"{DATA_FILE} is truncated: {size // 2} bytes")
    assert data_file.stat().st_size == size // 2  # left as it was found
