"""`k0s-store serve` stops on SIGTERM whichever of its threads the kernel hands it to.

The launcher stops the store with one SIGTERM. A process-directed signal may
be delivered to any thread that does not block it (grpc's, the writer's); the
main thread must still notice it, not sleep on through it.
"""

import ctypes
import os
import platform
import signal
import subprocess
import sys

import pytest
from harness.ports import free_port

_SYS_TGKILL = 234  # x86_64's number of tgkill(2): send a signal to one thread

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="tgkill's syscall number is known for x86_64 only"
)


def _tgkill(pid: int, tid: int, signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def test_sigterm_delivered_to_a_worker_thread_stops_the_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "k0s_store", "serve", f"--data-dir={tmp_path / 'data'}",
         f"--listen-client-urls=http://127.0.0.1:{port}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if "ready to serve client requests" in line:
                break
        workers = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert workers
        _tgkill(proc.pid, workers[0], signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
