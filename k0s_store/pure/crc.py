"""CRC-32C (Castagnoli): the pure-Python twin of src_ext/crc.pyx.

The checksum of etcd's HashKV: Go's crc32.Update with
crc32.MakeTable(crc32.Castagnoli), i.e. the reflected polynomial 0x82F63B78,
initial value and final xor 0xFFFFFFFF. `crc32c(data, crc)` continues a
checksum: crc32c(b, crc32c(a)) == crc32c(a + b).

Slicing-by-8, as the compiled twin: _TABLES[0] is the byte-at-a-time table;
_TABLES[k][n] is the CRC of byte n followed by k zero bytes, so eight input
bytes (one little-endian 64-bit word) are folded with eight lookups.
"""

import struct

__all__ = ["POLYNOMIAL", "crc32c"]

POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reversed
_MASK32 = 0xFFFFFFFF
_WORDS = struct.Struct("<Q")


def _build_tables() -> tuple[list[int], ...]:
    first = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (POLYNOMIAL if c & 1 else 0)
        first.append(c)
    tables = [first]
    for _ in range(1, 8):
        prev = tables[-1]
        tables.append([first[c & 0xFF] ^ (c >> 8) for c in prev])
    return tuple(tables)


_TABLES = _build_tables()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC-32C of `data` (any buffer), continuing from the checksum `crc`."""
    if not 0 <= crc <= _MASK32:
        raise OverflowError("crc must be a 32-bit unsigned integer")
    t0, t1, t2, t3, t4, t5, t6, t7 = _TABLES
    data = memoryview(data).cast("B")
    state = crc ^ _MASK32
    whole = len(data) & ~7
    for (word,) in _WORDS.iter_unpack(data[:whole]):
        lo = state ^ (word & _MASK32)
        hi = word >> 32
        state = (
            t7[lo & 0xFF]
            ^ t6[(lo >> 8) & 0xFF]
            ^ t5[(lo >> 16) & 0xFF]
            ^ t4[lo >> 24]
            ^ t3[hi & 0xFF]
            ^ t2[(hi >> 8) & 0xFF]
            ^ t1[(hi >> 16) & 0xFF]
            ^ t0[hi >> 24]
        )
    for byte in data[whole:]:
        state = t0[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state ^ _MASK32
