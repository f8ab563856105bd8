"""The revisions of one user key: generations, lookups and compaction.

A key's history is kept as one flat byte string of fixed-size records, in
ascending revision order (the value of the `index` DB, see index.py):

    record = main (8 bytes, big-endian) | sub (8 bytes, big-endian) | flag (1 byte)
    flag   = 0 for a put, 1 for a tombstone (a delete)

A tombstone ends a *generation*; the records after the last tombstone form
the current generation (empty while the key is deleted). This is etcd's
keyIndex flattened. The worked example of etcd's key_index.go, reused by the
tests: put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0) gives

    records: 1.0 2.0 3.0(t) 4.0 5.0(t)
    generations: {1.0, 2.0, 3.0(t)} {4.0, 5.0(t)} {}

Compaction at rev keeps, of revisions <= rev, only the largest one, unless
that one is a tombstone (its generation then goes entirely):

    compact(2): 2.0 3.0(t) 4.0 5.0(t)
    compact(4): 4.0 5.0(t)
    compact(5): (nothing: the key leaves the index)
    compact(6): (nothing)

Lookup at rev: the largest record with main <= rev, unless it is a
tombstone (the key did not exist then).
"""

import struct

RECORD = struct.Struct(">QQB")
RECORD_SIZE = RECORD.size  # 17
_TOMBSTONE = 1

Revision = tuple[int, int, bool]  # (main, sub, tombstone)


def record(main: int, sub: int, tombstone: bool = False) -> bytes:
    """One packed record."""
    return RECORD.pack(main, sub, _TOMBSTONE if tombstone else 0)


def unpack(records: bytes) -> list[Revision]:
    """All records, oldest first."""
    return [(m, s, f == _TOMBSTONE) for m, s, f in RECORD.iter_unpack(records)]


def pack(revisions: list[Revision]) -> bytes:
    """The inverse of `unpack`."""
    return b"".join(record(m, s, t) for m, s, t in revisions)


def latest(records: bytes) -> Revision:
    """The newest record."""
    main, sub, flag = RECORD.unpack_from(records, len(records) - RECORD_SIZE)
    return main, sub, flag == _TOMBSTONE


def live_at(records: bytes, rev: int) -> tuple[int, int] | None:
    """(main, sub) of the key's value at `rev`, or None if it did not exist then."""
    pos = len(records) - RECORD_SIZE
    while pos >= 0:
        main, sub, flag = RECORD.unpack_from(records, pos)
        if main <= rev:
            return None if flag == _TOMBSTONE else (main, sub)
        pos -= RECORD_SIZE
    return None


def _generations(revisions: list[Revision]) -> list[list[Revision]]:
    generations: list[list[Revision]] = [[]]
    for rev in revisions:
        generations[-1].append(rev)
        if rev[2]:
            generations.append([])
    return generations


def _do_compact(generations: list[list[Revision]], at_rev: int) -> tuple[int, int]:
    """etcd's doCompact: the generation holding at_rev and the index of its
    largest revision <= at_rev in it (-1 if none)."""
    gen = 0
    while gen < len(generations) - 1 and generations[gen][-1][0] <= at_rev:
        gen += 1
    revs = generations[gen]
    index = len(revs) - 1
    while index >= 0 and revs[index][0] > at_rev:
        index -= 1
    return gen, index


def compact(records: bytes, at_rev: int) -> tuple[bytes, list[Revision]]:
    """Compact one key's history at `at_rev`.

    Returns:
        (records kept, revisions dropped); kept is b"" when the key leaves the index.
    """
    revisions = unpack(records)
    generations = _generations(revisions)
    gen, index = _do_compact(generations, at_rev)
    revs = generations[gen]
    if revs:
        if index != -1:
            generations[gen] = revs = revs[index:]
        if len(revs) == 1 and gen != len(generations) - 1:
            gen += 1  # only the tombstone is left: the generation goes
    kept_revisions = [rev for g in generations[gen:] for rev in g]
    kept = pack(kept_revisions)
    dropped = revisions[: len(revisions) - len(kept_revisions)]
    return kept, dropped


def keep(records: bytes, at_rev: int) -> set[tuple[int, int]]:
    """Revisions (main, sub) <= at_rev that a compaction at at_rev would keep
    (etcd's keyIndex.keep, used by the hash)."""
    generations = _generations(unpack(records))
    gen, index = _do_compact(generations, at_rev)
    revs = generations[gen]
    if index == -1 or (index == len(revs) - 1 and gen != len(generations) - 1):
        return set()
    return {(revs[index][0], revs[index][1])}
