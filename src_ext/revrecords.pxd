# cython: language_level=3
"""Inline helpers over a key's packed revision records, shared by the
compiled modules that read them (revindex.pyx, lmdb_kv.pyx). Formats in
k0s_store/mvcc/key_index.py:

    record = main (8 bytes, big-endian) | sub (8 bytes, big-endian) | flag (1 byte)
    flag   = 0 for a put, 1 for a tombstone; + 2 on an index entry's first
             record when older records are in the key's history chunks
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    REC_SIZE = 17
    FLAG_TOMBSTONE = 1
    FLAG_HISTORY = 2
    # An index entry longer than HISTORY_SPLIT_AT records keeps its newest
    # HISTORY_KEEP and moves the rest to a history chunk (key_index.py).
    HISTORY_SPLIT_AT = 1024
    HISTORY_KEEP = 256
    HISTORY_KEY_MAX = 2 + 480 + 8  # length, a short key, a chunk's first main
    REV_KEY_LEN = 17  # codec.rev_key of a live revision: main | "_" | sub
    REV_SEP = 0x5F
    REV_TOMBSTONE = 0x74  # "t": the 18th byte of a tombstone's revision key
    GROUP_KEY_BYTES = 481  # a long-key group's DB key: 480 bytes of prefix + 0


cdef inline uint64_t load_be64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


cdef inline void store_be64(uint8_t* p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[7 - i] = <uint8_t>(v >> (8 * i))


cdef inline uint32_t load_be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t rec_main(const uint8_t* rec) noexcept nogil:
    return load_be64(rec)


cdef inline uint64_t rec_sub(const uint8_t* rec) noexcept nogil:
    return load_be64(rec + 8)


cdef inline bint rec_tombstone(const uint8_t* rec) noexcept nogil:
    return (rec[16] & FLAG_TOMBSTONE) != 0


cdef inline bint has_history(const uint8_t* records, Py_ssize_t n) noexcept nogil:
    """An index entry whose older records are in the key's history chunks."""
    return n > 0 and (records[16] & FLAG_HISTORY) != 0


cdef inline size_t write_history_key(uint8_t* w, const uint8_t* key, size_t key_len,
                               uint64_t main) noexcept nogil:
    """The history DB key of `key`'s chunk starting at `main` into w; its size."""
    w[0] = <uint8_t>(key_len >> 8)
    w[1] = <uint8_t>key_len
    memcpy(w + 2, key, key_len)
    store_be64(w + 2 + key_len, main)
    return 2 + key_len + 8


cdef inline Py_ssize_t find_live(const uint8_t* p, Py_ssize_t n, uint64_t rev) noexcept nogil:
    """Index of the record live at `rev`, or -1 (none, or a tombstone)."""
    cdef Py_ssize_t i = n - 1
    while i >= 0:
        if rec_main(p + i * REC_SIZE) <= rev:
            return -1 if rec_tombstone(p + i * REC_SIZE) else i
        i -= 1
    return -1


cdef inline void write_rev_key(uint8_t* w, const uint8_t* rec) noexcept nogil:
    """codec.rev_key of a live record into w[0:REV_KEY_LEN]."""
    store_be64(w, rec_main(rec))
    w[8] = REV_SEP
    store_be64(w + 9, rec_sub(rec))
