"""One launcher per data directory: an exclusive ``flock`` on ``D/run/k0s-node.lock``.

The kernel drops the lock when the launcher dies, however it dies, so a stale
file never blocks a restart. The file holds the owner's pid, for the message
a second launcher prints.
"""

import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another launcher holds the data directory."""


class DataDirLock:
    """Hold the lock for the life of this object (or until :meth:`release`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise AlreadyRunning(
                f"another k0s-node (pid {owner}) is running on {path.parent.parent}"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Unlock and close (the file stays, empty of meaning)."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
