"""The index DB's record loops, both twins: etcd's worked example and twin agreement.

The pure twin is the reference (it is the key index's original code); the
compiled one must give the same answer for every history and revision.
"""

import random

import pytest
from harness.twins import twin, twin_fixture

from k0s_store.pure import codec as pure_codec

pure_revindex = twin("revindex", "pure")


revindex = twin_fixture("revindex")


def compiled():
    return twin("revindex", "compiled")


# etcd's key_index.go example: put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0)
EXAMPLE = [(1, 0, False), (2, 0, False), (3, 0, True), (4, 0, False), (5, 0, True)]


def test_worked_example(revindex):
    records = revindex.pack(EXAMPLE)
    assert revindex.unpack(records) == EXAMPLE
    assert revindex.latest(records) == (5, 0, True)
    assert [revindex.live_at(records, r) for r in range(7)] == [
        None,
        (1, 0),
        (2, 0),
        None,
        (4, 0),
        None,
        None,
    ]
    assert revindex.live_rev_key(records, 4) == pure_codec.rev_key(4, 0)
    assert revindex.live_rev_key(records, 3) is None
    kept = {r: revindex.unpack(revindex.compact(records, r)[0]) for r in range(1, 7)}
    assert kept[2] == EXAMPLE[1:]
    assert kept[4] == EXAMPLE[3:]
    assert kept[5] == kept[6] == []
    assert revindex.compact(records, 4)[1] == EXAMPLE[:3]
    assert [revindex.keep(records, r) for r in range(1, 7)] == [
        {(1, 0)},
        {(2, 0)},
        set(),
        {(4, 0)},
        set(),
        set(),
    ]


def random_history(rng: random.Random) -> list[tuple[int, int, bool]]:
    revs, main, live = [], rng.randint(1, 5), False
    for _ in range(rng.randint(0, 12)):
        tombstone = live and rng.random() < 0.3
        revs.append((main, rng.randint(0, 3), tombstone))
        live = not tombstone
        main += rng.randint(1, 3)
    return revs


def test_twins_agree_on_random_histories():
    native = compiled()
    rng = random.Random(5)
    for _ in range(500):
        history = random_history(rng)
        records = pure_revindex.pack(history)
        assert native.pack(history) == records
        assert native.unpack(records) == history
        if history:
            assert native.latest(records) == pure_revindex.latest(records)
        for rev in range(0, (history[-1][0] + 2) if history else 3):
            assert native.live_at(records, rev) == pure_revindex.live_at(records, rev)
            assert native.live_rev_key(records, rev) == pure_revindex.live_rev_key(records, rev)
            assert native.compact(records, rev) == pure_revindex.compact(records, rev)
            assert native.keep(records, rev) == pure_revindex.keep(records, rev)


def test_split_history(revindex):
    """Past SPLIT_RECORDS the oldest records, at most CHUNK_RECORDS and leaving
    KEPT_RECORDS, go to a chunk, its first unmarked; the rest's first is marked;
    splitting the rest again until None cuts a whole history; twins agree."""
    size, mark = revindex.RECORD_SIZE, revindex.HISTORY_MARK
    rng = random.Random(3)
    for n in (1, revindex.SPLIT_RECORDS, revindex.SPLIT_RECORDS + 1, 3000, 10_000):
        revisions = [(i + 1, rng.randrange(3), rng.random() < 0.2) for i in range(n)]
        records = bytearray(revindex.pack(revisions))
        records[16] |= mark  # an entry that was split before
        rest, chunks = bytes(records), []
        while (split := revindex.split_history(rest)) is not None:
            assert split == pure_revindex.split_history(rest)
            chunk, rest = split
            assert len(chunk) <= revindex.CHUNK_RECORDS * size
            assert len(rest) >= revindex.KEPT_RECORDS * size
            assert rest[16] & mark and not chunk[16] & mark
            chunks.append(chunk)
        assert pure_revindex.split_history(rest) is None
        if n <= revindex.SPLIT_RECORDS:
            assert not chunks
            continue
        if n == revindex.SPLIT_RECORDS + 1:  # what a write past the limit moves
            assert len(chunks) == 1 and len(rest) == revindex.KEPT_RECORDS * size
        assert len(rest) <= revindex.SPLIT_RECORDS * size
        unmarked = rest[:16] + bytes([rest[16] & ~mark]) + rest[17:]
        assert revindex.unpack(b"".join(chunks) + unmarked) == revisions


def test_malformed_records_are_rejected():
    with pytest.raises(ValueError):
        compiled().live_at(b"\0" * 16, 1)
    with pytest.raises(ValueError):
        compiled().decode_group(b"\0\0\0\x05ab")


def test_group_round_trip(revindex):
    entries = [(b"a" * 500, pure_revindex.record(3, 0)), (b"a" * 600, pure_revindex.record(4, 1))]
    value = revindex.encode_group(entries)
    assert value == pure_revindex.encode_group(entries)
    assert revindex.decode_group(value) == entries
