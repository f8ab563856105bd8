"""One process per data directory, as etcd's file lock on its database.

Two servers on one LMDB environment would both be correct to LMDB and
wrong to etcd's clients: each keeps its own revision counter in memory, so
both hand out the same revisions and a range returns a key twice. The
first to open a data directory holds an exclusive `flock` on its
`LOCK_FILE` until it closes it; the kernel lets go of it when the process
dies, `kill -9` included. A second process waits for it, with a warning,
as etcd does (its listeners are not bound before the store opens).

The lock is a file of its own: LMDB's `lock.mdb` carries LMDB's POSIX
record locks, which closing any descriptor of that file would drop.
"""

import fcntl
import logging
import os

LOCK_FILE = "k0s-store.lock"

log = logging.getLogger("k0s_store.backend")


class DataDirLock:
    """The exclusive lock of a data directory, held from construction to `release`.

    Args:
        path: the data directory (it must exist).
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.join(path, LOCK_FILE)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning(
                    "another process is using data directory %s and holds its lock (%s); "
                    "waiting for it to exit before starting",
                    path,
                    LOCK_FILE,
                )
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Let go of the lock (closing the descriptor drops it); idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
