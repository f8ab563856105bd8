# cython: language_level=3
"""CRC-32C (Castagnoli), compiled (twin: k0s_store/pure/crc.py).

The checksum of etcd's HashKV: Go's crc32.Update with
crc32.MakeTable(crc32.Castagnoli), i.e. the reflected polynomial 0x82F63B78,
initial value and final xor 0xFFFFFFFF. `crc32c(data, crc)` continues a
checksum: crc32c(b, crc32c(a)) == crc32c(a + b).

Slicing-by-8: TABLE[0] is the byte-at-a-time table; TABLE[k][n] is the CRC of
byte n followed by k zero bytes, so eight input bytes are folded with eight
independent lookups per step. The loop runs without the GIL.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint32_t

__all__ = ["POLYNOMIAL", "crc32c"]

POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reversed

cdef uint32_t TABLE[8][256]


cdef void build_tables() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = <uint32_t>n
        for k in range(8):
            c = (c >> 1) ^ (POLYNOMIAL if c & 1 else 0)
        TABLE[0][n] = c
    for n in range(256):
        c = TABLE[0][n]
        for k in range(1, 8):
            c = TABLE[0][c & 0xFF] ^ (c >> 8)
            TABLE[k][n] = c


build_tables()


cdef uint32_t update(uint32_t crc, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Fold n bytes into a raw (not yet inverted) CRC state."""
    cdef uint32_t lo, hi
    while n >= 8:
        # Assembled byte by byte: endian-independent, one load once optimised.
        lo = crc ^ (p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24))
        hi = p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24)
        crc = (
            TABLE[7][lo & 0xFF] ^ TABLE[6][(lo >> 8) & 0xFF]
            ^ TABLE[5][(lo >> 16) & 0xFF] ^ TABLE[4][lo >> 24]
            ^ TABLE[3][hi & 0xFF] ^ TABLE[2][(hi >> 8) & 0xFF]
            ^ TABLE[1][(hi >> 16) & 0xFF] ^ TABLE[0][hi >> 24]
        )
        p += 8
        n -= 8
    while n > 0:
        crc = TABLE[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc


def crc32c(data, uint32_t crc=0) -> int:
    """The CRC-32C of `data` (any buffer), continuing from the checksum `crc`."""
    cdef Py_buffer view
    cdef uint32_t state = ~crc
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            state = update(state, <const uint8_t*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return ~state
