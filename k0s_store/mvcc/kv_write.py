"""Writes inside the batch's LMDB write transaction (etcd's storeTxnWrite).

Every write request applied by the writer thread gets the next main revision
if it changes anything; each change inside it takes the next sub revision.
A `WriteTxn` is also a `ReadView`, so reads inside a txn see its own writes.
Nothing here touches in-memory state directly: effects that must wait for
the commit are queued in `after_commit`.
"""

from collections.abc import Callable

from k0s_store.backend import Databases
from k0s_store.core import codec, lmdb, lmdb_kv
from k0s_store.errors import KeyNotFoundError, NoSpaceError
from k0s_store.mvcc import index, key_index, meta
from k0s_store.mvcc.kv_read import ReadView
from k0s_store.mvcc.lessor import lease_key
from k0s_store.mvcc.types import EVENT_DELETE, EVENT_PUT, Event

ALARM_NOSPACE = 1  # etcdserverpb.AlarmType.NOSPACE


class WriteTxn(ReadView):
    """The write side of one batch.

    Attributes:
        changes: events of the request being applied (change_keys: their keys).
        events: (revision, events, keys) of every request of the batch that
            changed something.
        after_commit: callbacks to run once the batch is durable.
    """

    __slots__ = (
        "_alarms",
        "after_commit",
        "change_keys",
        "changes",
        "events",
        "file_size",
        "quota_bytes",
    )

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: Databases,
        rev: int,
        compact_rev: int,
        *,
        quota_bytes: int,
        file_size: int,
    ) -> None:
        super().__init__(txn, dbs, rev, compact_rev)
        self.changes: list[Event] = []
        self.change_keys: list[bytes] = []
        self.events: list[tuple[int, list[Event], list[bytes]]] = []
        self.after_commit: list[Callable[[], None]] = []
        self.quota_bytes = quota_bytes
        self.file_size = file_size
        self._alarms: list[int] | None = None  # read once a batch (every put checks them)

    @property
    def read_rev(self) -> int:
        return self.rev + 1 if self.changes else self.rev

    def end(self) -> int:
        """Close the request being applied; returns its header revision."""
        if self.changes:
            self.rev += 1
            self.events.append((self.rev, self.changes, self.change_keys))
            self.changes = []
            self.change_keys = []
        return self.rev

    def alarms(self) -> list[int]:
        """The raised alarm types, sorted (as this batch has left them)."""
        if self._alarms is None:
            self._alarms = meta.get_alarms(self.txn, self.dbs.meta)
        return self._alarms

    def set_alarms(self, alarms: list[int]) -> None:
        """Replace the raised alarm types."""
        meta.put_alarms(self.txn, self.dbs.meta, alarms)
        self._alarms = sorted(set(alarms))

    def check_quota(self, cost: int) -> None:
        """etcd's quota check: raise NOSPACE (and keep it raised) when the
        data file plus `cost` would reach the quota, or the alarm is up."""
        alarms = self.alarms()
        if ALARM_NOSPACE in alarms:
            raise NoSpaceError()
        if self.file_size + cost >= self.quota_bytes:
            self.set_alarms([*alarms, ALARM_NOSPACE])
            raise NoSpaceError()

    def put(
        self,
        key: bytes,
        value: bytes,
        lease: int,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> bytes | None:
        """Write a new version of `key`; returns the previous KeyValue or None.

        Raises KeyNotFoundError (before writing) if an ignore flag is set and
        the key does not exist.
        """
        txn, dbs = self.txn, self.dbs
        main, sub = self.rev + 1, len(self.changes)
        written = lmdb_kv.put_revision(
            txn,
            dbs.index,
            dbs.key,
            dbs.index_history,
            key,
            value,
            lease,
            main,
            sub,
            ignore_value,
            ignore_lease,
        )
        if written is None:
            raise KeyNotFoundError()
        kv, prev, old_lease = written
        if ignore_lease:
            lease = old_lease
        if old_lease:
            txn.delete(lease_key(old_lease, key), db=dbs.lease_keys)
        if lease:
            txn.put(lease_key(lease, key), key, db=dbs.lease_keys)
        self.changes.append(Event(EVENT_PUT, kv, prev))
        self.change_keys.append(key)
        return prev

    def delete(self, key: bytes) -> bytes | None:
        """Tombstone `key` if it is live; returns its last KeyValue (None: not live)."""
        txn, dbs = self.txn, self.dbs
        main, sub = self.rev + 1, len(self.changes)
        prev = lmdb_kv.tombstone(txn, dbs.index, dbs.key, dbs.index_history, key, main, sub)
        if prev is None:
            return None
        lease = codec.decode_kv(prev)[5]
        if lease:
            txn.delete(lease_key(lease, key), db=dbs.lease_keys)
        event_kv = codec.encode_kv(key, 0, main, 0, b"", 0)
        self.changes.append(Event(EVENT_DELETE, event_kv, prev))
        self.change_keys.append(key)
        return prev

    def delete_range(self, key: bytes, end: bytes | None) -> list[bytes]:
        """Tombstone every live key in [key, end); returns their last KeyValues."""
        live = [
            k
            for k, records in index.scan(self.txn, self.dbs, key, end)
            if not key_index.latest(records)[2]
        ]
        return [self.delete(k) for k in live]
