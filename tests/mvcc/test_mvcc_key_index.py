"""key_index: etcd's worked example (key_index.go) on the flat record form."""

import pytest

from k0s_store.mvcc import key_index

# put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0)
EXAMPLE = [(1, 0, False), (2, 0, False), (3, 0, True), (4, 0, False), (5, 0, True)]


def records(revs) -> bytes:
    return key_index.pack(revs)


def test_pack_roundtrip_and_latest():
    packed = records(EXAMPLE)
    assert len(packed) == 5 * key_index.RECORD_SIZE
    assert key_index.unpack(packed) == EXAMPLE
    assert key_index.latest(packed) == (5, 0, True)


@pytest.mark.parametrize(
    ("rev", "expected"),
    [(0, None), (1, (1, 0)), (2, (2, 0)), (3, None), (4, (4, 0)), (5, None), (9, None)],
)
def test_live_at(rev, expected):
    assert key_index.live_at(records(EXAMPLE), rev) == expected


@pytest.mark.parametrize(
    ("at_rev", "kept"),
    [
        (1, EXAMPLE),
        (2, EXAMPLE[1:]),
        (3, EXAMPLE[3:]),
        (4, EXAMPLE[3:]),
        (5, []),
        (6, []),
    ],
)
def test_compact_worked_example(at_rev, kept):
    packed = records(EXAMPLE)
    new, dropped = key_index.compact(packed, at_rev)
    assert key_index.unpack(new) == kept
    assert dropped == EXAMPLE[: len(EXAMPLE) - len(kept)]


def test_compact_keeps_live_current_generation():
    revs = [(1, 0, False), (2, 0, True), (3, 0, False), (4, 1, False), (7, 0, False)]
    new, dropped = key_index.compact(records(revs), 5)
    assert key_index.unpack(new) == [(4, 1, False), (7, 0, False)]
    assert dropped == revs[:3]


@pytest.mark.parametrize(
    ("at_rev", "kept"), [(1, {(1, 0)}), (2, {(2, 0)}), (3, set()), (4, {(4, 0)}), (5, set())]
)
def test_keep(at_rev, kept):
    assert key_index.keep(records(EXAMPLE), at_rev) == kept
