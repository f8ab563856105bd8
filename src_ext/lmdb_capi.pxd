# cython: language_level=3
"""Declarations of LMDB's C API (Debian's liblmdb-dev, <lmdb.h>) that the
binding (lmdb.pyx) and the compiled storage path call."""

from posix.types cimport mode_t


cdef extern from "lmdb.h" nogil:
    ctypedef struct MDB_env:
        pass
    ctypedef struct MDB_txn:
        pass
    ctypedef struct MDB_cursor:
        pass
    ctypedef unsigned int MDB_dbi

    ctypedef struct MDB_val:
        size_t mv_size
        void* mv_data

    ctypedef struct MDB_stat:
        unsigned int ms_psize
        unsigned int ms_depth
        size_t ms_branch_pages
        size_t ms_leaf_pages
        size_t ms_overflow_pages
        size_t ms_entries

    ctypedef struct MDB_envinfo:
        void* me_mapaddr
        size_t me_mapsize
        size_t me_last_pgno
        size_t me_last_txnid
        unsigned int me_maxreaders
        unsigned int me_numreaders

    ctypedef enum MDB_cursor_op:
        MDB_FIRST
        MDB_FIRST_DUP
        MDB_GET_BOTH
        MDB_GET_BOTH_RANGE
        MDB_GET_CURRENT
        MDB_GET_MULTIPLE
        MDB_LAST
        MDB_LAST_DUP
        MDB_NEXT
        MDB_NEXT_DUP
        MDB_NEXT_MULTIPLE
        MDB_NEXT_NODUP
        MDB_PREV
        MDB_PREV_DUP
        MDB_PREV_NODUP
        MDB_SET
        MDB_SET_KEY
        MDB_SET_RANGE

    enum:
        # mdb_env_open flags
        MDB_NOSUBDIR
        MDB_NOSYNC
        MDB_RDONLY
        MDB_NOMETASYNC
        MDB_WRITEMAP
        MDB_MAPASYNC
        MDB_NOTLS
        MDB_NOLOCK
        MDB_NORDAHEAD
        MDB_NOMEMINIT
        # mdb_dbi_open flags
        MDB_REVERSEKEY
        MDB_DUPSORT
        MDB_INTEGERKEY
        MDB_DUPFIXED
        MDB_INTEGERDUP
        MDB_CREATE
        # mdb_put flags
        MDB_NOOVERWRITE
        MDB_NODUPDATA
        MDB_CURRENT
        MDB_APPEND
        MDB_APPENDDUP
        # mdb_env_copy2 flags
        MDB_CP_COMPACT
        # return codes
        MDB_SUCCESS
        MDB_KEYEXIST
        MDB_NOTFOUND
        MDB_PAGE_NOTFOUND
        MDB_CORRUPTED
        MDB_PANIC
        MDB_VERSION_MISMATCH
        MDB_INVALID
        MDB_MAP_FULL
        MDB_DBS_FULL
        MDB_READERS_FULL
        MDB_TLS_FULL
        MDB_TXN_FULL
        MDB_CURSOR_FULL
        MDB_PAGE_FULL
        MDB_MAP_RESIZED
        MDB_INCOMPATIBLE
        MDB_BAD_RSLOT
        MDB_BAD_TXN
        MDB_BAD_VALSIZE
        MDB_BAD_DBI
        MDB_VERSION_MAJOR
        MDB_VERSION_MINOR
        MDB_VERSION_PATCH

    char* mdb_strerror(int err)

    int mdb_env_create(MDB_env** env)
    int mdb_env_open(MDB_env* env, const char* path, unsigned int flags, mode_t mode)
    int mdb_env_copy2(MDB_env* env, const char* path, unsigned int flags)
    int mdb_env_stat(MDB_env* env, MDB_stat* stat)
    int mdb_env_info(MDB_env* env, MDB_envinfo* stat)
    int mdb_env_sync(MDB_env* env, int force)
    void mdb_env_close(MDB_env* env)
    int mdb_env_get_flags(MDB_env* env, unsigned int* flags)
    int mdb_env_get_path(MDB_env* env, const char** path)
    int mdb_env_set_mapsize(MDB_env* env, size_t size)
    int mdb_env_set_maxreaders(MDB_env* env, unsigned int readers)
    int mdb_env_get_maxreaders(MDB_env* env, unsigned int* readers)
    int mdb_env_set_maxdbs(MDB_env* env, MDB_dbi dbs)
    int mdb_env_get_maxkeysize(MDB_env* env)
    int mdb_reader_check(MDB_env* env, int* dead)

    int mdb_txn_begin(MDB_env* env, MDB_txn* parent, unsigned int flags, MDB_txn** txn)
    size_t mdb_txn_id(MDB_txn* txn)
    int mdb_txn_commit(MDB_txn* txn)
    void mdb_txn_abort(MDB_txn* txn)
    void mdb_txn_reset(MDB_txn* txn)
    int mdb_txn_renew(MDB_txn* txn)

    int mdb_dbi_open(MDB_txn* txn, const char* name, unsigned int flags, MDB_dbi* dbi)
    int mdb_stat(MDB_txn* txn, MDB_dbi dbi, MDB_stat* stat)
    int mdb_dbi_flags(MDB_txn* txn, MDB_dbi dbi, unsigned int* flags)
    int mdb_drop(MDB_txn* txn, MDB_dbi dbi, int delete)

    int mdb_get(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data)
    int mdb_put(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data, unsigned int flags)
    int mdb_del(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data)

    int mdb_cursor_open(MDB_txn* txn, MDB_dbi dbi, MDB_cursor** cursor)
    void mdb_cursor_close(MDB_cursor* cursor)
    int mdb_cursor_get(MDB_cursor* cursor, MDB_val* key, MDB_val* data, MDB_cursor_op op)
    int mdb_cursor_put(MDB_cursor* cursor, MDB_val* key, MDB_val* data, unsigned int flags)
    int mdb_cursor_del(MDB_cursor* cursor, unsigned int flags)
    int mdb_cursor_count(MDB_cursor* cursor, size_t* countp)
