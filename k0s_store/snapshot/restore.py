"""etcd's buckets into a new k0s-store data directory (the inverse of export.py).

- `key` -> our `key` DB as is (same revision keys, same KeyValue bytes); the
  `index` DB (user key -> revision records) is rebuilt from it in revision
  order, and `lease_keys` from the live revision of every key that names an
  existing lease. So the whole history comes along: reads at old revisions,
  watches from them and HashKV answer as the source did.
- `meta` -> our meta: CURRENT_REV = the last revision in `key` (or the
  compaction revision if newer, as etcd's own restore does), COMPACT_REV =
  scheduledCompactRev, FINISHED_COMPACT = finishedCompactRev (a compaction
  the source had not finished is finished by our store when it opens).
  `consistent_index` belongs to etcd's raft log and is dropped.
- `lease` -> our `lease` DB: the granted TTL. When the store opens, every
  lease gets its full TTL, as etcd's lessor gives it when a member takes
  over (Promote); a RemainingTTL checkpoint is not kept.
- `alarm` -> ALARMS (the alarm types raised).
- `auth`, `authUsers`, `authRoles` -> the auth DBs as they are (users,
  roles, permissions and whether auth is enabled come along).
- `members`, `members_removed`, `cluster` are etcd's membership: a
  k0s-store is one new member with its own ids.

The directory is built beside the target (`<dir>.restoring`) and renamed
into place once complete and synced, so a failed restore leaves nothing.
"""

import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from k0s_store.backend import Backend
from k0s_store.core import codec
from k0s_store.mvcc import index, key_index, meta
from k0s_store.mvcc.lessor import LEASE_ID, LEASE_TTL, lease_key
from k0s_store.proto import lease_pb2, rpc_pb2
from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.errors import SnapshotError
from k0s_store.snapshot.export import AUTH_BUCKETS

BATCH_ITEMS = 20_000  # items per LMDB write transaction (bounds the dirty pages held)
_MIN_MAP_SIZE = 8 * 1024**3
# etcd's membership: a k0s-store is one new member with its own ids.
_MEMBERSHIP_BUCKETS = (b"members", b"members_removed", b"cluster")


class RestoreSummary(NamedTuple):
    """What a restore brought in."""

    revision: int
    compact_revision: int  # -1: never compacted
    revisions: int  # entries of the `key` bucket
    leases: int
    skipped: tuple[str, ...]  # buckets with data this store does not keep (auth, unknown)


def restore(bolt: BoltFile, data_dir: str | os.PathLike) -> RestoreSummary:
    """Create the k0s-store data directory `data_dir` (absent or empty) from an
    etcd database; raises SnapshotError on a corrupt one and leaves nothing."""
    target = Path(data_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SnapshotError(f"data dir {target} exists and is not empty")
    if not {b"key", b"meta"} <= set(bolt.buckets()):
        raise SnapshotError("not an etcd snapshot: no `key` or `meta` bucket")
    staging = target.with_name(target.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    backend = Backend(staging, map_size=max(_MIN_MAP_SIZE, 4 * bolt.size), sync=False)
    try:
        importer = _Importer(backend)
        for bucket, key, value in bolt.walk():
            importer.add(bucket, key, value)
        summary = importer.finish()
        backend.env.sync(True)
    except BaseException:
        backend.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backend.close()
    if target.exists():
        target.rmdir()
    os.rename(staging, target)
    _fsync_dir(target.parent)
    return summary


class _Importer:
    """Writes the items of a bbolt walk into LMDB, BATCH_ITEMS per transaction."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._dbs = backend.dbs
        self._txn = backend.begin_write()
        meta.initialize(self._txn, self._dbs.meta)
        self._in_batch = 0
        self._records: dict[bytes, bytearray] = defaultdict(bytearray)
        self._last_rev = 1
        self._revisions = 0
        self._leases: set[int] = set()
        self._alarms: list[int] = []
        self._finished = -1
        self._scheduled = -1
        self._skipped: set[str] = set()

    def add(self, bucket: bytes, key: bytes, value: bytes) -> None:
        if bucket == b"key":
            self._add_revision(key, value)
        elif bucket == b"lease":
            self._add_lease(value)
        elif bucket == b"meta":
            self._add_meta(key, value)
        elif bucket == b"alarm":
            self._alarms.append(_parse(rpc_pb2.AlarmMember, key, "alarm").alarm)
        elif bucket in AUTH_BUCKETS:
            self._txn.put(key, value, db=getattr(self._dbs, AUTH_BUCKETS[bucket]))
        elif bucket in _MEMBERSHIP_BUCKETS:
            return
        else:
            self._skipped.add(bucket.decode(errors="replace"))
            return
        self._in_batch += 1
        if self._in_batch >= BATCH_ITEMS:
            self._commit()

    def _add_revision(self, key: bytes, value: bytes) -> None:
        try:
            main, sub, tombstone = codec.parse_rev_key(key)
            user_key = codec.decode_kv(value)[0]
        except ValueError:
            raise SnapshotError(f"corrupt snapshot: bad revision entry {key.hex()}") from None
        if not user_key:
            raise SnapshotError(f"corrupt snapshot: revision {main}.{sub} has no key")
        self._txn.put(key, value, db=self._dbs.key, append=True)
        self._records[user_key] += key_index.record(main, sub, tombstone)
        self._last_rev = main
        self._revisions += 1

    def _add_lease(self, value: bytes) -> None:
        lease = _parse(lease_pb2.Lease, value, "lease")
        self._txn.put(LEASE_ID.pack(lease.ID), LEASE_TTL.pack(lease.TTL), db=self._dbs.lease)
        self._leases.add(lease.ID)

    def _add_meta(self, key: bytes, value: bytes) -> None:
        if key in (b"finishedCompactRev", b"scheduledCompactRev"):
            if len(value) != 17:
                raise SnapshotError(f"corrupt snapshot: meta {key.decode()} is not a revision")
            main = int.from_bytes(value[:8], "big")
            if key == b"finishedCompactRev":
                self._finished = main
            else:
                self._scheduled = main

    def _flush_index(self) -> None:
        txn, dbs = self._txn, self._dbs
        for user_key in sorted(self._records):
            index.append(txn, dbs, user_key, bytes(self._records[user_key]))
        self._records.clear()

    def _commit(self) -> None:
        self._flush_index()
        self._txn.commit()
        self._txn = self._backend.begin_write()
        self._in_batch = 0

    def finish(self) -> RestoreSummary:
        """Write what needs the whole walk (lease attachments, revisions, alarms)."""
        self._flush_index()
        txn, dbs = self._txn, self._dbs
        self._attach_leases()
        compact = max(self._finished, self._scheduled)
        revision = max(self._last_rev, self._finished, 1)
        meta.put_int(txn, dbs.meta, meta.CURRENT_REV, revision)
        if compact >= 0:
            meta.put_int(txn, dbs.meta, meta.COMPACT_REV, compact)
        if self._finished >= 0:
            meta.put_int(txn, dbs.meta, meta.FINISHED_COMPACT, self._finished)
        meta.put_alarms(txn, dbs.meta, self._alarms)
        txn.commit()
        return RestoreSummary(
            revision, compact, self._revisions, len(self._leases), tuple(sorted(self._skipped))
        )

    def _attach_leases(self) -> None:
        """Attach every live key whose current revision names an existing lease."""
        txn, dbs = self._txn, self._dbs
        if not self._leases:
            return
        for user_key, records in index.scan(txn, dbs, b"\0", b""):
            main, sub, tombstone = key_index.latest(records)
            if tombstone:
                continue
            lease = codec.decode_kv(txn.get(codec.rev_key(main, sub), db=dbs.key))[5]
            if lease in self._leases:
                txn.put(lease_key(lease, user_key), user_key, db=dbs.lease_keys)


def _parse(message_type, data: bytes, what: str):
    try:
        return message_type.FromString(data)
    except Exception:  # protobuf's DecodeError and friends
        raise SnapshotError(f"corrupt snapshot: unreadable {what} entry") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
