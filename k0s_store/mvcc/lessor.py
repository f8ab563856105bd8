"""Leases: the persisted table, the keys attached to each, and expiry.

Byte formats:

- `lease` DB: id (8 bytes, big-endian signed) -> granted TTL in seconds
  (8 bytes, big-endian signed) | deadline (8-byte big-endian IEEE double,
  seconds since the Unix epoch).
- `lease_keys` DB: id (8 bytes, as above) | key tag -> the full user key.
  The key tag is the user key itself when it is at most SHORT_KEY_MAX bytes,
  else its first 448 bytes + its SHA-256 + b"\\x01" (481 bytes, a length no
  short key has), so that LMDB's key limit never reaches users.

Deadlines are wall-clock times so that a lease keeps its remaining TTL
across a restart. A lease whose deadline passed while the store was down is
revoked at start (the first expiry check), with its keys: its holder could
not have kept it alive. Renewals (keep-alives) move the deadline in memory at
once; the new deadline is written with the next write batch (the expiry
thread triggers one within a check interval), so a crash can lose at most
that much of a renewal.

The in-memory `LeaseTable` holds the committed leases (ids, TTLs,
deadlines) for renewals, expiry and time-to-live; everything else is read
from LMDB inside the write transaction, so a batch sees its own grants.
"""

import hashlib
import struct
import threading
import time

from k0s_store.core import lmdb
from k0s_store.mvcc.index import SHORT_KEY_MAX

MAX_LEASE_TTL = 9_000_000_000
LEASE_RECORD = struct.Struct(">qd")
LEASE_ID = struct.Struct(">q")
_LONG_KEY_HEAD = 448
_LONG_KEY_MARK = b"\x01"


def lease_key(lease_id: int, key: bytes) -> bytes:
    """The `lease_keys` DB key of `key` attached to `lease_id`."""
    if len(key) > SHORT_KEY_MAX:
        key = key[:_LONG_KEY_HEAD] + hashlib.sha256(key).digest() + _LONG_KEY_MARK
    return LEASE_ID.pack(lease_id) + key


def attached_keys(txn: lmdb.Transaction, db: lmdb._Database, lease_id: int) -> list[bytes]:
    """The keys attached to a lease, sorted."""
    prefix = LEASE_ID.pack(lease_id)
    cursor = txn.cursor(db=db)
    keys = []
    if cursor.set_range(prefix):
        for k, v in cursor.iternext():
            if not k.startswith(prefix):
                break
            keys.append(v)
    return sorted(keys)


class LeaseTable:
    """The committed leases: id -> [granted TTL, deadline]; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[int, list] = {}
        self._dirty: set[int] = set()

    def load(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        """Read every lease from the `lease` DB."""
        with self._lock:
            self._leases = {
                LEASE_ID.unpack(k)[0]: list(LEASE_RECORD.unpack(v)) for k, v in txn.cursor(db=db)
            }

    def add(self, lease_id: int, ttl: int, deadline: float) -> None:
        with self._lock:
            self._leases[lease_id] = [ttl, deadline]

    def remove(self, lease_id: int) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)
            self._dirty.discard(lease_id)

    def get(self, lease_id: int) -> tuple[int, float] | None:
        """(granted TTL, deadline) of a committed lease, or None."""
        with self._lock:
            lease = self._leases.get(lease_id)
            return None if lease is None else (lease[0], lease[1])

    def renew(self, lease_id: int) -> int | None:
        """Push the deadline a full TTL ahead; the TTL, or None if the lease is
        missing or already expired (etcd answers "not found" then)."""
        now = time.time()
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None or lease[1] <= now:
                return None
            lease[1] = now + lease[0]
            self._dirty.add(lease_id)
            return lease[0]

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._leases)

    def expired(self, now: float) -> list[int]:
        """Leases whose deadline has passed, soonest first."""
        with self._lock:
            due = [(d, i) for i, (_, d) in self._leases.items() if d <= now]
        return [i for _, i in sorted(due)]

    def has_dirty(self) -> bool:
        with self._lock:
            return bool(self._dirty)

    def flush_dirty(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        """Write renewed deadlines into the batch's write transaction."""
        with self._lock:
            dirty = [(i, self._leases[i]) for i in self._dirty if i in self._leases]
            self._dirty.clear()
        for lease_id, (ttl, deadline) in dirty:
            if txn.get(LEASE_ID.pack(lease_id), db=db) is not None:
                txn.put(LEASE_ID.pack(lease_id), LEASE_RECORD.pack(ttl, deadline), db=db)
