# cython: language_level=3
"""Protocol-buffer wire format shared by the compiled codecs (codec.pyx,
txn_codec.pyx, lmdb_kv.pyx): reading tags, varints and length-delimited
spans, bounds-checked (malformed input raises ValueError), and writing
varints and the sizes of fields."""

from libc.stdint cimport uint8_t, uint64_t

# Wire types (the low 3 bits of a field's tag).
cdef enum:
    VARINT = 0
    FIXED64 = 1
    LEN = 2
    START_GROUP = 3
    END_GROUP = 4
    FIXED32 = 5

cdef enum:
    MAX_VARINT_BYTES = 10
    MAX_FIELD = (1 << 29) - 1


cdef struct Span:
    const uint8_t* data
    Py_ssize_t size


cdef inline int read_varint(const uint8_t** pp, const uint8_t* end, uint64_t* out) except -1:
    """Read a varint at pp[0] (value mod 2**64) and advance pp[0] past it."""
    cdef const uint8_t* p = pp[0]
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef uint8_t byte
    while shift < 7 * MAX_VARINT_BYTES:
        if p >= end:
            raise ValueError("truncated varint")
        byte = p[0]
        p += 1
        result |= <uint64_t>(byte & 0x7F) << shift
        if byte < 0x80:
            pp[0] = p
            out[0] = result
            return 0
        shift += 7
    raise ValueError("varint longer than 10 bytes")


cdef inline int read_tag(const uint8_t** pp, const uint8_t* end, uint64_t* field, int* wire) except -1:
    cdef uint64_t key
    if pp[0] < end and pp[0][0] < 0x80:  # one-byte tag: fields 1..15
        key = pp[0][0]
        pp[0] += 1
    else:
        read_varint(pp, end, &key)
    field[0] = key >> 3
    wire[0] = key & 7
    if field[0] == 0 or field[0] > MAX_FIELD:
        raise ValueError(f"invalid field number {field[0]}")
    return 0


cdef inline int read_len(const uint8_t** pp, const uint8_t* end, Span* out) except -1:
    """Read a length prefix and the span of the body it announces."""
    cdef uint64_t n
    read_varint(pp, end, &n)
    if n > <uint64_t>(end - pp[0]):
        raise ValueError("length past the end")
    out.data = pp[0]
    out.size = <Py_ssize_t>n
    pp[0] += n
    return 0


cdef inline int skip_value(const uint8_t** pp, const uint8_t* end, int wire) except -1:
    """Pass over a varint, length-delimited or fixed-width value: 1; 0 (nothing
    read) for any other wire type (groups, bad types), left to the caller."""
    cdef uint64_t ignored
    cdef Span span
    cdef Py_ssize_t width
    if wire == VARINT:
        read_varint(pp, end, &ignored)
        return 1
    if wire == LEN:
        read_len(pp, end, &span)
        return 1
    if wire == FIXED64 or wire == FIXED32:
        width = 8 if wire == FIXED64 else 4
        if end - pp[0] < width:
            raise ValueError("truncated fixed-width field")
        pp[0] += width
        return 1
    return 0


# ---- writing -------------------------------------------------------------

cdef inline Py_ssize_t varint_size(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* put_varint(uint8_t* p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <uint8_t>(v | 0x80)
        v >>= 7
        p += 1
    p[0] = <uint8_t>v
    return p + 1


cdef inline Py_ssize_t varint_field_size(uint64_t v) noexcept nogil:
    """Size of a proto3 varint field with a 1-byte tag: 0 when the value is 0."""
    return 0 if v == 0 else 1 + varint_size(v)


cdef inline uint8_t* put_varint_field(uint8_t* p, uint8_t tag, uint64_t v) noexcept nogil:
    if v == 0:
        return p
    p[0] = tag
    return put_varint(p + 1, v)


cdef inline Py_ssize_t len_field_size(Py_ssize_t n) noexcept nogil:
    """Size of a length-delimited field with a 1-byte tag and an n-byte body."""
    return 1 + varint_size(<uint64_t>n) + n
