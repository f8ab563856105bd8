"""The key index and the key DB through the LMDB binding's API: the
pure-Python twin of src_ext/lmdb_kv.pyx (which goes through LMDB's C API).

Byte formats: k0s_store/mvcc/index.py (DB keys, long-key groups) and
k0s_store/mvcc/key_index.py (records).
"""

import struct

from k0s_store.pure.codec import (
    decode_kv,
    encode_kv,
    encode_range_response,
    kv_without_value,
    rev_key,
)
from k0s_store.pure.revindex import (
    GROUP_KEY_LEN,
    HISTORY_MARK,
    decode_group,
    encode_group,
    latest,
    live_rev_key,
    record,
    split_history,
)

__all__ = [
    "get_live",
    "history_key",
    "index_records",
    "put_revision",
    "range_live",
    "range_response",
    "tombstone",
]

_SHORT_KEY_MAX = GROUP_KEY_LEN - 1
_MAIN = struct.Struct(">Q")


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


def history_key(key: bytes, main: int) -> bytes:
    """The history DB key of `key`'s chunk whose first record is at `main`."""
    if len(key) > _SHORT_KEY_MAX:
        raise ValueError("long keys keep no history chunks")
    return len(key).to_bytes(2, "big") + key + _MAIN.pack(main)


def _live_rev_key(txn, history_db, key: bytes, records: bytes, rev: int) -> bytes | None:
    """The rev key of `key`'s record live at `rev`, from its index entry or,
    when older, its history chunks (the one with the largest first revision
    <= rev holds it)."""
    found = live_rev_key(records, rev)
    if found or not records or not records[16] & HISTORY_MARK or _first_main(records) <= rev:
        return found
    cursor = txn.cursor(db=history_db)
    target = history_key(key, rev + 1)
    if not (cursor.prev() if cursor.set_range(target) else cursor.last()):
        return None
    chunk_key, chunk = cursor.item()
    if len(chunk_key) != len(target) or chunk_key[:-8] != target[:-8]:
        return None
    return live_rev_key(chunk, rev)


def _first_main(records: bytes) -> int:
    return _MAIN.unpack_from(records)[0]


def get_live(txn, index_db, key_db, history_db, key: bytes, rev: int) -> bytes | None:
    """The stored KeyValue of `key` live at `rev`, or None."""
    records = index_records(txn, index_db, key)
    rev_key = records and _live_rev_key(txn, history_db, key, records, rev)
    return txn.get(rev_key, db=key_db) if rev_key else None


def range_live(
    txn,
    index_db,
    key_db,
    history_db,
    key: bytes,
    end: bytes,
    rev: int,
    limit: int,
    fetch: bool,
    keys_only: bool = False,
) -> tuple[list[bytes], int]:
    """Over the user keys in [key, end) (end b"": no bound): (the stored
    KeyValue of each key live at `rev`, at most `limit` of them (0: all),
    none unless `fetch`, without their values if `keys_only`; the number of
    keys live at `rev`)."""
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
            rev_key = _live_rev_key(txn, history_db, user_key, records, rev)
            if rev_key is None:
                continue
            count += 1
            if fetch and (not limit or len(found) < limit):
                kv = txn.get(rev_key, db=key_db)
                found.append(kv_without_value(kv) if keys_only else kv)
    return found, count


def range_response(
    txn,
    index_db,
    key_db,
    history_db,
    header: bytes,
    key: bytes,
    end: bytes | None,
    rev: int,
    limit: int,
) -> bytes:
    """A marshalled RangeResponse over `key` alone (end None) or the user keys
    in [key, end) (end b"": no bound): `header` (a ResponseHeader body), the
    stored KeyValues of the first `limit` keys live at `rev` (0: all), `more`
    when more are live, and their `count`."""
    if end is None:
        kv = get_live(txn, index_db, key_db, history_db, key, rev)
        kvs, count = ([], 0) if kv is None else ([kv], 1)
    else:
        kvs, count = range_live(txn, index_db, key_db, history_db, key, end, rev, limit, True)
    return encode_range_response(header, kvs, 0 < limit < count, count)


def _append_record(txn, index_db, history_db, key: bytes, new_record: bytes) -> None:
    """Add one record to the key's index entry (creating it); past SPLIT_RECORDS,
    all but the newest KEPT_RECORDS go to a new history chunk and the entry is
    marked."""
    if len(key) <= _SHORT_KEY_MAX:
        records = (txn.get(key, db=index_db) or b"") + new_record
        split = split_history(records)
        if split is not None:
            chunk, records = split
            txn.put(history_key(key, _first_main(chunk)), chunk, db=history_db)
        txn.put(key, records, db=index_db)
        return
    group_key = _db_key(key)
    value = txn.get(group_key, db=index_db)
    entries = decode_group(value) if value else []
    for i, (full_key, records) in enumerate(entries):
        if full_key == key:
            entries[i] = (full_key, records + new_record)
            break
    else:
        entries.append((key, new_record))
        entries.sort()
    txn.put(group_key, encode_group(entries), db=index_db)


def _latest_live(txn, index_db, key_db, key: bytes) -> bytes | None:
    records = index_records(txn, index_db, key)
    if not records:
        return None
    main, sub, deleted = latest(records)
    return None if deleted else txn.get(rev_key(main, sub), db=key_db)


def put_revision(
    txn,
    index_db,
    key_db,
    history_db,
    key: bytes,
    value: bytes,
    lease: int,
    main: int,
    sub: int,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> tuple[bytes, bytes | None, int] | None:
    """Write revision (main, sub) of `key`: a new version (etcd's put).

    Returns (the new KeyValue, the previous one or None, the previous lease
    or 0), or None, writing nothing, when an ignore flag asks for a value or
    lease the key does not have (it is not live).
    """
    create, version, old_lease = main, 1, 0
    prev = _latest_live(txn, index_db, key_db, key)
    if prev is not None:
        _, create, _, version, old_value, old_lease = decode_kv(prev)
        version += 1
        if ignore_value:
            value = old_value
        if ignore_lease:
            lease = old_lease
    elif ignore_value or ignore_lease:
        return None
    kv = encode_kv(key, create, main, version, value, lease)
    # Appended: revisions only grow (an out-of-order key is refused, as by LMDB).
    txn.put(rev_key(main, sub), kv, db=key_db, append=True)
    _append_record(txn, index_db, history_db, key, record(main, sub))
    return kv, prev, old_lease


def tombstone(txn, index_db, key_db, history_db, key: bytes, main: int, sub: int) -> bytes | None:
    """Write revision (main, sub) of a live `key` as its deletion; returns
    its last KeyValue (None, writing nothing, if it is not live)."""
    prev = _latest_live(txn, index_db, key_db, key)
    if prev is None:
        return None
    # etcd stores a tombstone as a KeyValue holding the key only.
    txn.put(rev_key(main, sub, True), encode_kv(key, 0, 0, 0, b"", 0), db=key_db, append=True)
    _append_record(txn, index_db, history_db, key, record(main, sub, True))
    return prev
