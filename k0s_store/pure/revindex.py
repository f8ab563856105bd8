"""Hot loops over the `index` DB: the pure-Python twin of src_ext/revindex.pyx.

Byte formats (documented with examples in k0s_store/mvcc/key_index.py and
k0s_store/mvcc/index.py):

    record = main (8 bytes, big-endian) | sub (8 bytes, big-endian) | flag (1 byte)
    flag   = 0 for a put, 1 for a tombstone; + 2 (HISTORY_MARK) on an index
             entry's first record when older records are in history chunks
    group entry = key length (4 bytes, big-endian) | key
                  | records length (4 bytes, big-endian) | records

A key's records are in ascending revision order; a tombstone ends a
generation (etcd's keyIndex flattened).
"""

import struct

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

_RECORD = struct.Struct(">QQB")
RECORD_SIZE = _RECORD.size  # 17
_TOMBSTONE = 1
HISTORY_MARK = 2
# An index entry past SPLIT_RECORDS records keeps its newest KEPT_RECORDS and
# moves the older ones to a history chunk (k0s_store/mvcc/key_index.py).
SPLIT_RECORDS = 1024
KEPT_RECORDS = 256
# A history chunk holds at most what one such split moves.
CHUNK_RECORDS = SPLIT_RECORDS + 1 - KEPT_RECORDS
# A long-key group's DB key: 480 bytes of key prefix + a 0 byte (see index.py).
GROUP_KEY_LEN = 481
_LEN = struct.Struct(">I")
_REV_KEY = struct.Struct(">Q1sQ")  # codec.rev_key of a live revision

Revision = tuple[int, int, bool]  # (main, sub, tombstone)


def record(main: int, sub: int, tombstone: bool = False) -> bytes:
    """One packed record."""
    return _RECORD.pack(main, sub, _TOMBSTONE if tombstone else 0)


def unpack(records: bytes) -> list[Revision]:
    """All records, oldest first."""
    return [(m, s, bool(f & _TOMBSTONE)) for m, s, f in _RECORD.iter_unpack(records)]


def pack(revisions: list[Revision]) -> bytes:
    """The inverse of `unpack`."""
    return b"".join(record(m, s, t) for m, s, t in revisions)


def split_history(records: bytes) -> tuple[bytes, bytes] | None:
    """A short key's records (oldest first) past SPLIT_RECORDS as (history
    chunk, the rest): the chunk takes the oldest records, up to CHUNK_RECORDS
    and leaving at least KEPT_RECORDS, its first record unmarked; the rest's
    first is marked. None when they fit one entry. Split the rest again
    until None for a whole history."""
    if len(records) <= SPLIT_RECORDS * RECORD_SIZE:
        return None
    moved = min(len(records) - KEPT_RECORDS * RECORD_SIZE, CHUNK_RECORDS * RECORD_SIZE)
    chunk, entry = bytearray(records[:moved]), bytearray(records[moved:])
    chunk[16] &= ~HISTORY_MARK
    entry[16] |= HISTORY_MARK
    return bytes(chunk), bytes(entry)


def latest(records: bytes) -> Revision:
    """The newest record."""
    main, sub, flag = _RECORD.unpack_from(records, len(records) - RECORD_SIZE)
    return main, sub, bool(flag & _TOMBSTONE)


def live_at(records: bytes, rev: int) -> tuple[int, int] | None:
    """(main, sub) of the key's value at `rev`, or None if it did not exist then."""
    pos = len(records) - RECORD_SIZE
    while pos >= 0:
        main, sub, flag = _RECORD.unpack_from(records, pos)
        if main <= rev:
            return None if flag & _TOMBSTONE else (main, sub)
        pos -= RECORD_SIZE
    return None


def live_rev_key(records: bytes, rev: int) -> bytes | None:
    """The `key` DB key (codec.rev_key) of the key's value at `rev`, or None."""
    live = live_at(records, rev)
    return None if live is None else _REV_KEY.pack(live[0], b"_", live[1])


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
    """Compact one key's history at `at_rev`: (records kept, revisions dropped);
    kept is b"" when the key leaves the index."""
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
    dropped = revisions[: len(revisions) - len(kept_revisions)]
    return pack(kept_revisions), dropped


def keep(records: bytes, at_rev: int) -> set[tuple[int, int]]:
    """Revisions (main, sub) <= at_rev that a compaction at at_rev would keep
    (etcd's keyIndex.keep, used by the hash)."""
    generations = _generations(unpack(records))
    gen, index = _do_compact(generations, at_rev)
    revs = generations[gen]
    if index == -1 or (index == len(revs) - 1 and gen != len(generations) - 1):
        return set()
    return {(revs[index][0], revs[index][1])}


def decode_group(value: bytes) -> list[tuple[bytes, bytes]]:
    """A long-key group's (full key, records) pairs, sorted by key."""
    entries = []
    pos, end = 0, len(value)
    while pos < end:
        (n,) = _LEN.unpack_from(value, pos)
        key = value[pos + 4 : pos + 4 + n]
        pos += 4 + n
        (n,) = _LEN.unpack_from(value, pos)
        entries.append((key, value[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return entries


def encode_group(entries: list[tuple[bytes, bytes]]) -> bytes:
    """The inverse of `decode_group` (entries must be sorted by key)."""
    parts = []
    for key, records in entries:
        parts += (_LEN.pack(len(key)), key, _LEN.pack(len(records)), records)
    return b"".join(parts)
