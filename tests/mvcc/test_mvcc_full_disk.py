"""A full disk: writes fail, nothing acknowledged is lost, and once space is
freed the store goes on.

The store's data directory sits on a 3 MiB tmpfs (mounting needs root, as in
CI; elsewhere the test is skipped); "freeing space" is growing the tmpfs.
"""

import os
import shutil
import subprocess

import pytest

from k0s_store.core import lmdb
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest

VALUE = b"x" * 4096
# LMDB reports a full disk as ENOSPC (DiskError), or as EIO when a commit's
# write came out short (mdb_page_flush): which one depends on where the pages fall.
DISK_FULL_TEXTS = ("No space left on device", "Input/output error")


@pytest.fixture
def small_disk(tmp_path):
    """A directory on a 3 MiB tmpfs, unmounted at teardown."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def _grow(disk) -> None:
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)


def _fill(store: Store) -> list[bytes]:
    """Put 4 KiB values until a write fails; the keys acknowledged before."""
    acknowledged = []
    for n in range(10_000):
        key = b"k%05d" % n
        try:
            store.put(PutRequest(key, VALUE))
        except lmdb.Error as exc:
            assert str(exc).endswith(DISK_FULL_TEXTS), exc
            return acknowledged
        acknowledged.append(key)
    pytest.fail("a 3 MiB disk took 40 MB of writes")


def _count(store: Store) -> int:
    return store.range(RangeRequest(b"k", b"l", count_only=True)).result.count


def test_full_disk_loses_nothing_acknowledged(small_disk):
    store = Store(small_disk / "data", fsync=True)
    try:
        acknowledged = _fill(store)
        assert len(acknowledged) > 100, "the disk was full far too early"
        assert store.revision == 1 + len(acknowledged)
        assert _count(store) == len(acknowledged)
        with pytest.raises(lmdb.Error) as still_full:  # fails again, changes nothing
            store.put(PutRequest(b"again", VALUE))
        assert str(still_full.value).endswith(DISK_FULL_TEXTS)
        assert store.revision == 1 + len(acknowledged)

        _grow(small_disk)
        store.delete_range(DeleteRangeRequest(b"k00000"))
        store.put(PutRequest(b"after", b"v"))
        revision = store.revision
        assert revision == 3 + len(acknowledged)
    finally:
        store.close()

    reopened = Store(small_disk / "data", fsync=True)
    try:
        assert reopened.revision == revision
        assert _count(reopened) == len(acknowledged) - 1
        last = reopened.range(RangeRequest(acknowledged[-1])).result.kvs
        assert len(last) == 1 and VALUE in last[0]
        assert reopened.range(RangeRequest(b"after")).result.count == 1
    finally:
        reopened.close()
