"""CRC-32C, both twins: published check values, chunked == one-shot, twins agree.

Every test runs on the pure-Python twin and on the compiled module (imported
directly, not through k0s_store.core, so both are always covered).
"""

import random

import pytest
from harness.twins import twin, twin_fixture

# The CRC catalogue's check value and RFC 3720 (iSCSI) appendix B.4 vectors.
VECTORS = [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (b"The quick brown fox jumps over the lazy dog", 0x22620404),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


crc = twin_fixture("crc")


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_known_vectors(crc, data, expected):
    assert crc.crc32c(data) == expected


def test_buffers_of_any_kind(crc):
    data = b"123456789"
    assert crc.crc32c(bytearray(data)) == crc.crc32c(memoryview(data)) == 0xE3069283
    assert crc.crc32c(memoryview(b"xx123456789yy")[2:-2]) == 0xE3069283


def test_incremental_equals_one_shot(crc):
    rng = random.Random(7)
    data = rng.randbytes(1000)
    whole = crc.crc32c(data)
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(data) + 1), rng.randint(1, 6)))
        checksum = 0
        for start, stop in zip([0, *cuts], [*cuts, len(data)], strict=True):
            checksum = crc.crc32c(data[start:stop], checksum)
        assert checksum == whole


def test_empty_continuation_keeps_the_checksum(crc):
    assert crc.crc32c(b"", 0xE3069283) == 0xE3069283


def test_crc_out_of_range_is_rejected(crc):
    for bad in (-1, 1 << 32):
        with pytest.raises(OverflowError):
            crc.crc32c(b"x", bad)


def test_twins_agree_on_every_length_and_alignment():
    pure_crc, compiled_crc = twin("crc", "pure"), twin("crc", "compiled")
    rng = random.Random(11)
    data = rng.randbytes(300)
    for start in range(9):
        for stop in range(start, len(data), 7):
            chunk = data[start:stop]
            seed = rng.getrandbits(32)
            assert compiled_crc.crc32c(chunk, seed) == pure_crc.crc32c(chunk, seed)
