# cython: language_level=3
"""Our LMDB binding over Debian's liblmdb: the subset of py-lmdb's API the
store uses, with py-lmdb's names and semantics.

The compiled core opens its environment through this module; the pure twin
keeps py-lmdb (k0s_store/core.py chooses). LMDB forbids two opens of one
environment in a process, and the file format is LMDB's own, so a data
directory written by either opens in the other.

Lifetimes: a Cursor holds its Transaction, a Transaction its Environment.
Each owner keeps a borrowed list of its live dependents and invalidates them
when it ends (an environment closed aborts its transactions; a transaction
ended closes its cursors), so a stale handle raises `Error` instead of
touching freed LMDB memory. Environments open with MDB_NOTLS (as py-lmdb):
read transactions are not tied to a thread. The GIL is released around
calls that may block (opening, commits with their fsync, the writer lock,
copies), not around in-memory lookups.
"""

cimport cython
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromObject,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.buffer cimport PyBUF_READ
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport PyObject
from libc.errno cimport EACCES, EAGAIN, EINVAL, ENOMEM, ENOSPC
from libc.string cimport strlen

from lmdb_capi cimport *

import os

__all__ = [
    "BadDbiError",
    "BadRslotError",
    "BadTxnError",
    "BadValsizeError",
    "CorruptedError",
    "Cursor",
    "CursorFullError",
    "DbsFullError",
    "DiskError",
    "Environment",
    "Error",
    "IncompatibleError",
    "InvalidError",
    "InvalidParameterError",
    "KeyExistsError",
    "LockError",
    "MapFullError",
    "MapResizedError",
    "MemoryError",
    "NotFoundError",
    "PageFullError",
    "PageNotFoundError",
    "PanicError",
    "ReadersFullError",
    "ReadonlyError",
    "TlsFullError",
    "Transaction",
    "TxnFullError",
    "VersionMismatchError",
    "open",
    "version",
]

# -- errors: one class per failure kind under one base (py-lmdb's names) ----


class Error(Exception):
    """An LMDB failure without a more specific class; `what` names the call,
    `code` is LMDB's return code (0 for a binding-level misuse)."""

    def __init__(self, what, code=0):
        self.what = what
        self.code = code
        self.reason = mdb_strerror(code).decode("utf-8", "replace") if code else ""
        Exception.__init__(self, f"{what}: {self.reason}" if code else what)


class KeyExistsError(Error):
    """Key/data pair already exists."""


class NotFoundError(Error):
    """No matching key/data pair found."""


class PageNotFoundError(Error):
    """Requested page not found (corruption)."""


class CorruptedError(Error):
    """Located page was of the wrong type."""


class PanicError(Error):
    """Update of meta page failed."""


class VersionMismatchError(Error):
    """Database environment version mismatch."""


class InvalidError(Error):
    """File is not an LMDB file."""


class MapFullError(Error):
    """Environment map_size limit reached."""


class DbsFullError(Error):
    """Environment max_dbs limit reached."""


class ReadersFullError(Error):
    """Environment max_readers limit reached."""


class TlsFullError(Error):
    """Thread-local storage keys full."""


class TxnFullError(Error):
    """Transaction has too many dirty pages."""


class CursorFullError(Error):
    """Internal error: cursor stack limit reached."""


class PageFullError(Error):
    """Internal error: page has no more space."""


class MapResizedError(Error):
    """Database contents grew beyond the environment's map size."""


class IncompatibleError(Error):
    """Operation and DB incompatible, or DB flags changed."""


class BadRslotError(Error):
    """Invalid reuse of a reader locktable slot."""


class BadTxnError(Error):
    """Transaction cannot recover: it must be aborted."""


class BadValsizeError(Error):
    """Too big key/data, key is empty, or wrong DUPFIXED size."""


class BadDbiError(Error):
    """The DB handle was changed unexpectedly."""


class ReadonlyError(Error):
    """A write in a read-only transaction or environment."""


class InvalidParameterError(Error):
    """An invalid parameter was given."""


class LockError(Error):
    """The environment is locked by another process."""


class MemoryError(Error):  # py-lmdb's name, shadowing the builtin here
    """Out of memory."""


class DiskError(Error):
    """No more disk space."""


_ERRORS = {
    MDB_KEYEXIST: KeyExistsError,
    MDB_NOTFOUND: NotFoundError,
    MDB_PAGE_NOTFOUND: PageNotFoundError,
    MDB_CORRUPTED: CorruptedError,
    MDB_PANIC: PanicError,
    MDB_VERSION_MISMATCH: VersionMismatchError,
    MDB_INVALID: InvalidError,
    MDB_MAP_FULL: MapFullError,
    MDB_DBS_FULL: DbsFullError,
    MDB_READERS_FULL: ReadersFullError,
    MDB_TLS_FULL: TlsFullError,
    MDB_TXN_FULL: TxnFullError,
    MDB_CURSOR_FULL: CursorFullError,
    MDB_PAGE_FULL: PageFullError,
    MDB_MAP_RESIZED: MapResizedError,
    MDB_INCOMPATIBLE: IncompatibleError,
    MDB_BAD_RSLOT: BadRslotError,
    MDB_BAD_TXN: BadTxnError,
    MDB_BAD_VALSIZE: BadValsizeError,
    MDB_BAD_DBI: BadDbiError,
    EACCES: ReadonlyError,
    EINVAL: InvalidParameterError,
    EAGAIN: LockError,
    ENOMEM: MemoryError,
    ENOSPC: DiskError,
}

# The name of Transaction.handle()'s capsule (checked by its users).
cdef const char* TXN_CAPSULE = b"k0s_store._ext.lmdb.MDB_txn"

_CLOSED = "Attempt to operate on closed/deleted/dropped object."


cdef int fail(what, int rc) except -1:
    raise _ERRORS.get(rc, Error)(what, rc)


def version():
    """(major, minor, patch) of the linked liblmdb."""
    return (MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH)


cdef inline object as_bytes(object value):
    """`value` as bytes (any buffer is copied once); TypeError for anything else."""
    return value if PyBytes_CheckExact(value) else PyBytes_FromObject(value)


cdef inline void set_val(MDB_val* val, bytes data):
    val.mv_size = PyBytes_GET_SIZE(data)
    val.mv_data = PyBytes_AS_STRING(data)


cdef inline int check_put(const MDB_val* k, const MDB_val* v, bint dupsort, what) except -1:
    """Refuse an empty key, or an empty value in a dupsort DB, as the LMDB
    releases after Debian's 0.9.24 (and so py-lmdb) do."""
    if k.mv_size == 0 or (dupsort and v.mv_size == 0):
        raise BadValsizeError(what, MDB_BAD_VALSIZE)
    return 0


cdef inline object from_val(const MDB_val* val, bint buffers):
    if buffers:
        return PyMemoryView_FromMemory(<char*>val.mv_data, val.mv_size, PyBUF_READ)
    return PyBytes_FromStringAndSize(<const char*>val.mv_data, val.mv_size)


# -- ownership: owners invalidate their dependents when they end ------------


@cython.no_gc_clear
cdef class _Node:
    """An LMDB handle owning dependents (borrowed, doubly linked) and
    depending on an owner (held)."""

    cdef _Node _owner
    cdef PyObject* _deps
    cdef PyObject* _prev
    cdef PyObject* _next

    cdef void _attach(self, _Node owner):
        self._owner = owner
        self._prev = NULL
        self._next = owner._deps
        if owner._deps != NULL:
            (<_Node>owner._deps)._prev = <PyObject*>self
        owner._deps = <PyObject*>self

    cdef void _detach(self):
        if self._owner is None:
            return
        if self._prev != NULL:
            (<_Node>self._prev)._next = self._next
        else:
            self._owner._deps = self._next
        if self._next != NULL:
            (<_Node>self._next)._prev = self._prev
        self._prev = self._next = NULL
        self._owner = None

    cdef void _end_dependents(self):
        while self._deps != NULL:
            (<_Node>self._deps)._invalidate()

    cdef void _invalidate(self):
        """Release the LMDB handle and detach (each subclass ends its own)."""
        self._detach()


# -- environment ------------------------------------------------------------


@cython.final
cdef class _Database:
    """A named (or the main) DB of an environment: LMDB's MDB_dbi."""

    cdef readonly Environment env
    cdef readonly MDB_dbi dbi  # for the compiled storage path (lmdb_kv.pyx)
    cdef unsigned int db_flags

    def flags(self, *args):
        """The DB's flags as keyword arguments of `open_db`."""
        return {
            "reverse_key": bool(self.db_flags & MDB_REVERSEKEY),
            "dupsort": bool(self.db_flags & MDB_DUPSORT),
            "integerkey": bool(self.db_flags & MDB_INTEGERKEY),
            "integerdup": bool(self.db_flags & MDB_INTEGERDUP),
            "dupfixed": bool(self.db_flags & MDB_DUPFIXED),
        }


@cython.no_gc_clear
cdef class Environment(_Node):
    """An LMDB environment (py-lmdb's `lmdb.open`): one data file, its named DBs.

    Args (as py-lmdb's): path, map_size, subdir, readonly, metasync, sync,
    map_async, mode, create, readahead, writemap, meminit, max_readers,
    max_dbs, max_spare_txns (reset read transactions kept for reuse), lock.
    """

    cdef MDB_env* env
    cdef readonly bint readonly
    cdef _Database _main
    cdef dict _dbs
    cdef list _spares  # reset read transactions, as ints (MDB_txn* addresses)
    cdef Py_ssize_t _max_spares
    cdef object __weakref__

    def __init__(self, path, map_size=10485760, subdir=True, readonly=False,
                 metasync=True, sync=True, map_async=False, mode=0o755, create=True,
                 readahead=True, writemap=False, meminit=True, max_readers=126,
                 max_dbs=0, max_spare_txns=1, lock=True):
        cdef int rc
        cdef unsigned int flags = MDB_NOTLS
        cdef bytes encoded = os.fsencode(path)
        cdef const char* c_path = encoded
        cdef unsigned int c_mode = mode & ~0o111
        self._dbs = {}
        self._spares = []
        self._max_spares = max_spare_txns
        self.readonly = readonly
        rc = mdb_env_create(&self.env)
        if rc:
            fail("mdb_env_create", rc)
        rc = mdb_env_set_mapsize(self.env, map_size)
        if rc:
            self._close_handle()
            fail("mdb_env_set_mapsize", rc)
        rc = mdb_env_set_maxreaders(self.env, max_readers)
        if rc:
            self._close_handle()
            fail("mdb_env_set_maxreaders", rc)
        rc = mdb_env_set_maxdbs(self.env, max_dbs)
        if rc:
            self._close_handle()
            fail("mdb_env_set_maxdbs", rc)
        if create and subdir and not readonly:
            os.makedirs(path, mode, exist_ok=True)
        if not subdir:
            flags |= MDB_NOSUBDIR
        if readonly:
            flags |= MDB_RDONLY
        if not metasync:
            flags |= MDB_NOMETASYNC
        if not sync:
            flags |= MDB_NOSYNC
        if map_async:
            flags |= MDB_MAPASYNC
        if not readahead:
            flags |= MDB_NORDAHEAD
        if writemap:
            flags |= MDB_WRITEMAP
        if not meminit:
            flags |= MDB_NOMEMINIT
        if not lock:
            flags |= MDB_NOLOCK
        with nogil:
            rc = mdb_env_open(self.env, c_path, flags, c_mode)
        if rc:
            self._close_handle()
            fail(path, rc)
        with self.begin() as txn:
            self._main = self._open_dbi(txn, None, 0)
        self._dbs[None] = self._main

    def __dealloc__(self):
        self._close_handle()

    cdef void _close_handle(self):
        cdef MDB_env* env = self.env
        if env == NULL:
            return
        self._end_dependents()
        while self._spares:
            mdb_txn_abort(<MDB_txn*><size_t>self._spares.pop())
        self.env = NULL
        with nogil:
            mdb_env_close(env)

    cdef inline int _check(self) except -1:
        if self.env == NULL:
            raise Error(_CLOSED)
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the environment, invalidating its transactions and cursors;
        repeated calls do nothing."""
        self._close_handle()
        self._dbs = {}
        self._main = None

    def path(self):
        """The directory (or file prefix) of the environment."""
        cdef const char* c_path
        self._check()
        rc = mdb_env_get_path(self.env, &c_path)
        if rc:
            fail("mdb_env_get_path", rc)
        return os.fsdecode(c_path[:strlen(c_path)])

    def set_mapsize(self, size_t map_size):
        """Change the map size; no transaction may be active in this process."""
        cdef int rc
        self._check()
        with nogil:
            rc = mdb_env_set_mapsize(self.env, map_size)
        if rc:
            fail("mdb_env_set_mapsize", rc)

    def sync(self, force=False):
        """Flush the data buffers to disk."""
        cdef int rc, c_force = 1 if force else 0
        self._check()
        with nogil:
            rc = mdb_env_sync(self.env, c_force)
        if rc:
            fail("mdb_env_sync", rc)

    def copy(self, path, compact=False):
        """Copy the environment (consistently) into the existing directory `path`;
        compact=True omits free pages and renumbers the rest."""
        cdef int rc
        cdef bytes encoded = os.fsencode(path)
        cdef const char* c_path = encoded
        cdef unsigned int flags = MDB_CP_COMPACT if compact else 0
        self._check()
        with nogil:
            rc = mdb_env_copy2(self.env, c_path, flags)
        if rc:
            fail("mdb_env_copy2", rc)

    def stat(self):
        """Statistics of the main DB (py-lmdb's keys)."""
        cdef MDB_stat st
        self._check()
        rc = mdb_env_stat(self.env, &st)
        if rc:
            fail("mdb_env_stat", rc)
        return stat_dict(&st)

    def info(self):
        """map_addr, map_size, last_pgno, last_txnid, max_readers, num_readers."""
        cdef MDB_envinfo info
        self._check()
        rc = mdb_env_info(self.env, &info)
        if rc:
            fail("mdb_env_info", rc)
        return {
            "map_addr": <size_t>info.me_mapaddr,
            "map_size": info.me_mapsize,
            "last_pgno": info.me_last_pgno,
            "last_txnid": info.me_last_txnid,
            "max_readers": info.me_maxreaders,
            "num_readers": info.me_numreaders,
        }

    def flags(self):
        """The environment's open options (py-lmdb's keys)."""
        cdef unsigned int f
        self._check()
        rc = mdb_env_get_flags(self.env, &f)
        if rc:
            fail("mdb_env_get_flags", rc)
        return {
            "subdir": not (f & MDB_NOSUBDIR),
            "readonly": bool(f & MDB_RDONLY),
            "metasync": not (f & MDB_NOMETASYNC),
            "sync": not (f & MDB_NOSYNC),
            "map_async": bool(f & MDB_MAPASYNC),
            "readahead": not (f & MDB_NORDAHEAD),
            "writemap": bool(f & MDB_WRITEMAP),
            "meminit": not (f & MDB_NOMEMINIT),
            "lock": not (f & MDB_NOLOCK),
        }

    def max_key_size(self):
        """The largest key LMDB accepts (511 bytes with Debian's build)."""
        self._check()
        return mdb_env_get_maxkeysize(self.env)

    def max_readers(self):
        """The size of the reader table."""
        cdef unsigned int n
        self._check()
        rc = mdb_env_get_maxreaders(self.env, &n)
        if rc:
            fail("mdb_env_get_maxreaders", rc)
        return n

    def reader_check(self):
        """Clear stale readers (of dead processes); returns how many."""
        cdef int dead = 0
        self._check()
        rc = mdb_reader_check(self.env, &dead)
        if rc:
            fail("mdb_reader_check", rc)
        return dead

    def begin(self, db=None, parent=None, write=False, buffers=False):
        """A transaction (a context manager: commits on success, aborts on error).

        Args:
            db: the default DB of get/put/delete/cursor (None: the main DB).
            parent: a write transaction to nest in.
            write: a write transaction (one at a time per environment).
            buffers: get() and cursors return read-only memoryviews into the
                map, valid until the transaction ends, instead of bytes.
        """
        return Transaction(self, db, parent, write, buffers)

    def open_db(self, key=None, txn=None, reverse_key=False, dupsort=False, create=True,
                integerkey=False, integerdup=False, dupfixed=False):
        """Open (creating it unless create=False) the named DB `key` (bytes;
        None: the main DB); handles are cached by name, as py-lmdb does.

        Without `txn`, opens in a transaction of its own (a write transaction
        when it may create the DB)."""
        cdef unsigned int flags = 0
        self._check()
        if key is not None and not isinstance(key, bytes):
            raise TypeError("open_db(): key must be bytes")
        cached = self._dbs.get(key)
        if cached is not None:
            return cached
        if reverse_key:
            flags |= MDB_REVERSEKEY
        if dupsort:
            flags |= MDB_DUPSORT
        if integerkey:
            flags |= MDB_INTEGERKEY
        if integerdup:
            flags |= MDB_INTEGERDUP
        if dupfixed:
            flags |= MDB_DUPFIXED
        if create and not self.readonly:
            flags |= MDB_CREATE
        if txn is not None:
            db = self._open_dbi(txn, key, flags)
        else:
            with self.begin(write=bool(flags & MDB_CREATE)) as own:
                db = self._open_dbi(own, key, flags)
        self._dbs[key] = db
        return db

    cdef _Database _open_dbi(self, Transaction txn, key, unsigned int flags):
        cdef _Database db = _Database.__new__(_Database)
        cdef const char* name = NULL
        cdef int rc
        txn._check()
        if key is not None:
            name = <bytes>key
        rc = mdb_dbi_open(txn.txn, name, flags, &db.dbi)
        if rc:
            fail("mdb_dbi_open", rc)
        rc = mdb_dbi_flags(txn.txn, db.dbi, &db.db_flags)
        if rc:
            fail("mdb_dbi_flags", rc)
        db.env = self
        return db

    cdef void _forget_db(self, _Database db):
        for name, cached in list(self._dbs.items()):
            if cached is db:
                del self._dbs[name]


cdef dict stat_dict(MDB_stat* st):
    return {
        "psize": st.ms_psize,
        "depth": st.ms_depth,
        "branch_pages": st.ms_branch_pages,
        "leaf_pages": st.ms_leaf_pages,
        "overflow_pages": st.ms_overflow_pages,
        "entries": st.ms_entries,
    }


def open(path, **kwargs):
    """py-lmdb's `lmdb.open`: an Environment."""
    return Environment(path, **kwargs)


# -- transactions -----------------------------------------------------------


@cython.no_gc_clear
cdef class Transaction(_Node):
    """A read or write transaction (see Environment.begin); ending it (commit,
    abort, or the end of a `with` block) closes its cursors."""

    cdef MDB_txn* txn
    cdef readonly Environment env
    cdef _Database _db
    cdef readonly bint write
    cdef bint buffers
    # Bumped by every change, so cursors know their cached item may have moved.
    cdef size_t mutations
    # Writes the compiled storage path deferred (lmdb_kv.IndexCache): called,
    # and cleared, before anything else reads or writes through this
    # transaction; dropped if it aborts.
    cdef public object pending

    def __init__(self, Environment env, db=None, parent=None, write=False, buffers=False):
        cdef MDB_txn* parent_txn = NULL
        cdef MDB_txn* txn = NULL
        cdef unsigned int flags
        cdef int rc = 0
        env._check()
        self.env = env
        self._db = env._main if db is None else db
        self.buffers = buffers
        self.write = write and not env.readonly
        if parent is not None:
            (<Transaction?>parent)._check()
            parent_txn = (<Transaction>parent).txn
        if not self.write and env._spares:
            txn = <MDB_txn*><size_t>env._spares.pop()
            rc = mdb_txn_renew(txn)
            if rc:
                mdb_txn_abort(txn)
                fail("mdb_txn_renew", rc)
        else:
            flags = 0 if self.write else MDB_RDONLY
            with nogil:
                rc = mdb_txn_begin(env.env, parent_txn, flags, &txn)
            if rc:
                fail("mdb_txn_begin", rc)
        self.txn = txn
        # A nested transaction must end before its parent.
        self._attach(env if parent is None else parent)

    def __dealloc__(self):
        if self.txn != NULL:
            self._end(False)

    cdef inline int _check(self) except -1:
        if self.txn == NULL:
            raise Error(_CLOSED)
        return 0

    cdef inline int _use(self) except -1:
        """_check, then run the pending deferred writes."""
        self._check()
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending()
        return 0

    cdef int _end(self, bint commit) except -1:
        """Close the cursors, then commit or abort; a reset read transaction
        goes back to the environment's spares."""
        cdef MDB_txn* txn = self.txn
        cdef Environment env = self.env
        cdef int rc = 0
        self.pending = None
        self._end_dependents()
        self.txn = NULL
        self._detach()
        if not self.write:
            if env.env != NULL and len(env._spares) < env._max_spares:
                mdb_txn_reset(txn)
                env._spares.append(<size_t>txn)
            else:
                mdb_txn_abort(txn)
            return 0
        if commit:
            with nogil:
                rc = mdb_txn_commit(txn)
            if rc:
                fail("mdb_txn_commit", rc)
        else:
            with nogil:
                mdb_txn_abort(txn)
        return 0

    cdef void _invalidate(self):
        if self.txn != NULL:
            self._end(False)

    cdef inline MDB_dbi _dbi(self, db) except? 0:
        cdef _Database d = self._db if db is None else <_Database?>db
        if d.env is not self.env:
            raise Error("Database handle belongs to another environment.")
        return d.dbi

    cdef inline bint _dupsort(self, db):
        return ((self._db if db is None else <_Database>db).db_flags & MDB_DUPSORT) != 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if self.txn == NULL:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def handle(self):
        """The MDB_txn* as a capsule named TXN_CAPSULE, for the compiled
        storage path of this package (lmdb_kv.pyx); valid until the
        transaction ends, which the caller must not let happen meanwhile.
        The pending deferred writes are done first."""
        self._use()
        return PyCapsule_New(self.txn, TXN_CAPSULE, NULL)

    def id(self):
        """LMDB's transaction id."""
        self._check()
        return mdb_txn_id(self.txn)

    def commit(self):
        """Commit (a write transaction: durably, unless sync=False); a read
        transaction just ends."""
        self._use()
        self._end(True)

    def abort(self):
        """Discard the transaction's changes; nothing if it already ended."""
        if self.txn != NULL:
            self._end(False)

    def stat(self, db):
        """Statistics of `db` (py-lmdb's keys)."""
        cdef MDB_stat st
        self._use()
        rc = mdb_stat(self.txn, self._dbi(db), &st)
        if rc:
            fail("mdb_stat", rc)
        return stat_dict(&st)

    def drop(self, db, delete=True):
        """Empty `db`, and with delete=True remove it (its handle is closed)."""
        self._use()
        rc = mdb_drop(self.txn, self._dbi(db), 1 if delete else 0)
        self.mutations += 1
        if rc:
            fail("mdb_drop", rc)
        if delete:
            self.env._forget_db(db)

    def get(self, key, default=None, db=None):
        """The value of `key`, or `default`."""
        cdef MDB_val k, v
        self._use()
        cdef bytes kb = as_bytes(key)
        set_val(&k, kb)
        rc = mdb_get(self.txn, self._dbi(db), &k, &v)
        if rc == 0:
            return from_val(&v, self.buffers)
        if rc == MDB_NOTFOUND:
            return default
        fail("mdb_get", rc)

    def put(self, key, value, dupdata=True, overwrite=True, append=False, db=None):
        """Store `value` under `key`; False if it was not stored because the
        key (or, in a dupsort DB, the pair) exists and that was forbidden, or
        because append=True and the key does not sort last."""
        cdef MDB_val k, v
        cdef unsigned int flags = 0
        self._use()
        cdef bytes kb = as_bytes(key)
        cdef bytes vb = as_bytes(value)
        cdef MDB_dbi dbi = self._dbi(db)
        set_val(&k, kb)
        set_val(&v, vb)
        if self.write:
            check_put(&k, &v, self._dupsort(db), "mdb_put")
        if not dupdata:
            flags |= MDB_NODUPDATA
        if not overwrite:
            flags |= MDB_NOOVERWRITE
        if append:
            flags |= MDB_APPEND
        rc = mdb_put(self.txn, dbi, &k, &v, flags)
        self.mutations += 1
        if rc == 0:
            return True
        if rc == MDB_KEYEXIST:
            return False
        fail("mdb_put", rc)

    def replace(self, key, value, db=None):
        """Store `value` under `key`; returns the previous value (the first
        duplicate in a dupsort DB, whose duplicates all go) or None."""
        with self.cursor(db) as cursor:
            return cursor.replace(key, value)

    def pop(self, key, db=None):
        """Delete `key` (every duplicate); returns its value (the first) or None."""
        with self.cursor(db) as cursor:
            return cursor.pop(key)

    def delete(self, key, value=b"", db=None):
        """Delete `key` (in a dupsort DB: only the pair with `value`, unless
        it is empty); False if there was nothing to delete."""
        cdef MDB_val k, v
        cdef MDB_val* vp = NULL
        self._use()
        cdef bytes kb = as_bytes(key)
        cdef bytes vb = as_bytes(value)
        set_val(&k, kb)
        if PyBytes_GET_SIZE(vb):
            set_val(&v, vb)
            vp = &v
        rc = mdb_del(self.txn, self._dbi(db), &k, vp)
        self.mutations += 1
        if rc == 0:
            return True
        if rc == MDB_NOTFOUND:
            return False
        fail("mdb_del", rc)

    def cursor(self, db=None):
        """A cursor over `db` (default: the transaction's DB)."""
        self._use()
        return Cursor(db if db is not None else self._db, self)


# -- cursors ----------------------------------------------------------------

cdef enum:
    ITEMS = 0
    KEYS = 1
    VALUES = 2


@cython.no_gc_clear
cdef class Cursor(_Node):
    """A position in one DB of a transaction (py-lmdb's Cursor).

    Moves return True when the cursor lands on an item; otherwise it is
    unpositioned and key()/value() give b"".
    """

    cdef MDB_cursor* cur
    cdef readonly Transaction txn
    cdef _Database db
    cdef MDB_val k
    cdef MDB_val v
    cdef bint positioned
    cdef size_t seen_mutations

    def __init__(self, _Database db, Transaction txn):
        txn._check()
        self.txn = txn
        self.db = db
        rc = mdb_cursor_open(txn.txn, txn._dbi(db), &self.cur)
        if rc:
            fail("mdb_cursor_open", rc)
        self._attach(txn)

    def __dealloc__(self):
        self._close()

    cdef void _close(self):
        if self.cur != NULL:
            mdb_cursor_close(self.cur)
            self.cur = NULL
        self.positioned = False
        self._detach()

    cdef void _invalidate(self):
        self._close()

    cdef inline int _check(self) except -1:
        if self.cur == NULL:
            raise Error(_CLOSED)
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._close()

    def close(self):
        """Close the cursor (it ends with its transaction anyway)."""
        self._close()

    cdef bint _move(self, MDB_cursor_op op) except -1:
        self._check()
        rc = mdb_cursor_get(self.cur, &self.k, &self.v, op)
        if rc == EINVAL and op == MDB_GET_CURRENT:
            rc = MDB_NOTFOUND  # nothing left under the cursor (a deleted last item)
        return self._landed(rc, "mdb_cursor_get")

    cdef bint _landed(self, int rc, what) except -1:
        self.positioned = rc == 0
        self.seen_mutations = self.txn.mutations
        if rc:
            self.k.mv_size = self.v.mv_size = 0
            if rc != MDB_NOTFOUND:
                fail(what, rc)
        return self.positioned

    cdef bint _move_to(self, MDB_cursor_op op, key, value) except -1:
        cdef bytes kb = as_bytes(key)
        cdef bytes vb = as_bytes(value)
        self._check()
        set_val(&self.k, kb)
        set_val(&self.v, vb)
        rc = mdb_cursor_get(self.cur, &self.k, &self.v, op)
        if rc == 0 and op != MDB_SET_KEY and op != MDB_SET_RANGE:
            # LMDB leaves the key (GET_BOTH: both) pointing at our arguments.
            return self._move(MDB_GET_CURRENT)
        return self._landed(rc, "mdb_cursor_get")

    cdef int _refresh(self) except -1:
        """After a change in the transaction, re-read the item under the
        cursor: the pointers cached from the map may have moved."""
        self._check()
        if self.positioned and self.seen_mutations != self.txn.mutations:
            self._move(MDB_GET_CURRENT)
        return 0

    cdef object _current(self, int what):
        self._refresh()
        if what == KEYS:
            return from_val(&self.k, self.txn.buffers)
        if what == VALUES:
            return from_val(&self.v, self.txn.buffers)
        return (from_val(&self.k, self.txn.buffers), from_val(&self.v, self.txn.buffers))

    def key(self):
        """The key under the cursor (b"" when unpositioned)."""
        return self._current(KEYS)

    def value(self):
        """The value under the cursor (b"" when unpositioned)."""
        return self._current(VALUES)

    def item(self):
        """(key, value) under the cursor."""
        return self._current(ITEMS)

    def first(self):
        """Move to the first key."""
        return self._move(MDB_FIRST)

    def last(self):
        """Move to the last key (its last duplicate)."""
        return self._move(MDB_LAST)

    def next(self):
        """Move to the next item (or the first when unpositioned)."""
        return self._move(MDB_NEXT)

    def prev(self):
        """Move to the previous item (or the last when unpositioned)."""
        return self._move(MDB_PREV)

    def first_dup(self):
        """Move to the first duplicate of the current key."""
        return self._move(MDB_FIRST_DUP)

    def last_dup(self):
        """Move to the last duplicate of the current key."""
        return self._move(MDB_LAST_DUP)

    def next_dup(self):
        """Move to the next duplicate of the current key."""
        return self._move(MDB_NEXT_DUP)

    def prev_dup(self):
        """Move to the previous duplicate of the current key."""
        return self._move(MDB_PREV_DUP)

    def next_nodup(self):
        """Move to the first duplicate of the next key."""
        return self._move(MDB_NEXT_NODUP)

    def prev_nodup(self):
        """Move to the last duplicate of the previous key."""
        return self._move(MDB_PREV_NODUP)

    def set_key(self, key):
        """Move to `key` exactly (its first duplicate)."""
        return self._move_to(MDB_SET_KEY, key, b"")

    def set_key_dup(self, key, value):
        """Move to the pair (key, value) exactly (dupsort DBs)."""
        return self._move_to(MDB_GET_BOTH, key, value)

    def set_range(self, key):
        """Move to the first key >= `key` (the first key for b"")."""
        if not len(key):
            return self._move(MDB_FIRST)
        return self._move_to(MDB_SET_RANGE, key, b"")

    def set_range_dup(self, key, value):
        """Move to the first duplicate >= `value` of `key` (dupsort DBs)."""
        return self._move_to(MDB_GET_BOTH_RANGE, key, value)

    def get(self, key, default=None):
        """Move to `key` and return its value, or `default`."""
        if self.set_key(key):
            return self.value()
        return default

    def count(self):
        """The number of duplicates of the current key."""
        cdef size_t n
        self._check()
        rc = mdb_cursor_count(self.cur, &n)
        if rc:
            fail("mdb_cursor_count", rc)
        return n

    def put(self, key, value, dupdata=True, overwrite=True, append=False):
        """Store (key, value) and move there; False as in Transaction.put."""
        cdef MDB_val k, v
        cdef unsigned int flags = 0
        self._check()
        cdef bytes kb = as_bytes(key)
        cdef bytes vb = as_bytes(value)
        set_val(&k, kb)
        set_val(&v, vb)
        if self.txn.write:
            check_put(&k, &v, self.db.db_flags & MDB_DUPSORT, "mdb_cursor_put")
        if not dupdata:
            flags |= MDB_NODUPDATA
        if not overwrite:
            flags |= MDB_NOOVERWRITE
        if append:
            flags |= MDB_APPENDDUP if self.db.db_flags & MDB_DUPSORT else MDB_APPEND
        rc = mdb_cursor_put(self.cur, &k, &v, flags)
        self.txn.mutations += 1
        if rc == MDB_KEYEXIST:
            return False
        if rc:
            fail("mdb_cursor_put", rc)
        # The cursor stands on the new item; its cached pointers are stale.
        self._move(MDB_GET_CURRENT)
        return True

    def delete(self, dupdata=False):
        """Delete the current item (with dupdata=True every duplicate of its
        key); the cursor moves to the next item. False if unpositioned."""
        self._check()
        if not self.positioned:
            return False
        rc = mdb_cursor_del(self.cur, MDB_NODUPDATA if dupdata else 0)
        self.txn.mutations += 1
        if rc:
            fail("mdb_cursor_del", rc)
        self._move(MDB_GET_CURRENT)
        return True

    def replace(self, key, value):
        """Store `value` under `key`; returns the previous value or None
        (dupsort DBs: the first duplicate; all of them are replaced)."""
        if self.db.db_flags & MDB_DUPSORT:
            old = self.value() if self.set_key(key) else None
            if old is not None:
                self.delete(True)
            self.put(key, value)
            return old
        if self.put(key, value, overwrite=False):
            return None
        # Refused: LMDB put the cursor on the existing item.
        self._move(MDB_GET_CURRENT)
        old = PyBytes_FromStringAndSize(<const char*>self.v.mv_data, self.v.mv_size)
        self.put(key, value)
        return old

    def pop(self, key):
        """Delete `key` (every duplicate); returns its value (the first) or None."""
        if not self.set_key(key):
            return None
        old = PyBytes_FromStringAndSize(<const char*>self.v.mv_data, self.v.mv_size)
        self.delete(True)
        return old

    def __iter__(self):
        return self.iternext()

    def iternext(self, keys=True, values=True):
        """Items from the current position forward (from the first when unpositioned)."""
        if not self.positioned:
            self.first()
        return _Walk(self, MDB_NEXT, keys, values)

    def iternext_dup(self, keys=False, values=True):
        """The current key's remaining duplicates."""
        return _Walk(self, MDB_NEXT_DUP, keys, values)

    def iternext_nodup(self, keys=True, values=False):
        """One item per key, forward (from the first when unpositioned)."""
        if not self.positioned:
            self.first()
        return _Walk(self, MDB_NEXT_NODUP, keys, values)

    def iterprev(self, keys=True, values=True):
        """Items from the current position backward (from the last when unpositioned)."""
        if not self.positioned:
            self.last()
        return _Walk(self, MDB_PREV, keys, values)

    def iterprev_dup(self, keys=False, values=True):
        """The current key's earlier duplicates, backward."""
        return _Walk(self, MDB_PREV_DUP, keys, values)

    def iterprev_nodup(self, keys=True, values=False):
        """One item per key, backward (from the last when unpositioned)."""
        if not self.positioned:
            self.last()
        return _Walk(self, MDB_PREV_NODUP, keys, values)


@cython.final
cdef class _Walk:
    """Yields the cursor's current item, then moves it by `op`, until it
    runs off the DB (py-lmdb's iterators)."""

    cdef Cursor cursor
    cdef MDB_cursor_op op
    cdef int what
    cdef bint started

    def __cinit__(self, Cursor cursor, MDB_cursor_op op, keys, values):
        self.cursor = cursor
        self.op = op
        self.what = ITEMS if keys and values else (KEYS if keys else VALUES)

    def __iter__(self):
        return self

    def __next__(self):
        if self.started:
            self.cursor._move(self.op)
        self.started = True
        if not self.cursor.positioned:
            raise StopIteration
        return self.cursor._current(self.what)
