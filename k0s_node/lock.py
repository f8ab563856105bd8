"""One launcher per data directory: an exclusive ``flock`` on ``D/run/k0s-node.lock``
(the store's lock mechanism, k0s_store/backend/dir_lock.py), refused at once
when another launcher holds it."""

from pathlib import Path

from k0s_store.backend.dir_lock import FileLock, LockHeld


class AlreadyRunning(RuntimeError):
    """Another launcher holds the data directory."""


def lock_data_dir(path: Path) -> FileLock:
    """Take the launcher's lock file `path` (creating its directory), or raise
    AlreadyRunning naming the launcher that holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return FileLock(path)
    except LockHeld as held:
        raise AlreadyRunning(
            f"another k0s-node (pid {held.owner}) is running on {path.parent.parent}"
        ) from None
