# cython: language_level=3
"""Hot loops over the `index` DB, compiled (twin: k0s_store/pure/revindex.py).

Byte formats (documented with examples in k0s_store/mvcc/key_index.py and
k0s_store/mvcc/index.py):

    record = main (8 bytes, big-endian) | sub (8 bytes, big-endian) | flag (1 byte)
    flag   = 0 for a put, 1 for a tombstone; + 2 (HISTORY_MARK) on an index
             entry's first record when older records are in history chunks
    group entry = key length (4 bytes, big-endian) | key
                  | records length (4 bytes, big-endian) | records

A key's records are in ascending revision order; a tombstone ends a
generation (etcd's keyIndex flattened). Records are read in place through
the buffer protocol: no tuple per record on the lookup paths.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t

from revrecords cimport *

__all__ = [
    "CHUNK_RECORDS",
    "GROUP_KEY_LEN",
    "HISTORY_MARK",
    "KEPT_RECORDS",
    "RECORD_SIZE",
    "SPLIT_RECORDS",
    "compact",
    "decode_group",
    "encode_group",
    "keep",
    "latest",
    "live_at",
    "live_rev_key",
    "pack",
    "record",
    "split_history",
    "unpack",
]

RECORD_SIZE = REC_SIZE
GROUP_KEY_LEN = GROUP_KEY_BYTES
# An index entry past SPLIT_RECORDS records keeps its newest KEPT_RECORDS and
# moves the older ones to a history chunk; HISTORY_MARK flags its first record.
HISTORY_MARK = FLAG_HISTORY
SPLIT_RECORDS = HISTORY_SPLIT_AT
KEPT_RECORDS = HISTORY_KEEP
# A history chunk holds at most what one such split moves.
CHUNK_RECORDS = HISTORY_SPLIT_AT + 1 - HISTORY_KEEP


cdef inline tuple rec_tuple(const uint8_t* rec):
    return rec_main(rec), rec_sub(rec), rec_tombstone(rec)


cdef const uint8_t* open_records(object records, Py_buffer* view) except NULL:
    """Get a buffer over packed records; its length must be a whole number of them."""
    PyObject_GetBuffer(records, view, PyBUF_SIMPLE)
    if view.len % REC_SIZE:
        PyBuffer_Release(view)
        raise ValueError(f"records of {view.len} bytes (not a multiple of {REC_SIZE})")
    # A non-NULL pointer even for an empty buffer.
    return <const uint8_t*>view.buf if view.buf != NULL else <const uint8_t*>b""


cdef bytes live_rev_key_of(const uint8_t* p, Py_ssize_t n, uint64_t rev):
    cdef Py_ssize_t i = find_live(p, n, rev)
    if i < 0:
        return None
    cdef bytes out = PyBytes_FromStringAndSize(NULL, REV_KEY_LEN)
    write_rev_key(<uint8_t*>PyBytes_AS_STRING(out), p + i * REC_SIZE)
    return out


def record(uint64_t main, uint64_t sub, bint tombstone=False) -> bytes:
    """One packed record."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, REC_SIZE)
    cdef uint8_t* w = <uint8_t*>PyBytes_AS_STRING(out)
    store_be64(w, main)
    store_be64(w + 8, sub)
    w[16] = FLAG_TOMBSTONE if tombstone else 0
    return out


def unpack(records) -> list:
    """All records, oldest first."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    cdef Py_ssize_t i
    try:
        return [rec_tuple(p + i * REC_SIZE) for i in range(view.len // REC_SIZE)]
    finally:
        PyBuffer_Release(&view)


def pack(revisions) -> bytes:
    """The inverse of `unpack`."""
    return b"".join([record(m, s, t) for m, s, t in revisions])


def latest(records) -> tuple:
    """The newest record."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    try:
        if view.len == 0:
            raise ValueError("no records")
        return rec_tuple(p + view.len - REC_SIZE)
    finally:
        PyBuffer_Release(&view)


def live_at(records, uint64_t rev):
    """(main, sub) of the key's value at `rev`, or None if it did not exist then."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    cdef Py_ssize_t i
    try:
        i = find_live(p, view.len // REC_SIZE, rev)
        return None if i < 0 else (rec_main(p + i * REC_SIZE), rec_sub(p + i * REC_SIZE))
    finally:
        PyBuffer_Release(&view)


def live_rev_key(records, uint64_t rev):
    """The `key` DB key (codec.rev_key) of the key's value at `rev`, or None."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    try:
        return live_rev_key_of(p, view.len // REC_SIZE, rev)
    finally:
        PyBuffer_Release(&view)


cdef struct Compaction:
    Py_ssize_t gen_start  # first record of the generation holding at_rev
    Py_ssize_t gen_len  # its number of records
    Py_ssize_t index  # of its largest revision <= at_rev within it, -1 if none
    bint last  # whether it is the current (last) generation


cdef Compaction do_compact(const uint8_t* p, Py_ssize_t n, uint64_t at_rev) noexcept nogil:
    """etcd's doCompact over the flat records (see the pure twin's generations)."""
    cdef Compaction c
    cdef Py_ssize_t i = 0, start = 0
    # Skip whole generations (each ends with a tombstone) ending at or below at_rev.
    while i < n:
        if rec_tombstone(p + i * REC_SIZE):
            if rec_main(p + i * REC_SIZE) > at_rev:
                break
            start = i + 1
        i += 1
    c.gen_start = start
    c.last = i >= n
    c.gen_len = (n if c.last else i + 1) - start
    c.index = c.gen_len - 1
    while c.index >= 0 and rec_main(p + (start + c.index) * REC_SIZE) > at_rev:
        c.index -= 1
    return c


def split_history(bytes records):
    """A short key's records (oldest first) past SPLIT_RECORDS as (history
    chunk, the rest): the chunk takes the oldest records, up to CHUNK_RECORDS
    and leaving at least KEPT_RECORDS, its first record unmarked; the rest's
    first is marked. None when they fit one entry. Split the rest again
    until None for a whole history."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(records)
    if n <= HISTORY_SPLIT_AT * REC_SIZE:
        return None
    cdef Py_ssize_t moved = min(n - HISTORY_KEEP * REC_SIZE,
                                (HISTORY_SPLIT_AT + 1 - HISTORY_KEEP) * REC_SIZE)
    chunk = bytearray(records[:moved])
    entry = bytearray(records[moved:])
    chunk[16] &= ~FLAG_HISTORY
    entry[16] |= FLAG_HISTORY
    return bytes(chunk), bytes(entry)


def compact(records, uint64_t at_rev) -> tuple:
    """Compact one key's history at `at_rev`: (records kept, revisions dropped);
    kept is b"" when the key leaves the index."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    cdef Py_ssize_t n = view.len // REC_SIZE, kept_from, i
    cdef Compaction c
    try:
        c = do_compact(p, n, at_rev)
        kept_from = c.gen_start
        if c.gen_len:
            if c.index != -1:
                kept_from = c.gen_start + c.index
            if kept_from == c.gen_start + c.gen_len - 1 and not c.last:
                kept_from += 1  # only the tombstone is left: the generation goes
        kept = PyBytes_FromStringAndSize(<const char*>p + kept_from * REC_SIZE,
                                         (n - kept_from) * REC_SIZE)
        return kept, [rec_tuple(p + i * REC_SIZE) for i in range(kept_from)]
    finally:
        PyBuffer_Release(&view)


def keep(records, uint64_t at_rev) -> set:
    """Revisions (main, sub) <= at_rev that a compaction at at_rev would keep
    (etcd's keyIndex.keep, used by the hash)."""
    cdef Py_buffer view
    cdef const uint8_t* p = open_records(records, &view)
    cdef Compaction c
    cdef const uint8_t* rec
    try:
        c = do_compact(p, view.len // REC_SIZE, at_rev)
        if c.index == -1 or (c.index == c.gen_len - 1 and not c.last):
            return set()
        rec = p + (c.gen_start + c.index) * REC_SIZE
        return {(rec_main(rec), rec_sub(rec))}
    finally:
        PyBuffer_Release(&view)


def decode_group(value) -> list:
    """A long-key group's (full key, records) pairs, sorted by key."""
    cdef Py_buffer view
    cdef const uint8_t* p
    cdef Py_ssize_t pos = 0, n
    cdef list entries = []
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t*>view.buf
        while pos < view.len:
            if pos + 4 > view.len:
                raise ValueError("truncated long-key group")
            n = load_be32(p + pos)
            if pos + 4 + n + 4 > view.len:
                raise ValueError("truncated long-key group")
            key = PyBytes_FromStringAndSize(<const char*>p + pos + 4, n)
            pos += 4 + n
            n = load_be32(p + pos)
            if pos + 4 + n > view.len:
                raise ValueError("truncated long-key group")
            entries.append((key, PyBytes_FromStringAndSize(<const char*>p + pos + 4, n)))
            pos += 4 + n
        return entries
    finally:
        PyBuffer_Release(&view)


def encode_group(entries) -> bytes:
    """The inverse of `decode_group` (entries must be sorted by key)."""
    cdef list parts = []
    for key, records in entries:
        parts += (len(key).to_bytes(4, "big"), key, len(records).to_bytes(4, "big"), records)
    return b"".join(parts)

