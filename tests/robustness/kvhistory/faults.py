"""Faults injected into a server process while a recorded run goes on.

Each `*_fault` builds the callable `run_and_check` calls once its clients
are started; it injects its faults on a schedule (seconds after that call)
and returns a description of each.
"""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kvhistory.recorder import Client

Fault = Callable[[], list[str]]


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def restarts_fault(server, schedule: list[tuple[float, str]]) -> Fault:
    """Restart `server` at each (seconds, "sigterm" | "kill9") of `schedule`."""

    def inject() -> list[str]:
        start = time.monotonic()
        done = []
        for at, how in schedule:
            _sleep_until(start + at)
            if how == "kill9":
                server.kill9()
            else:
                server.stop()
            server.start().wait_ready()
            done.append(f"{how} restart at {at:.1f}s")
        return done

    return inject


def pause_fault(server, at: float, seconds: float) -> Fault:
    """SIGSTOP the server at `at` for `seconds`, then SIGCONT."""

    def inject() -> list[str]:
        time.sleep(at)
        os.kill(server.proc.pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(server.proc.pid, signal.SIGCONT)
        return [f"SIGSTOP for {seconds:.1f}s at {at:.1f}s"]

    return inject


def open_fds(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def connection_churn(endpoint: str, count: int, batch: int = 200) -> None:
    """Open `count` TCP connections (HTTP/2 preface sent, `batch` open at
    once) and drop them without a goodbye."""
    host, port = endpoint.rsplit(":", 1)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    for start in range(0, count, batch):
        sockets = []
        for _ in range(min(batch, count - start)):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(preface)
            sockets.append(sock)
        for sock in sockets:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # linger 0: a reset, as a client that vanished


def abuse_fault(
    server, spawn_watcher: Callable[[int], subprocess.Popen], churn: int, hold: float
) -> Fault:
    """Misbehaving clients beside the recorded ones for `hold` seconds: a
    watcher that never reads (stopped with SIGSTOP once its stream is open),
    a watcher killed mid-stream, and `churn` connections opened and dropped."""

    def inject() -> list[str]:
        deadline = time.monotonic() + hold
        slow, vanishing = spawn_watcher(901), spawn_watcher(902)
        try:
            time.sleep(1.0)
            os.kill(slow.pid, signal.SIGSTOP)
            connection_churn(server.endpoint, churn)
            vanishing.kill()
            _sleep_until(deadline)
        finally:
            for proc in (slow, vanishing):
                proc.kill()
                proc.wait()
        return [
            "a watcher that never reads",
            "a watcher killed mid-stream",
            f"{churn} connections opened and dropped",
        ]

    return inject


def full_disk_fault(server, history: Path, grow: Callable[[], None]) -> Fault:
    """Fill the disk under the server with recorded 4 KiB puts until one
    fails, let the run go on against the full disk, then `grow()` it."""

    def inject() -> list[str]:
        with open(history, "a") as out:
            filler = Client(server.endpoint, 98, 0, out)
            for number in range(20_000):
                filler.seq = number
                value = f"{number}:" + "x" * 4096
                op = filler.call("put", key=f"k/fill/{number:05d}", value=value, lease=0)
                if op.status != "ok":
                    break
            else:
                raise AssertionError("the disk never filled")
        time.sleep(1.0)  # the recorded clients meet the full disk
        grow()
        return [f"disk full after {number} puts ({op.response})", "disk grown"]

    return inject
