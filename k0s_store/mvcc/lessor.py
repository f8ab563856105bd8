"""Leases: the persisted table, the keys attached to each, and expiry.

Byte formats:

- `lease` DB: id (8 bytes, big-endian signed) -> granted TTL in seconds
  (8 bytes, big-endian signed). Records of earlier versions carry 8 more
  bytes (a wall-clock deadline) after the TTL; they are read the same way.
- `lease_keys` DB: id (8 bytes, as above) | key tag -> the full user key.
  The key tag is the user key itself when it is at most SHORT_KEY_MAX bytes,
  else its first 448 bytes + its SHA-256 + b"\\x01" (481 bytes, a length no
  short key has), so that LMDB's key limit never reaches users.

Deadlines live in memory only, as in etcd: when the store opens, every
lease's deadline becomes now + its TTL + `PROMOTE_EXTENSION_SECONDS`, which
is what etcd's lessor does when its member becomes leader (`Promote`, with
the election timeout as extension; a restart of a single member is such an
election). So a lease that "expired" while the store was down keeps its keys
and gets its full TTL back, and clients with keep-alives have the time to
come back (the kube-apiserver relies on it). Renewals therefore need no
write at all.

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
LEASE_TTL = struct.Struct(">q")
LEASE_ID = struct.Struct(">q")
# etcd's default election timeout (--election-timeout=1000ms): Promote's extension.
PROMOTE_EXTENSION_SECONDS = 1.0
# etcd's leaseRevokeRate: past this many leases, Promote spreads their deadlines
# so that at most 3/4 of it fall in any one second.
LEASE_REVOKE_RATE = 1000
_LONG_KEY_HEAD = 448
_LONG_KEY_MARK = b"\x01"


def lease_key(lease_id: int, key: bytes) -> bytes:
    """The `lease_keys` DB key of `key` attached to `lease_id`."""
    if len(key) > SHORT_KEY_MAX:
        key = key[:_LONG_KEY_HEAD] + hashlib.sha256(key).digest() + _LONG_KEY_MARK
    return LEASE_ID.pack(lease_id) + key


def promoted_deadlines(ttls: dict[int, int], now: float, extension: float) -> dict[int, float]:
    """etcd's Promote: every lease's deadline is now + TTL + `extension`; with
    LEASE_REVOKE_RATE leases or more, those that would pile up in one second
    past 3/4 of the rate are pushed later, as etcd does, so that a restart
    after a long downtime does not revoke them all at once."""
    deadlines = {lease: now + ttl + extension for lease, ttl in ttls.items()}
    if len(deadlines) < LEASE_REVOKE_RATE:
        return deadlines
    per_second = 3 * LEASE_REVOKE_RATE // 4
    order = sorted(deadlines, key=deadlines.__getitem__)
    base = deadlines[order[0]] - now
    next_window, expires = base + 1.0, 0
    for lease in order:
        remaining = deadlines[lease] - now
        if remaining > next_window:
            base, next_window, expires = remaining, remaining + 1.0, 1
            continue
        expires += 1
        if expires <= per_second:
            continue
        delay = expires / per_second - (remaining - base)
        next_window = base + delay
        deadlines[lease] += delay
    return deadlines


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

    def load_promoted(
        self, txn: lmdb.Transaction, db: lmdb._Database, extension: float, min_ttl: int
    ) -> None:
        """Read every lease from the `lease` DB with a fresh deadline (etcd's
        Promote, `promoted_deadlines`); TTLs are raised to `min_ttl`, as
        etcd's recovery does."""
        ttls = {
            LEASE_ID.unpack(k)[0]: max(LEASE_TTL.unpack_from(v)[0], min_ttl)
            for k, v in txn.cursor(db=db)
        }
        deadlines = promoted_deadlines(ttls, time.monotonic(), extension)
        with self._lock:
            self._leases = {lease: [ttl, deadlines[lease]] for lease, ttl in ttls.items()}

    def add(self, lease_id: int, ttl: int, deadline: float) -> None:
        with self._lock:
            self._leases[lease_id] = [ttl, deadline]

    def remove(self, lease_id: int) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)

    def get(self, lease_id: int) -> tuple[int, float] | None:
        """(granted TTL, deadline) of a committed lease, or None."""
        with self._lock:
            lease = self._leases.get(lease_id)
            return None if lease is None else (lease[0], lease[1])

    def renew(self, lease_id: int) -> int | None:
        """Push the deadline a full TTL ahead; the TTL, or None if the lease is
        missing or already expired (etcd answers "not found" then)."""
        now = time.monotonic()
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None or lease[1] <= now:
                return None
            lease[1] = now + lease[0]
            return lease[0]

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._leases)

    def expired(self, now: float) -> list[int]:
        """Leases whose deadline has passed, soonest first."""
        with self._lock:
            due = [(d, i) for i, (_, d) in self._leases.items() if d <= now]
        return [i for _, i in sorted(due)]
