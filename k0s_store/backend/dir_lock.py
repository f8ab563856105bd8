"""One process per data directory: an exclusive `flock` on a lock file.

Two servers on one LMDB environment would both be correct to LMDB and
wrong to etcd's clients: each keeps its own revision counter in memory, so
both hand out the same revisions and a range returns a key twice. The
store holds `LOCK_FILE` in its data directory while it is open (a second
one waits for it, with a warning, as etcd waits on its database's lock; its
listeners are not bound before the store opens); the launcher (k0s_node)
holds its own lock file the same way, and refuses to wait.

The kernel lets go of a lock when its holder dies, `kill -9` included, so
a stale file never blocks a restart. The file holds the holder's pid, for
the message of the next one. The store's lock is a file of its own: LMDB's
`lock.mdb` carries LMDB's POSIX record locks, which closing any descriptor
of that file would drop.
"""

import fcntl
import os
from collections.abc import Callable

LOCK_FILE = "k0s-store.lock"


class LockHeld(Exception):
    """Another process holds the lock.

    Attributes:
        owner: the pid it wrote in the file ("unknown" if none).
    """

    def __init__(self, owner: str) -> None:
        super().__init__(f"held by pid {owner}")
        self.owner = owner


class FileLock:
    """An exclusive `flock` on `path` (created if missing), held from
    construction until `release`.

    Args:
        path: the lock file.
        on_wait: if another process holds the lock, called with its pid before
            waiting for it; None: raise LockHeld instead of waiting.
    """

    def __init__(
        self, path: str | os.PathLike, on_wait: Callable[[str], None] | None = None
    ) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
                if on_wait is None:
                    raise LockHeld(owner) from None
                on_wait(owner)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Unlock and close (the file stays); idempotent."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
