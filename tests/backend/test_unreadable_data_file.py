"""A data file that cannot be opened stops the server at start-up with a
one-line reason and exit status 1, not a traceback."""

import subprocess
import sys

from k0s_store.backend.lmdb_env import DATA_FILE
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest


def test_the_server_refuses_a_data_file_that_is_not_lmdbs(tmp_path):
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    store.put(PutRequest(b"key", b"value"))
    store.close()
    (data_dir / DATA_FILE).write_bytes(b"\xff" * 8192)
    argv = [sys.executable, "-m", "k0s_store", "serve", f"--data-dir={data_dir}",
            "--listen-client-urls=http://127.0.0.1:0"]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"cannot open data directory {data_dir}" in run.stderr
    assert "not an LMDB file" in run.stderr
    assert "Traceback" not in run.stderr
