"""Key-index reads through the LMDB binding's API: the pure-Python twin of
src_ext/lmdb_kv.pyx (which reads through LMDB's C API).

Byte formats: k0s_store/mvcc/index.py (DB keys, long-key groups) and
k0s_store/mvcc/key_index.py (records).
"""

from k0s_store.pure.revindex import GROUP_KEY_LEN, decode_group, live_rev_key

__all__ = ["get_live", "index_records", "range_live"]

_SHORT_KEY_MAX = GROUP_KEY_LEN - 1


def _db_key(key: bytes) -> bytes:
    return key if len(key) <= _SHORT_KEY_MAX else key[:_SHORT_KEY_MAX] + b"\0"


def index_records(txn, index_db, key: bytes) -> bytes | None:
    """The revision records of `key` in the `index` DB, or None."""
    if len(key) <= _SHORT_KEY_MAX:
        return txn.get(key, db=index_db)
    value = txn.get(_db_key(key), db=index_db)
    if value is None:
        return None
    for full_key, records in decode_group(value):
        if full_key == key:
            return records
    return None


def get_live(txn, index_db, key_db, key: bytes, rev: int) -> bytes | None:
    """The stored KeyValue of `key` live at `rev`, or None."""
    records = index_records(txn, index_db, key)
    rev_key = records and live_rev_key(records, rev)
    return txn.get(rev_key, db=key_db) if rev_key else None


def range_live(
    txn, index_db, key_db, key: bytes, end: bytes, rev: int, limit: int, fetch: bool
) -> tuple[list[bytes], int]:
    """Over the user keys in [key, end) (end b"": no bound): (the stored
    KeyValue of each key live at `rev`, at most `limit` of them (0: all),
    none unless `fetch`; the number of keys live at `rev`)."""
    found: list[bytes] = []
    count = 0
    cursor = txn.cursor(db=index_db)
    if not cursor.set_range(_db_key(key)):
        return found, count
    for db_key, value in cursor.iternext():
        pairs = decode_group(value) if len(db_key) == GROUP_KEY_LEN else ((db_key, value),)
        for user_key, records in pairs:
            if end and user_key >= end:
                return found, count
            if user_key < key:
                continue
            rev_key = live_rev_key(records, rev)
            if rev_key is None:
                continue
            count += 1
            if fetch and (not limit or len(found) < limit):
                found.append(txn.get(rev_key, db=key_db))
    return found, count
