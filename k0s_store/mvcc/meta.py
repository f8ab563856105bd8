"""The `meta` DB: the store's own bookkeeping, one LMDB key per fact.

Values are 8-byte big-endian unsigned integers unless said otherwise:

- CURRENT_REV         the last committed main revision (1 in a fresh store)
- COMPACT_REV         the last scheduled compaction (reads below it fail);
                      absent until the first one (etcd's -1)
- FINISHED_COMPACT    the last compaction physically done (<= COMPACT_REV)
- CLUSTER_ID, MEMBER_ID  random nonzero ids chosen at creation
- ALARMS              one byte per raised alarm type (etcd's AlarmType), sorted
"""

import secrets
import struct

from k0s_store.core import lmdb

CURRENT_REV = b"current_rev"
COMPACT_REV = b"compact_rev"
FINISHED_COMPACT = b"finished_compact_rev"
CLUSTER_ID = b"cluster_id"
MEMBER_ID = b"member_id"
ALARMS = b"alarms"

_U64 = struct.Struct(">Q")


def get_int(txn: lmdb.Transaction, db: lmdb._Database, name: bytes, default: int = 0) -> int:
    """An integer fact, or `default` if never written."""
    value = txn.get(name, db=db)
    return default if value is None else _U64.unpack(value)[0]


def put_int(txn: lmdb.Transaction, db: lmdb._Database, name: bytes, value: int) -> None:
    """Write an integer fact."""
    txn.put(name, _U64.pack(value), db=db)


def initialize(txn: lmdb.Transaction, db: lmdb._Database) -> None:
    """Give a fresh store revision 1 and its ids (no-op on an existing store)."""
    if txn.get(CURRENT_REV, db=db) is not None:
        return
    put_int(txn, db, CURRENT_REV, 1)
    for name in (CLUSTER_ID, MEMBER_ID):
        put_int(txn, db, name, secrets.randbits(64) or 1)


def get_alarms(txn: lmdb.Transaction, db: lmdb._Database) -> list[int]:
    """Raised alarm types, sorted."""
    return sorted(txn.get(ALARMS, db=db) or b"")


def put_alarms(txn: lmdb.Transaction, db: lmdb._Database, alarms: list[int]) -> None:
    """Replace the raised alarm types."""
    txn.put(ALARMS, bytes(sorted(set(alarms))), db=db)
