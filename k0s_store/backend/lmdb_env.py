"""The LMDB environment of a store: one file, eight named DBs.

Layout of <data_dir>/ (byte formats are documented where they are built:
k0s_store/mvcc/key_index.py, index.py, meta.py, lessor.py):

- `key`        revision key (codec.rev_key) -> marshalled mvccpb.KeyValue
- `index`      user key (or long-key group) -> the key's revision records
- `index_history`  older records of a short key with many (index.py)
- `meta`       current/compact revisions, cluster and member ids, alarms
- `lease`      lease id -> granted TTL
- `lease_keys` lease id + user key -> user key (keys attached to a lease)
- `auth`, `authUsers`, `authRoles`  etcd's auth buckets, byte for byte
               (k0s_store/mvcc/auth_store.py)

Beside LMDB's `data.mdb` and `lock.mdb`, `k0s-store.lock` keeps a second
process out while one has the directory open (k0s_store/backend/dir_lock.py).

Concurrency: one writer thread owns write transactions; any thread may read
through `read()`, which passes a `ReaderGate` so that the rare map growth and
the defragmentation swap can run with no transaction open, as LMDB requires.
"""

import logging
import os
import shutil
from typing import NamedTuple

from k0s_store.backend.dir_lock import LOCK_FILE, FileLock
from k0s_store.backend.gate import ReaderGate
from k0s_store.core import lmdb

log = logging.getLogger("k0s_store.backend")

DATA_FILE = "data.mdb"
_DEFRAG_DIR = "defrag.tmp"
# py-lmdb opens with MDB_NOTLS, so every open read txn holds a slot of the
# lock file's reader table (64 bytes each): size it above the transport's
# worker pool (4096 threads), or a burst of reads fails with MDB_READERS_FULL.
_MAX_READERS = 8192


class Databases(NamedTuple):
    """Handles of the named DBs (replaced when the environment is reopened)."""

    key: lmdb._Database
    index: lmdb._Database
    index_history: lmdb._Database
    meta: lmdb._Database
    lease: lmdb._Database
    lease_keys: lmdb._Database
    auth: lmdb._Database
    auth_users: lmdb._Database
    auth_roles: lmdb._Database


# LMDB names of the DBs whose name is etcd's bucket name rather than the field's.
_DB_NAMES = {"auth_users": b"authUsers", "auth_roles": b"authRoles"}


class Backend:
    """An LMDB environment with its named DBs, grown and defragmented in place.

    Args:
        path: the data directory (created if missing).
        map_size: initial virtual map size in bytes (grows on demand).
        sync: fsync on every commit (False only for benchmarks).
    """

    def __init__(self, path: str | os.PathLike, *, map_size: int, sync: bool) -> None:
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        self._sync = sync
        self._map_size = map_size
        self.gate = ReaderGate()
        self._dir_lock = FileLock(os.path.join(self.path, LOCK_FILE), on_wait=self._wait_warning)
        try:
            self._open()
        except BaseException:
            self._dir_lock.release()
            raise

    def _wait_warning(self, owner: str) -> None:
        log.warning(
            "another process (pid %s) is using data directory %s and holds its lock (%s); "
            "waiting for it to exit before starting",
            owner,
            self.path,
            LOCK_FILE,
        )

    def _open(self) -> None:
        self.env = lmdb.open(
            self.path,
            map_size=self._map_size,
            max_dbs=len(Databases._fields),
            max_readers=_MAX_READERS,
            sync=self._sync,
            metasync=self._sync,
            readahead=False,
        )
        self._map_size = self.env.info()["map_size"]
        self.page_size = self.env.stat()["psize"]
        self._open_dbs()

    def _open_dbs(self) -> None:
        """Open (create) the named DBs. A data file shorter than its last commit
        says is first lengthened with zeros: LMDB may leave pages it took from
        the end and freed again unwritten, but a file cut short (by a copy, a
        full disk) would kill the process (SIGBUS) where LMDB reads past its
        end. Zeros read as damaged pages instead; each DB's first and last
        items are read, and if that fails the file is cut back and refused."""
        path = os.path.join(self.path, DATA_FILE)
        size, needed = os.path.getsize(path), self.file_size()
        if size < needed:
            os.truncate(path, needed)
        try:
            with self.env.begin(write=True) as txn:
                self.dbs = Databases(
                    *(
                        self.env.open_db(_DB_NAMES.get(name, name.encode()), txn=txn)
                        for name in Databases._fields
                    )
                )
                if size < needed:
                    _probe(txn, self.dbs)
        except lmdb.Error as exc:
            self.env.close()
            if size >= needed:
                raise
            os.truncate(path, size)
            raise lmdb.CorruptedError(
                f"{DATA_FILE} is truncated: {size} bytes, but its last commit uses {needed} ({exc})"
            ) from None

    def read(self) -> "ReadTxn":
        """A read transaction on the last committed state (a context manager
        giving the lmdb.Transaction); never waits for the writer."""
        return ReadTxn(self)

    def begin_write(self) -> lmdb.Transaction:
        """Start the write transaction (writer thread only)."""
        return self.env.begin(write=True)

    def grow(self) -> None:
        """Double the map size; call with no write transaction open."""
        with self.gate.exclusive():
            self._map_size *= 2
            self.env.set_mapsize(self._map_size)

    def file_size(self) -> int:
        """Bytes the data file spans: its last used page (what etcd calls db size)."""
        return (self.env.info()["last_pgno"] + 1) * self.page_size

    def size_in_use(self) -> int:
        """Bytes of pages holding live data (file size minus free pages)."""
        pages = 0
        with self.read() as txn:
            stats = [self.env.stat()] + [txn.stat(db) for db in self.dbs]
        for stat in stats:
            pages += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        # Two meta pages head every LMDB file.
        return (pages + 2) * self.page_size

    def defragment(self) -> None:
        """Replace the data file by a compacting copy (no write may run meanwhile).

        Readers keep going during the copy; the swap itself holds the gate.
        """
        tmp = os.path.join(self.path, _DEFRAG_DIR)
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp)
        try:
            self.env.copy(tmp, compact=True)
            copied = os.path.join(tmp, DATA_FILE)
            _fsync_path(copied)
            with self.gate.exclusive():
                self.env.close()
                os.replace(copied, os.path.join(self.path, DATA_FILE))
                _fsync_path(self.path)
                self._open()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Close the environment once no reader is inside."""
        with self.gate.exclusive():
            self.env.close()
        self._dir_lock.release()


def _probe(txn: lmdb.Transaction, dbs: Databases) -> None:
    """Read every DB's first and last items (raises lmdb.Error on a damaged page)."""
    for db in dbs:
        cursor = txn.cursor(db=db)
        if cursor.first():
            cursor.item()
            cursor.last()
            cursor.item()


class ReadTxn:
    """`with backend.read() as txn`: passes the gate, then holds a read
    transaction. A plain class: every read pays for it, and a generator-based
    context manager costs about twice as much."""

    __slots__ = ("_backend", "_txn")

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __enter__(self) -> lmdb.Transaction:
        backend = self._backend
        backend.gate.enter()
        try:
            self._txn = backend.env.begin()
        except BaseException:
            backend.gate.leave()
            raise
        return self._txn

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._txn.abort()
        finally:
            self._backend.gate.leave()


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
