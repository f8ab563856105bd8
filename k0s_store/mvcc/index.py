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
"""

from collections.abc import Iterable, Iterator

from k0s_store.core import lmdb, lmdb_kv, revindex

SHORT_KEY_MAX = 480
GROUP_MARK = b"\x00"
_GROUP_KEY_LEN = SHORT_KEY_MAX + 1
assert revindex.GROUP_KEY_LEN == _GROUP_KEY_LEN

# The group value codec lives in the compiled core (hot in range scans).
decode_group = revindex.decode_group
encode_group = revindex.encode_group


def db_key(key: bytes) -> bytes:
    """The `index` DB key under which `key` is found."""
    return key if len(key) <= SHORT_KEY_MAX else key[:SHORT_KEY_MAX] + GROUP_MARK


def get(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> bytes | None:
    """The records of `key`, or None if it is not in the index."""
    return lmdb_kv.index_records(txn, db, key)


def put(txn: lmdb.Transaction, db: lmdb._Database, key: bytes, records: bytes) -> None:
    """Set the records of `key`; empty records remove it from the index."""
    if len(key) <= SHORT_KEY_MAX:
        if records:
            txn.put(key, records, db=db)
        else:
            txn.delete(key, db=db)
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


def items_from(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> Iterable[tuple]:
    """The DB's (DB key, value) items in order, from the first that may hold `key`."""
    cursor = txn.cursor(db=db)
    return cursor.iternext() if cursor.set_range(db_key(key)) else ()


def scan(
    txn: lmdb.Transaction, db: lmdb._Database, key: bytes, end: bytes | None
) -> Iterator[tuple[bytes, bytes]]:
    """(user key, records) for every indexed key in [key, end), in key order.

    end None means the single key `key`; b"" means every key >= key.
    """
    if end is None:
        records = get(txn, db, key)
        if records is not None:
            yield key, records
        return
    if end and end <= key:
        return
    for dbk, value in items_from(txn, db, key):
        if len(dbk) != _GROUP_KEY_LEN:
            if end and dbk >= end:
                return
            if dbk >= key:
                yield dbk, value
            continue
        for full_key, records in decode_group(value):
            if end and full_key >= end:
                return
            if full_key >= key:
                yield full_key, records
