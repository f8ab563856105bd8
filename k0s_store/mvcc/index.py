"""The `index` DB: user key -> its revision records (key_index.py).

LMDB keys are at most 511 bytes but etcd keys may be as long as a request
(about 1.5 MiB), so the DB key of a user key is:

- a short key (1..SHORT_KEY_MAX bytes): the key itself; the value is its
  records.
- a long key (> SHORT_KEY_MAX bytes): a *group* key, the first SHORT_KEY_MAX
  bytes of the user key + GROUP_MARK (SHORT_KEY_MAX + 1 bytes, a length no
  short key has). All long keys sharing that prefix live in one group value,
  sorted by full key:

      entry = key length (4 bytes, big-endian) | key
              | records length (4 bytes, big-endian) | records

Order is preserved: a short key k sorts against a group with prefix P
exactly as against each of the group's full keys (all longer than P and
starting with it): k < P.. iff k <= P when len(k) <= len(P).

A short key's entry stays short however often the key is written (every
commit rewrites it whole): past revindex.SPLIT_RECORDS records, all but the
newest KEPT_RECORDS move to a *history chunk* in the `index_history` DB and the
entry's first record takes HISTORY_MARK (flag + 2):

    chunk key = key length (2 bytes, big-endian) | key
                | main revision of the chunk's first record (8 bytes, big-endian)
    chunk     = records, oldest first, unmarked

A key's chunks sort together, oldest first, before its entry's records. A
read at the entry's revisions needs the entry alone; one at an older
revision R takes the chunk with the largest first revision <= R. get, scan
and put here deal in all of a key's records (compaction, hash), append in
new ones (restore); both cut a longer history into chunks of at most
revindex.CHUNK_RECORDS, as the writes would have.
"""

from collections.abc import Iterable, Iterator

from k0s_store.backend import Databases
from k0s_store.core import lmdb, lmdb_kv, revindex

SHORT_KEY_MAX = 480
RECORD_SIZE = revindex.RECORD_SIZE
HISTORY_MARK = revindex.HISTORY_MARK
GROUP_MARK = b"\x00"
_GROUP_KEY_LEN = SHORT_KEY_MAX + 1
assert revindex.GROUP_KEY_LEN == _GROUP_KEY_LEN

# The group value codec lives in the compiled core (hot in range scans).
decode_group = revindex.decode_group
encode_group = revindex.encode_group


def db_key(key: bytes) -> bytes:
    """The `index` DB key under which `key` is found."""
    return key if len(key) <= SHORT_KEY_MAX else key[:SHORT_KEY_MAX] + GROUP_MARK


def get(txn: lmdb.Transaction, dbs: Databases, key: bytes) -> bytes | None:
    """All the records of `key` (its history chunks' too), or None if it is not
    in the index."""
    return full(txn, dbs, key, lmdb_kv.index_records(txn, dbs.index, key))


def full(txn: lmdb.Transaction, dbs: Databases, key: bytes, records: bytes | None) -> bytes | None:
    """A short key's index entry `records` with the records of its history
    chunks before them, if it has any (the entry's mark cleared)."""
    if not records or not records[16] & HISTORY_MARK:
        return records
    chunks = [chunk for _, chunk in _chunks(txn, dbs.index_history, key)]
    first = bytes([records[16] & ~HISTORY_MARK])
    return b"".join(chunks) + records[:16] + first + records[17:]


def put(txn: lmdb.Transaction, dbs: Databases, key: bytes, records: bytes) -> None:
    """Set all the records of `key` (a short key's past SPLIT_RECORDS go partly
    to history chunks, as its writes would have moved them); empty records
    remove it from the index."""
    db = dbs.index
    if len(key) <= SHORT_KEY_MAX:
        for chunk_key, _ in _chunks(txn, dbs.index_history, key):
            txn.delete(chunk_key, db=dbs.index_history)
        if not records:
            txn.delete(key, db=db)
            return
        _put_entry(txn, dbs, key, records)
        return
    group_key = db_key(key)
    value = txn.get(group_key, db=db)
    entries = [e for e in decode_group(value) if e[0] != key] if value else []
    if records:
        entries.append((key, records))
        entries.sort()
    if entries:
        txn.put(group_key, encode_group(entries), db=db)
    else:
        txn.delete(group_key, db=db)


def append(txn: lmdb.Transaction, dbs: Databases, key: bytes, records: bytes) -> None:
    """Add `records`, newer than any of `key`'s, after them. A short key's
    history chunks are not read: the cost is that of its entry (restore)."""
    if len(key) > SHORT_KEY_MAX:
        put(txn, dbs, key, (get(txn, dbs, key) or b"") + records)
        return
    _put_entry(txn, dbs, key, (lmdb_kv.index_records(txn, dbs.index, key) or b"") + records)


def _put_entry(txn: lmdb.Transaction, dbs: Databases, key: bytes, records: bytes) -> None:
    """Write a short key's entry, moving its records past SPLIT_RECORDS to new
    history chunks of at most CHUNK_RECORDS each (`revindex.split_history`)."""
    while (split := revindex.split_history(records)) is not None:
        chunk, records = split
        first_main = revindex.unpack(chunk[:RECORD_SIZE])[0][0]
        txn.put(lmdb_kv.history_key(key, first_main), chunk, db=dbs.index_history)
    txn.put(key, records, db=dbs.index)


def _chunks(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> list[tuple[bytes, bytes]]:
    """(DB key, records) of the history chunks of `key`, oldest first."""
    prefix = lmdb_kv.history_key(key, 0)[:-8]
    cursor = txn.cursor(db=db)
    found = []
    if cursor.set_range(prefix):
        for chunk_key, chunk in cursor.iternext():
            if len(chunk_key) != len(prefix) + 8 or not chunk_key.startswith(prefix):
                break
            found.append((chunk_key, chunk))
    return found


def items_from(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> Iterable[tuple]:
    """The DB's (DB key, value) items in order, from the first that may hold `key`."""
    cursor = txn.cursor(db=db)
    return cursor.iternext() if cursor.set_range(db_key(key)) else ()


def scan(
    txn: lmdb.Transaction, dbs: Databases, key: bytes, end: bytes | None
) -> Iterator[tuple[bytes, bytes]]:
    """(user key, all its records) for every indexed key in [key, end), in key order.

    end None means the single key `key`; b"" means every key >= key.
    """
    if end is None:
        records = get(txn, dbs, key)
        if records is not None:
            yield key, records
        return
    if end and end <= key:
        return
    for dbk, value in items_from(txn, dbs.index, key):
        if len(dbk) != _GROUP_KEY_LEN:
            if end and dbk >= end:
                return
            if dbk >= key:
                yield dbk, full(txn, dbs, dbk, value)
            continue
        for full_key, records in decode_group(value):
            if end and full_key >= end:
                return
            if full_key >= key:
                yield full_key, records
