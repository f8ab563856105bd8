# cython: language_level=3
"""The key index and the key DB straight through LMDB's C API (twin:
k0s_store/pure/lmdb_kv.py).

The hot paths of the store: a key's revision records from the `index` DB
(short keys, and long keys inside their group), the stored KeyValue live at
a revision, range scans over [key, end), and the two writes of a revision
(a new version of a key, a tombstone): the KeyValue under its revision key
and one more record in the key's index entry. Transactions come from our
binding (lmdb.pyx, Transaction.handle()); nothing here takes py-lmdb's.

A range scan walks the index with an LMDB cursor and reads each live
KeyValue from the `key` DB (through a second cursor), collecting pointers
into the map; only then are the values copied: into one bytes object each
(`range_live`), or straight into one marshalled RangeResponse
(`range_response`, what a Range call answers). The first SCAN_WITH_GIL
index entries are read holding the GIL (a short range would lose more
waiting to take it back); a longer scan releases it, so long LISTs run
beside other requests.

The two writes keep a short key's index entry in an `IndexCache` for the
rest of the write transaction, appended in place, and write it to the DB
once, before anything else uses the transaction (Transaction.pending): a
key written N times in one group commit costs one rewrite of its records,
not N (a hot key's records grow until compaction, and etcd's put load
writes one key). Every other entry point here runs the pending writes first.

Byte formats: k0s_store/mvcc/index.py (DB keys, long-key groups) and
k0s_store/mvcc/key_index.py (records).
"""

from cpython.buffer cimport PyBUF_READ
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from lmdb_capi cimport *
from revrecords cimport *
from wire cimport len_field_size, put_varint, put_varint_field, varint_field_size

from k0s_store._ext.codec import decode_kv, encode_kv, kv_without_value
from k0s_store._ext.lmdb import _ERRORS, Error
from k0s_store._ext.revindex import split_history

__all__ = [
    "get_live",
    "history_key",
    "index_records",
    "put_revision",
    "range_live",
    "range_response",
    "tombstone",
]

cdef enum:
    SHORT_KEY_MAX = GROUP_KEY_BYTES - 1
    SCAN_WITH_GIL = 256
    CORRUPT = -1  # a malformed index value: reported as MDB_CORRUPTED
    NEXT_TRIES = 4  # see fetch_rev
    NEXT_PAUSE = 60
    SORT_MIN = 32  # fewer found KeyValues are fetched in key order (fetch_found)

# RangeResponse's one-byte tags (field number << 3 | wire type): header (1)
# and kvs (2) length-delimited, more (3) and count (4) varints.
cdef enum:
    TAG_HEADER = 0x0A
    TAG_KVS = 0x12
    TAG_MORE = 0x18
    TAG_COUNT = 0x20

cdef const char* TXN_CAPSULE = b"k0s_store._ext.lmdb.MDB_txn"


cdef MDB_txn* txn_of(txn) except NULL:
    """The transaction's MDB_txn, its pending writes done (Transaction.handle)."""
    return <MDB_txn*>PyCapsule_GetPointer(txn.handle(), TXN_CAPSULE)


cdef inline int compare(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen) noexcept nogil:
    """Byte order of a and b (as bytes comparison in Python)."""
    cdef int c = memcmp(a, b, alen if alen < blen else blen)
    if c:
        return c
    return (alen > blen) - (alen < blen)


cdef int fail(what, int rc) except -1:
    raise _ERRORS.get(rc, Error)(what, rc)


# -- one key ---------------------------------------------------------------


cdef int find_records(MDB_txn* txn, MDB_dbi index_dbi, const uint8_t* key, size_t key_len,
                      MDB_val* records) noexcept nogil:
    """Records of `key` into `records`: 0, MDB_NOTFOUND, or an LMDB error."""
    cdef MDB_val k, v
    cdef const uint8_t* p
    cdef size_t pos = 0, n, m
    cdef int rc
    k.mv_data = <void*>key
    k.mv_size = key_len if key_len <= SHORT_KEY_MAX else GROUP_KEY_BYTES
    if key_len <= SHORT_KEY_MAX:
        return mdb_get(txn, index_dbi, &k, records)
    # A long key: its group's DB key is the first SHORT_KEY_MAX bytes + 0.
    cdef uint8_t group_key[GROUP_KEY_BYTES]
    for n in range(SHORT_KEY_MAX):
        group_key[n] = key[n]
    group_key[SHORT_KEY_MAX] = 0
    k.mv_data = group_key
    rc = mdb_get(txn, index_dbi, &k, &v)
    if rc:
        return rc
    p = <const uint8_t*>v.mv_data
    while pos < v.mv_size:
        if pos + 4 > v.mv_size:
            return MDB_CORRUPTED
        n = load_be32(p + pos)
        if pos + 8 + n > v.mv_size:
            return MDB_CORRUPTED
        m = load_be32(p + pos + 4 + n)
        if pos + 8 + n + m > v.mv_size:
            return MDB_CORRUPTED
        if n == key_len and memcmp(p + pos + 4, key, n) == 0:
            records.mv_data = <void*>(p + pos + 8 + n)
            records.mv_size = m
            return 0
        pos += 8 + n + m
    return MDB_NOTFOUND


cdef const uint8_t* live_record(MDB_txn* txn, MDB_dbi hist_dbi, const uint8_t* key,
                                size_t key_len, const MDB_val* records, uint64_t rev,
                                int* rc) noexcept nogil:
    """The record of `key` live at `rev`, from its index entry `records` or,
    when older, its history chunks: NULL if none (*rc 0) or an LMDB error (*rc)."""
    cdef const uint8_t* p = <const uint8_t*>records.mv_data
    cdef Py_ssize_t n = records.mv_size // REC_SIZE
    cdef Py_ssize_t i
    rc[0] = 0
    if records.mv_size % REC_SIZE:
        rc[0] = MDB_CORRUPTED
        return NULL
    i = find_live(p, n, rev)
    if i >= 0:
        return p + i * REC_SIZE
    if has_history(p, n) and rec_main(p) > rev:
        return history_record(txn, hist_dbi, key, key_len, rev, rc)
    return NULL


cdef const uint8_t* history_record(MDB_txn* txn, MDB_dbi hist_dbi, const uint8_t* key,
                                   size_t key_len, uint64_t rev, int* rc) noexcept nogil:
    """The record of `key` live at `rev` in its history chunks: the chunk with the
    largest first revision <= rev holds it. NULL: none (*rc 0), or an LMDB error."""
    cdef uint8_t hkey[HISTORY_KEY_MAX]
    cdef size_t size = write_history_key(hkey, key, key_len, rev + 1)
    cdef MDB_cursor* cursor
    cdef MDB_val k, v
    cdef Py_ssize_t i
    cdef const uint8_t* found = NULL
    k.mv_data = hkey
    k.mv_size = size
    rc[0] = mdb_cursor_open(txn, hist_dbi, &cursor)
    if rc[0]:
        return NULL
    rc[0] = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
    if rc[0] == 0:
        rc[0] = mdb_cursor_get(cursor, &k, &v, MDB_PREV)
    elif rc[0] == MDB_NOTFOUND:
        rc[0] = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
    if rc[0] == 0 and k.mv_size == size and memcmp(k.mv_data, hkey, size - 8) == 0:
        if v.mv_size % REC_SIZE:
            rc[0] = MDB_CORRUPTED
        else:
            i = find_live(<const uint8_t*>v.mv_data, v.mv_size // REC_SIZE, rev)
            if i >= 0:
                found = <const uint8_t*>v.mv_data + i * REC_SIZE
    if rc[0] == MDB_NOTFOUND:
        rc[0] = 0
    mdb_cursor_close(cursor)
    return found


cdef int fetch_rev(MDB_txn* txn, MDB_dbi key_dbi, const uint8_t* record, MDB_val* kv,
                   MDB_cursor* cursor=NULL, int* next_misses=NULL) noexcept nogil:
    """The stored KeyValue of a live `record` into `kv`: 0 or an LMDB error.

    A range passes a `cursor` on the key DB and asks for revisions in order
    (fetch_found), so they often follow one another: the entry after the
    cursor's is tried first (`next_misses` counts the tries that missed in a
    row: after NEXT_TRIES of them, NEXT_PAUSE keys go without a try), then
    LMDB looks on the cursor's page before it descends from the root.
    """
    cdef uint8_t rev_key[REV_KEY_LEN]
    cdef MDB_val k, next_key
    write_rev_key(rev_key, record)
    k.mv_data = rev_key
    k.mv_size = REV_KEY_LEN
    if cursor == NULL:
        return mdb_get(txn, key_dbi, &k, kv)
    if next_misses[0] < NEXT_TRIES:
        if (mdb_cursor_get(cursor, &next_key, kv, MDB_NEXT) == 0
                and next_key.mv_size == REV_KEY_LEN
                and memcmp(next_key.mv_data, rev_key, REV_KEY_LEN) == 0):
            next_misses[0] = 0
            return 0
    next_misses[0] += 1
    if next_misses[0] == NEXT_TRIES + NEXT_PAUSE:
        next_misses[0] = 0
    return mdb_cursor_get(cursor, &k, kv, MDB_SET)


def history_key(bytes key, uint64_t main):
    """The history DB key of `key`'s chunk whose first record is at `main`."""
    cdef uint8_t hkey[HISTORY_KEY_MAX]
    if PyBytes_GET_SIZE(key) > SHORT_KEY_MAX:
        raise ValueError("long keys keep no history chunks")
    return PyBytes_FromStringAndSize(
        <const char*>hkey,
        write_history_key(hkey, <const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), main))


def index_records(txn, index_db, bytes key):
    """The revision records of `key` in the `index` DB, or None."""
    cdef MDB_val records
    cdef int rc = find_records(txn_of(txn), index_db.dbi, <const uint8_t*>PyBytes_AS_STRING(key),
                               PyBytes_GET_SIZE(key), &records)
    if rc == MDB_NOTFOUND:
        return None
    if rc:
        fail("index_records", rc)
    return PyBytes_FromStringAndSize(<const char*>records.mv_data, records.mv_size)


cdef bint key_live(MDB_txn* txn, MDB_dbi index_dbi, MDB_dbi key_dbi, MDB_dbi hist_dbi,
                   bytes key, uint64_t rev, MDB_val* kv) except -1:
    """The stored KeyValue of `key` live at `rev` into `kv`: True, or False if none."""
    cdef MDB_val records
    cdef const uint8_t* k = <const uint8_t*>PyBytes_AS_STRING(key)
    cdef const uint8_t* record = NULL
    cdef int rc = find_records(txn, index_dbi, k, PyBytes_GET_SIZE(key), &records)
    if rc == 0:
        record = live_record(txn, hist_dbi, k, PyBytes_GET_SIZE(key), &records, rev, &rc)
        if record != NULL:
            rc = fetch_rev(txn, key_dbi, record, kv)
        elif rc == 0:
            rc = MDB_NOTFOUND
    if rc == MDB_NOTFOUND:
        return False
    if rc:
        fail("get_live", rc)
    return True


def get_live(txn, index_db, key_db, history_db, bytes key, uint64_t rev):
    """The stored KeyValue of `key` live at `rev`, or None."""
    cdef MDB_val kv
    if not key_live(txn_of(txn), index_db.dbi, key_db.dbi, history_db.dbi, key, rev, &kv):
        return None
    return PyBytes_FromStringAndSize(<const char*>kv.mv_data, kv.mv_size)


# -- ranges ----------------------------------------------------------------


cdef struct Scan:
    MDB_txn* txn
    MDB_cursor* cursor  # on the index DB
    MDB_cursor* kv_cursor  # on the key DB
    int next_misses  # see fetch_rev
    MDB_dbi key_dbi
    MDB_dbi hist_dbi
    const uint8_t* key
    size_t key_len
    const uint8_t* end
    size_t end_len  # 0: no upper bound
    uint64_t rev
    Py_ssize_t limit  # 0: every live key
    bint fetch
    Py_ssize_t count  # live keys seen
    MDB_val* found  # their KeyValues (pointers into the map), at most limit
    Py_ssize_t n_found
    Py_ssize_t cap_found
    bint done


cdef int visit(Scan* s, const uint8_t* ukey, size_t ulen, const MDB_val* records) noexcept nogil:
    """One indexed user key: 0 to go on, 1 past the end, else an LMDB error."""
    cdef MDB_val kv
    cdef MDB_val* grown
    cdef const uint8_t* record
    cdef int rc
    if s.end_len and compare(ukey, ulen, s.end, s.end_len) >= 0:
        return 1
    if compare(ukey, ulen, s.key, s.key_len) < 0:
        return 0
    record = live_record(s.txn, s.hist_dbi, ukey, ulen, records, s.rev, &rc)
    if rc:
        return rc
    if record == NULL:
        return 0
    s.count += 1
    if not s.fetch or (s.limit and s.n_found >= s.limit):
        return 0  # counted only
    # Its KeyValue is fetched after the walk (fetch_found): until then the
    # slot points at the live record.
    kv.mv_data = <void*>record
    kv.mv_size = REC_SIZE
    if s.n_found == s.cap_found:
        s.cap_found = s.cap_found * 2 if s.cap_found else 64
        grown = <MDB_val*>realloc(s.found, s.cap_found * sizeof(MDB_val))
        if grown == NULL:
            return MDB_PANIC
        s.found = grown
    s.found[s.n_found] = kv
    s.n_found += 1
    return 0


cdef int visit_group(Scan* s, const MDB_val* group) noexcept nogil:
    """Every long key of a group value, in order (see index.py)."""
    cdef const uint8_t* p = <const uint8_t*>group.mv_data
    cdef size_t pos = 0, n, m
    cdef MDB_val records
    cdef int rc
    while pos < group.mv_size:
        if pos + 4 > group.mv_size:
            return MDB_CORRUPTED
        n = load_be32(p + pos)
        if pos + 8 + n > group.mv_size:
            return MDB_CORRUPTED
        m = load_be32(p + pos + 4 + n)
        if pos + 8 + n + m > group.mv_size:
            return MDB_CORRUPTED
        records.mv_data = <void*>(p + pos + 8 + n)
        records.mv_size = m
        rc = visit(s, p + pos + 4, n, &records)
        if rc:
            return rc
        pos += 8 + n + m
    return 0


cdef struct Pending:
    uint64_t main
    Py_ssize_t slot


cdef Pending* sort_by_main(Pending* a, Pending* scratch, Py_ssize_t n) noexcept nogil:
    """A stable LSD radix sort of a[0:n] by `main`, a byte at a time and only
    over the bytes some main uses; returns whichever buffer holds the result."""
    cdef Py_ssize_t counts[256]
    cdef Py_ssize_t i, total, c
    cdef uint64_t top = 0
    cdef unsigned int shift = 0, digit
    cdef Pending* swap
    for i in range(n):
        top |= a[i].main
    while shift < 64 and (top >> shift) != 0:
        memset(counts, 0, sizeof(counts))
        for i in range(n):
            counts[(a[i].main >> shift) & 0xFF] += 1
        total = 0
        for digit in range(256):
            c = counts[digit]
            counts[digit] = total
            total += c
        for i in range(n):
            digit = (a[i].main >> shift) & 0xFF
            scratch[counts[digit]] = a[i]
            counts[digit] += 1
        swap = a
        a = scratch
        scratch = swap
        shift += 8
    return a


cdef int fetch_found(Scan* s) noexcept nogil:
    """Replace each found record by its stored KeyValue: 0 or an LMDB error.
    Many are fetched in revision order, so the key DB's cursor moves forward
    through neighbouring pages instead of descending from the root for every
    key (a range's keys in key order jump all over the key DB)."""
    cdef Py_ssize_t i, slot, n = s.n_found
    cdef Pending* order = NULL
    cdef Pending* by_rev = NULL  # NULL: in key order (a few, or already by revision)
    cdef bint ordered = True
    cdef int rc = 0
    if n >= SORT_MIN:
        order = <Pending*>malloc(2 * n * sizeof(Pending))
        if order == NULL:
            return MDB_PANIC
        for i in range(n):
            order[i].main = rec_main(<const uint8_t*>s.found[i].mv_data)
            order[i].slot = i
            ordered = ordered and (i == 0 or order[i - 1].main <= order[i].main)
        if not ordered:
            by_rev = sort_by_main(order, order + n, n)
    for i in range(n):
        slot = by_rev[i].slot if by_rev != NULL else i
        rc = fetch_rev(s.txn, s.key_dbi, <const uint8_t*>s.found[slot].mv_data, &s.found[slot],
                       s.kv_cursor, &s.next_misses)
        if rc:
            break
    free(order)
    return rc


cdef int walk(Scan* s, MDB_cursor_op op, Py_ssize_t budget) noexcept nogil:
    """Move the cursor by `op` then visit, at most `budget` index entries
    (-1: no bound); sets s.done at the end. 0 or an LMDB error."""
    cdef MDB_val k, v
    cdef int rc
    while budget != 0:
        rc = mdb_cursor_get(s.cursor, &k, &v, op)
        if rc == MDB_NOTFOUND:
            s.done = True
            return 0
        if rc:
            return rc
        op = MDB_NEXT
        if k.mv_size == GROUP_KEY_BYTES:
            rc = visit_group(s, &v)
        else:
            rc = visit(s, <const uint8_t*>k.mv_data, k.mv_size, &v)
        if rc == 1:
            s.done = True
            return 0
        if rc:
            return rc
        budget -= 1
    return 0


cdef int scan(Scan* s, txn, index_db, key_db, history_db, bytes key, bytes end, uint64_t rev,
              Py_ssize_t limit, bint fetch) except -1:
    """Fill `s` from the user keys in [key, end) (end b"": no bound): the count
    of keys live at `rev` and, if `fetch`, the KeyValues of the first `limit` of
    them (0: all) in s.found, which the caller frees."""
    cdef MDB_val start, ignored
    cdef MDB_cursor_op op = MDB_SET_RANGE
    cdef int rc
    cdef uint8_t group_key[GROUP_KEY_BYTES]
    cdef Py_ssize_t i
    s.txn = txn_of(txn)
    s.key_dbi = key_db.dbi
    s.hist_dbi = history_db.dbi
    s.key = <const uint8_t*>PyBytes_AS_STRING(key)
    s.key_len = PyBytes_GET_SIZE(key)
    s.end = <const uint8_t*>PyBytes_AS_STRING(end)
    s.end_len = PyBytes_GET_SIZE(end)
    s.rev = rev
    s.limit = limit
    s.fetch = fetch
    s.count = s.n_found = s.cap_found = s.next_misses = 0
    s.found = NULL
    s.done = False
    # Start at the DB key that may hold `key` (its group for a long key).
    start.mv_data = <void*>s.key
    start.mv_size = s.key_len
    if s.key_len > SHORT_KEY_MAX:
        for i in range(SHORT_KEY_MAX):
            group_key[i] = s.key[i]
        group_key[SHORT_KEY_MAX] = 0
        start.mv_data = group_key
        start.mv_size = GROUP_KEY_BYTES
    elif s.key_len == 0:
        op = MDB_FIRST
    rc = mdb_cursor_open(s.txn, index_db.dbi, &s.cursor)
    if rc:
        fail("mdb_cursor_open", rc)
    rc = mdb_cursor_open(s.txn, s.key_dbi, &s.kv_cursor)
    if rc:
        mdb_cursor_close(s.cursor)
        fail("mdb_cursor_open", rc)
    try:
        rc = mdb_cursor_get(s.cursor, &start, &ignored, op) if op == MDB_SET_RANGE else 0
        if rc == MDB_NOTFOUND:
            return 0
        if rc:
            fail("mdb_cursor_get", rc)
        # The cursor stands on the first entry: visit it again with GET_CURRENT.
        rc = walk(s, MDB_GET_CURRENT if op == MDB_SET_RANGE else MDB_FIRST, SCAN_WITH_GIL)
        if rc == 0 and not s.done:
            with nogil:
                rc = walk(s, MDB_NEXT, -1)
        if rc == 0:
            if s.n_found <= SCAN_WITH_GIL:
                rc = fetch_found(s)
            else:
                with nogil:
                    rc = fetch_found(s)
        if rc:
            fail("range scan", rc)
        return 0
    finally:
        mdb_cursor_close(s.kv_cursor)
        mdb_cursor_close(s.cursor)


def range_live(txn, index_db, key_db, history_db, bytes key, bytes end,
               uint64_t rev, Py_ssize_t limit, bint fetch, bint keys_only=False):
    """Over the user keys in [key, end) (end b"": no bound): (the stored
    KeyValue of each key live at `rev`, at most `limit` of them (0: all),
    none unless `fetch`, without their values if `keys_only` (read in place,
    never copied); the number of keys live at `rev`)."""
    cdef Scan s
    cdef Py_ssize_t i
    s.found = NULL
    try:
        scan(&s, txn, index_db, key_db, history_db, key, end, rev, limit, fetch)
        if keys_only:
            return [
                kv_without_value(
                    PyMemoryView_FromMemory(<char*>s.found[i].mv_data, s.found[i].mv_size,
                                            PyBUF_READ))
                for i in range(s.n_found)
            ], s.count
        return [
            PyBytes_FromStringAndSize(<const char*>s.found[i].mv_data, s.found[i].mv_size)
            for i in range(s.n_found)
        ], s.count
    finally:
        free(s.found)


def range_response(txn, index_db, key_db, history_db, bytes header, bytes key, end,
                   uint64_t rev, Py_ssize_t limit):
    """A marshalled RangeResponse over `key` alone (end None) or the user keys
    in [key, end) (end b"": no bound): `header` (a ResponseHeader body), the
    stored KeyValues of the first `limit` keys live at `rev` (0: all), `more`
    when more are live, and their `count`.

    The KeyValues go from the map into the response with no object per key,
    and a long response is written without the GIL.
    """
    cdef Scan s
    cdef MDB_val one
    cdef const MDB_val* kvs = &one
    cdef Py_ssize_t n, count, i, size, header_len = PyBytes_GET_SIZE(header)
    cdef bint more
    cdef bytes out
    cdef uint8_t* w
    s.found = NULL
    try:
        if end is None:
            n = count = key_live(txn_of(txn), index_db.dbi, key_db.dbi, history_db.dbi, key, rev,
                                 &one)
        else:
            scan(&s, txn, index_db, key_db, history_db, key, <bytes>end, rev, limit, True)
            kvs, n, count = s.found, s.n_found, s.count
        more = limit > 0 and count > limit
        size = len_field_size(header_len) + varint_field_size(more) + varint_field_size(count)
        for i in range(n):
            size += len_field_size(kvs[i].mv_size)
        out = PyBytes_FromStringAndSize(NULL, size)
        w = <uint8_t*>PyBytes_AS_STRING(out)
        w[0] = TAG_HEADER
        w = put_varint(w + 1, header_len)
        memcpy(w, PyBytes_AS_STRING(header), header_len)
        w += header_len
        if n <= SCAN_WITH_GIL:
            w = put_kv_fields(w, kvs, n)
        else:
            with nogil:
                w = put_kv_fields(w, kvs, n)
        w = put_varint_field(w, TAG_MORE, more)
        put_varint_field(w, TAG_COUNT, count)
        return out
    finally:
        free(s.found)


cdef inline uint8_t* put_kv_field(uint8_t* w, const MDB_val* kv) noexcept nogil:
    w[0] = TAG_KVS
    w = put_varint(w + 1, kv.mv_size)
    memcpy(w, kv.mv_data, kv.mv_size)
    return w + kv.mv_size


cdef uint8_t* put_kv_fields(uint8_t* w, const MDB_val* kvs, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        w = put_kv_field(w, &kvs[i])
    return w


# -- writes ----------------------------------------------------------------


cdef inline void store_be32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void write_record(uint8_t* w, uint64_t main, uint64_t sub, bint tomb) noexcept nogil:
    store_be64(w, main)
    store_be64(w + 8, sub)
    w[16] = FLAG_TOMBSTONE if tomb else 0


cdef int append_record(MDB_txn* txn, MDB_dbi index_dbi, const uint8_t* key, size_t key_len,
                       uint64_t main, uint64_t sub, bint tomb) noexcept nogil:
    """Add one record to the key's index entry (creating it): 0 or an LMDB error.

    What LMDB returns is only valid until the next write, so the new value is
    built in a buffer of our own before it is put.
    """
    cdef MDB_val k, v, group
    cdef uint8_t group_key[GROUP_KEY_BYTES]
    cdef uint8_t* buf
    cdef const uint8_t* p
    cdef size_t pos = 0, out = 0, n, m, entry
    cdef bint placed = False
    cdef int rc
    if key_len <= SHORT_KEY_MAX:
        k.mv_data = <void*>key
        k.mv_size = key_len
        rc = mdb_get(txn, index_dbi, &k, &v)
        if rc == MDB_NOTFOUND:
            v.mv_size = 0
        elif rc:
            return rc
        buf = <uint8_t*>malloc(v.mv_size + REC_SIZE)
        if buf == NULL:
            return MDB_PANIC
        if v.mv_size:
            memcpy(buf, v.mv_data, v.mv_size)
        write_record(buf + v.mv_size, main, sub, tomb)
        v.mv_data = buf
        v.mv_size += REC_SIZE
        rc = mdb_put(txn, index_dbi, &k, &v, 0)
        free(buf)
        return rc
    # A long key: rewrite its group with the key's entry grown (or added), in key order.
    memcpy(group_key, key, SHORT_KEY_MAX)
    group_key[SHORT_KEY_MAX] = 0
    k.mv_data = group_key
    k.mv_size = GROUP_KEY_BYTES
    rc = mdb_get(txn, index_dbi, &k, &group)
    if rc == MDB_NOTFOUND:
        group.mv_size = 0
    elif rc:
        return rc
    buf = <uint8_t*>malloc(group.mv_size + 8 + key_len + REC_SIZE)
    if buf == NULL:
        return MDB_PANIC
    p = <const uint8_t*>group.mv_data
    while pos < group.mv_size:
        if pos + 4 > group.mv_size:
            free(buf)
            return MDB_CORRUPTED
        n = load_be32(p + pos)
        if pos + 8 + n > group.mv_size:
            free(buf)
            return MDB_CORRUPTED
        m = load_be32(p + pos + 4 + n)
        entry = 8 + n + m
        if pos + entry > group.mv_size:
            free(buf)
            return MDB_CORRUPTED
        if not placed and compare(p + pos + 4, n, key, key_len) >= 0:
            placed = True
            if n == key_len and memcmp(p + pos + 4, key, n) == 0:
                # The key's own entry: its records plus one.
                memcpy(buf + out, p + pos, 4 + n)
                store_be32(buf + out + 4 + n, <uint32_t>(m + REC_SIZE))
                memcpy(buf + out + 8 + n, p + pos + 8 + n, m)
                write_record(buf + out + entry, main, sub, tomb)
                out += entry + REC_SIZE
                pos += entry
                continue
            out += new_entry(buf + out, key, key_len, main, sub, tomb)
        memcpy(buf + out, p + pos, entry)
        out += entry
        pos += entry
    if not placed:
        out += new_entry(buf + out, key, key_len, main, sub, tomb)
    v.mv_data = buf
    v.mv_size = out
    rc = mdb_put(txn, index_dbi, &k, &v, 0)
    free(buf)
    return rc


cdef size_t new_entry(uint8_t* w, const uint8_t* key, size_t key_len, uint64_t main,
                      uint64_t sub, bint tomb) noexcept nogil:
    """A group entry holding one record; returns its size."""
    store_be32(w, <uint32_t>key_len)
    memcpy(w + 4, key, key_len)
    store_be32(w + 4 + key_len, REC_SIZE)
    write_record(w + 8 + key_len, main, sub, tomb)
    return 8 + key_len + REC_SIZE


cdef int put_kv(MDB_txn* txn, MDB_dbi key_dbi, uint64_t main, uint64_t sub, bint tomb,
                bytes kv) except -1:
    """The KeyValue under its revision key, appended (revisions only grow)."""
    cdef uint8_t rev_key[REV_KEY_LEN + 1]
    cdef MDB_val k, v
    store_be64(rev_key, main)
    rev_key[8] = REV_SEP
    store_be64(rev_key + 9, sub)
    rev_key[REV_KEY_LEN] = REV_TOMBSTONE
    k.mv_data = rev_key
    k.mv_size = REV_KEY_LEN + (1 if tomb else 0)
    v.mv_data = PyBytes_AS_STRING(kv)
    v.mv_size = PyBytes_GET_SIZE(kv)
    rc = mdb_put(txn, key_dbi, &k, &v, MDB_APPEND)
    if rc and rc != MDB_KEYEXIST:  # KEYEXIST: out of order, refused (as py-lmdb's put)
        fail("mdb_put", rc)
    return 0


cdef class IndexCache:
    """The index entries of short keys written by one write transaction (DB
    key -> bytearray of records), written to the index DB when called."""

    cdef MDB_txn* txn
    cdef MDB_dbi dbi
    cdef dict entries

    def __call__(self):
        cdef MDB_val k, v
        cdef int rc
        for key, records in self.entries.items():
            k.mv_data = PyBytes_AS_STRING(key)
            k.mv_size = PyBytes_GET_SIZE(key)
            v.mv_data = PyByteArray_AS_STRING(records)
            v.mv_size = PyByteArray_GET_SIZE(records)
            rc = mdb_put(self.txn, self.dbi, &k, &v, 0)
            if rc:
                fail("mdb_put", rc)
        self.entries = {}


cdef int read_records(MDB_txn* txn, MDB_dbi index_dbi, bytes key, MDB_val* records) except -1:
    """The key's records into `records` (none: empty); raises on a malformed entry."""
    cdef int rc = find_records(txn, index_dbi, <const uint8_t*>PyBytes_AS_STRING(key),
                               PyBytes_GET_SIZE(key), records)
    if rc == MDB_NOTFOUND:
        records.mv_size = 0
    elif rc:
        fail("index_records", rc)
    elif records.mv_size % REC_SIZE:
        fail("index_records", MDB_CORRUPTED)
    return 0


cdef object records_to_write(txn, index_db, bytes key, MDB_txn** c_txn, MDB_val* records):
    """Where a write finds the key's records (into `records`, and the MDB_txn):
    a short key's in this transaction's cache, returned to be appended to in
    place; a long key's in its group in the DB (returns None)."""
    cdef IndexCache cache
    if PyBytes_GET_SIZE(key) > SHORT_KEY_MAX:
        c_txn[0] = txn_of(txn)
        read_records(c_txn[0], index_db.dbi, key, records)
        return None
    pending = txn.pending
    if type(pending) is IndexCache and (<IndexCache>pending).dbi == index_db.dbi:
        cache = <IndexCache>pending
    else:
        cache = IndexCache.__new__(IndexCache)
        cache.txn = txn_of(txn)  # runs any other pending writes first
        cache.dbi = index_db.dbi
        cache.entries = {}
        txn.pending = cache
    c_txn[0] = cache.txn
    entry = cache.entries.get(key)
    if entry is None:
        read_records(cache.txn, cache.dbi, key, records)
        entry = PyByteArray_FromStringAndSize(<const char*>records.mv_data, records.mv_size)
        cache.entries[key] = entry
    records.mv_data = PyByteArray_AS_STRING(entry)
    records.mv_size = PyByteArray_GET_SIZE(entry)
    return entry


cdef object latest_live(MDB_txn* txn, MDB_dbi key_dbi, const MDB_val* records):
    """The stored KeyValue of the newest of `records` unless it is a
    tombstone (or there is none): None."""
    cdef MDB_val kv, k
    cdef uint8_t rev_key[REV_KEY_LEN]
    cdef const uint8_t* last
    cdef int rc
    if records.mv_size == 0:
        return None
    last = <const uint8_t*>records.mv_data + records.mv_size - REC_SIZE
    if rec_tombstone(last):
        return None
    write_rev_key(rev_key, last)
    k.mv_data = rev_key
    k.mv_size = REV_KEY_LEN
    rc = mdb_get(txn, key_dbi, &k, &kv)
    if rc:
        fail("mdb_get", rc)
    return PyBytes_FromStringAndSize(<const char*>kv.mv_data, kv.mv_size)


cdef int add_record(MDB_txn* txn, MDB_dbi index_dbi, MDB_dbi hist_dbi, bytes key, cached,
                    uint64_t main, uint64_t sub, bint tomb) except -1:
    """One more record for `key`: appended to its cached entry (moving its older
    records to a history chunk once it grows past HISTORY_SPLIT_AT), or (a long
    key, `cached` None) written into its group."""
    cdef Py_ssize_t n
    cdef int rc
    if cached is not None:
        n = PyByteArray_GET_SIZE(cached)
        PyByteArray_Resize(cached, n + REC_SIZE)
        write_record(<uint8_t*>PyByteArray_AS_STRING(cached) + n, main, sub, tomb)
        if n // REC_SIZE + 1 > HISTORY_SPLIT_AT:
            chunk, rest = split_history(bytes(cached))
            put_chunk(txn, hist_dbi, key, chunk)
            cached[:] = rest
        return 0
    rc = append_record(txn, index_dbi, <const uint8_t*>PyBytes_AS_STRING(key),
                       PyBytes_GET_SIZE(key), main, sub, tomb)
    if rc:
        fail("mdb_put", rc)
    return 0


cdef int put_chunk(MDB_txn* txn, MDB_dbi hist_dbi, bytes key, bytes chunk) except -1:
    """Write a history chunk of a short key (split off its entry by
    revindex.split_history) under its first record's main revision."""
    cdef uint8_t hkey[HISTORY_KEY_MAX]
    cdef MDB_val k, v
    cdef int rc
    k.mv_data = hkey
    k.mv_size = write_history_key(hkey, <const uint8_t*>PyBytes_AS_STRING(key),
                                  PyBytes_GET_SIZE(key),
                                  rec_main(<const uint8_t*>PyBytes_AS_STRING(chunk)))
    v.mv_data = PyBytes_AS_STRING(chunk)
    v.mv_size = PyBytes_GET_SIZE(chunk)
    rc = mdb_put(txn, hist_dbi, &k, &v, 0)
    if rc:
        fail("mdb_put", rc)
    return 0


def put_revision(txn, index_db, key_db, history_db, bytes key, value, lease, uint64_t main,
                 uint64_t sub, bint ignore_value=False, bint ignore_lease=False):
    """Write revision (main, sub) of `key`: a new version (etcd's put).

    Returns (the new KeyValue, the previous one or None, the previous lease
    or 0), or None, writing nothing, when an ignore flag asks for a value or
    lease the key does not have (it is not live).
    """
    cdef MDB_txn* c_txn
    cdef MDB_val records
    cached = records_to_write(txn, index_db, key, &c_txn, &records)
    create, version, old_lease = main, 1, 0
    prev = latest_live(c_txn, key_db.dbi, &records)
    if prev is not None:
        _, create, _, version, old_value, old_lease = decode_kv(prev)
        version += 1
        if ignore_value:
            value = old_value
        if ignore_lease:
            lease = old_lease
    elif ignore_value or ignore_lease:
        return None
    kv = encode_kv(key, create, main, version, value, lease)
    put_kv(c_txn, key_db.dbi, main, sub, False, kv)
    add_record(c_txn, index_db.dbi, history_db.dbi, key, cached, main, sub, False)
    return kv, prev, old_lease


def tombstone(txn, index_db, key_db, history_db, bytes key, uint64_t main, uint64_t sub):
    """Write revision (main, sub) of a live `key` as its deletion; returns
    its last KeyValue (None, writing nothing, if it is not live)."""
    cdef MDB_txn* c_txn
    cdef MDB_val records
    cached = records_to_write(txn, index_db, key, &c_txn, &records)
    prev = latest_live(c_txn, key_db.dbi, &records)
    if prev is None:
        return None
    # etcd stores a tombstone as a KeyValue holding the key only.
    put_kv(c_txn, key_db.dbi, main, sub, True, encode_kv(key, 0, 0, 0, b"", 0))
    add_record(c_txn, index_db.dbi, history_db.dbi, key, cached, main, sub, True)
    return prev
