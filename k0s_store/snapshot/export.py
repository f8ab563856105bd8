"""Our LMDB store as etcd 3.4's buckets: what a snapshot of k0s-store holds.

Bucket by bucket (etcd's formats, from its mvcc, lease, membership, alarm
and auth packages):

- `key`: our `key` DB as is. Both key by revision, main (8 bytes BE) | "_" |
  sub (8 bytes BE), 18 bytes with a trailing "t" for a tombstone, and both
  store the marshalled mvccpb.KeyValue (a tombstone's holds the key only).
- `meta`: `consistent_index` (8 bytes BE) = CONSISTENT_INDEX;
  `scheduledCompactRev` / `finishedCompactRev`, each a revision (main | "_" |
  sub 0, 17 bytes), from our COMPACT_REV / FINISHED_COMPACT when a
  compaction happened.
- `lease`: lease id (8 bytes BE) -> leasepb.Lease{ID, TTL}, as etcd 3.4
  writes it without lease checkpoints: deadlines are not persisted, and the
  member that opens the file gives every lease its full TTL (lessor Promote),
  as k0s-store does when it opens (k0s_store/mvcc/lessor.py).
- `members`: this member's id in hex -> its JSON ({"id", "peerURLs",
  "name", "clientURLs"}); `members_removed`: empty.
- `cluster`: `clusterVersion` -> "3.4.0".
- `alarm`: marshalled etcdserverpb.AlarmMember -> empty, one per raised alarm.
- `auth`, `authUsers`, `authRoles`: copied as they are from the auth DBs
  (etcd's own formats, k0s_store/mvcc/auth_store.py).

The items come from one LMDB read transaction, so every walk of a bucket
gives the same items (bbolt_writer makes two).
"""

import json
import struct
from collections.abc import Iterator
from typing import NamedTuple

from k0s_store.core import lmdb
from k0s_store.mvcc import meta
from k0s_store.mvcc.lessor import LEASE_ID, LEASE_TTL
from k0s_store.proto import lease_pb2, rpc_pb2
from k0s_store.snapshot.bbolt_writer import Items

# What `etcdctl snapshot restore` writes for a one-member cluster (it
# rewrites the value to its member count, and the raft log it creates starts
# after it), so the file also works if placed as a new member's db.
CONSISTENT_INDEX = 1
CLUSTER_VERSION = b"3.4.0"
# etcd's auth buckets -> the `Databases` fields holding them, byte for byte.
AUTH_BUCKETS = {b"auth": "auth", b"authRoles": "auth_roles", b"authUsers": "auth_users"}

_U64 = struct.Struct(">Q")
_REVISION = struct.Struct(">QcQ")


class Member(NamedTuple):
    """The member a snapshot names in its `members` bucket."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]


def revision_bytes(main: int, sub: int = 0) -> bytes:
    """etcd's revToBytes: main (8 bytes BE) | "_" | sub (8 bytes BE)."""
    return _REVISION.pack(main, b"_", sub)


def etcd_buckets(txn: lmdb.Transaction, dbs, member: Member) -> dict[bytes, Items]:
    """etcd's buckets over one read transaction of our store.

    Args:
        txn: a read transaction, open for as long as the buckets are walked.
        dbs: the store's named DBs (k0s_store.backend.Databases).
        member: the member named in the `members` bucket.
    """
    buckets: dict[bytes, Items] = {
        b"key": lambda: iter(txn.cursor(db=dbs.key)),
        b"meta": lambda: _meta_items(txn, dbs.meta),
        b"lease": lambda: _lease_items(txn, dbs.lease),
        b"members": lambda: iter([_member_item(member)]),
        b"members_removed": lambda: iter(()),
        b"cluster": lambda: iter([(b"clusterVersion", CLUSTER_VERSION)]),
        b"alarm": lambda: _alarm_items(txn, dbs.meta, member.id),
    }
    for bucket, field in AUTH_BUCKETS.items():
        db = getattr(dbs, field)
        buckets[bucket] = lambda db=db: iter(txn.cursor(db=db))
    return buckets


def _meta_items(txn: lmdb.Transaction, db) -> Iterator[tuple[bytes, bytes]]:
    yield b"consistent_index", _U64.pack(CONSISTENT_INDEX)
    finished = meta.get_int(txn, db, meta.FINISHED_COMPACT, -1)
    if finished >= 0:
        yield b"finishedCompactRev", revision_bytes(finished)
    scheduled = meta.get_int(txn, db, meta.COMPACT_REV, -1)
    if scheduled >= 0:
        yield b"scheduledCompactRev", revision_bytes(scheduled)


def _lease_items(txn: lmdb.Transaction, db) -> Iterator[tuple[bytes, bytes]]:
    for key, value in txn.cursor(db=db):
        (lease_id,) = LEASE_ID.unpack(key)
        (ttl,) = LEASE_TTL.unpack_from(value)  # older records carry a deadline after it
        yield key, lease_pb2.Lease(ID=lease_id, TTL=ttl).SerializeToString()


def _member_item(member: Member) -> tuple[bytes, bytes]:
    # Go's json.Marshal of membership.Member: fields in declaration order.
    body = {
        "id": member.id,
        "peerURLs": list(member.peer_urls),
        "name": member.name,
        "clientURLs": list(member.client_urls),
    }
    return format(member.id, "x").encode(), json.dumps(body, separators=(",", ":")).encode()


def _alarm_items(txn: lmdb.Transaction, db, member_id: int) -> Iterator[tuple[bytes, bytes]]:
    keys = [
        rpc_pb2.AlarmMember(memberID=member_id, alarm=alarm).SerializeToString()
        for alarm in meta.get_alarms(txn, db)
    ]
    for key in sorted(keys):
        yield key, b""
