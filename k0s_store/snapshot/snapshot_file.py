"""etcd's snapshot file: a bbolt database followed by the SHA-256 of its bytes.

Layout (etcd's Maintenance.Snapshot stream, saved as is by `etcdctl snapshot
save`):

    database bytes (a bbolt file, a multiple of its 4096-byte page size)
    | sha256 of the database bytes (32 bytes)

As etcdctl does, a file has the trailer when its size % 512 == 32 (a bbolt
file alone is a multiple of 512). An etcd member's `member/snap/db` has none.
"""

import hashlib
import os
from collections.abc import Callable

from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.errors import SnapshotError

SHA256_SIZE = 32
_TRAILER_MODULUS = 512
_READ_CHUNK = 1 << 20


def has_trailer(size: int) -> bool:
    """True when a file of `size` bytes ends with the sha256 trailer (etcdctl's rule)."""
    return size % _TRAILER_MODULUS == SHA256_SIZE


def open_snapshot(
    path: str | os.PathLike,
    *,
    require_hash: bool = True,
    progress: Callable[[int], None] | None = None,
) -> BoltFile:
    """Open a snapshot file after checking its sha256 trailer.

    Args:
        path: the file.
        require_hash: refuse a file without the trailer (etcdctl's default;
            its --skip-hash-check turns it off).
        progress: called with the bytes hashed, then with the bytes of each
            page walked.
    """
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise SnapshotError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None
    data_size = size
    if has_trailer(size):
        data_size = size - SHA256_SIZE
        with open(path, "rb") as f:
            digest = hashlib.sha256()
            remaining = data_size
            while remaining:
                chunk = f.read(min(_READ_CHUNK, remaining))
                if not chunk:
                    raise SnapshotError(f"{os.fspath(path)} shrank while being read")
                digest.update(chunk)
                remaining -= len(chunk)
                if progress:
                    progress(len(chunk))
            expected = f.read(SHA256_SIZE)
        if digest.digest() != expected:
            raise SnapshotError(
                f"sha256 mismatch: {os.fspath(path)} is corrupt "
                f"(trailer {expected.hex()[:16]}..., data {digest.hexdigest()[:16]}...)"
            )
    elif require_hash:
        raise SnapshotError(
            f"{os.fspath(path)} has no sha256 trailer ({size} bytes): "
            "truncated, or not a snapshot (pass --skip-hash-check to accept a bare db file)"
        )
    return BoltFile(path, data_size, progress)
