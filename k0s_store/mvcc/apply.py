"""Requests applied to a view (etcd's apply.go): put, delete, txn, leases.

Every function checks first and writes after, so a request that fails
leaves the batch untouched and consumes no revision. The caller ends the
request (`WriteTxn.end`) to get its header revision.
"""

import secrets
import time
from collections.abc import Iterator

from k0s_store.errors import (
    CompactedError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
)
from k0s_store.mvcc import meta
from k0s_store.mvcc.kv_read import ReadView, end_of
from k0s_store.mvcc.kv_write import WriteTxn
from k0s_store.mvcc.lessor import LEASE_ID, LEASE_TTL, MAX_LEASE_TTL, LeaseTable, attached_keys
from k0s_store.mvcc.types import (
    DeleteRangeRequest,
    DeleteRangeResult,
    LeaseGrant,
    PutRequest,
    PutResult,
    RangeRequest,
    RequestOp,
    TxnRequest,
    TxnResult,
)

# etcd's quota cost estimates (etcdserver/quota.go).
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


def put_cost(req: PutRequest) -> int:
    return len(req.key) + len(req.value) + KV_OVERHEAD


def lease_exists(view: ReadView, lease_id: int) -> bool:
    return view.txn.get(LEASE_ID.pack(lease_id), db=view.dbs.lease) is not None


def put(w: WriteTxn, req: PutRequest) -> PutResult:
    """etcd's Put: quota, then lease existence, then ignore_* need the key."""
    w.check_quota(put_cost(req))
    if req.lease and not lease_exists(w, req.lease):
        raise LeaseNotFoundError()
    prev = w.put(req.key, req.value, req.lease, req.ignore_value, req.ignore_lease)
    return PutResult(prev if req.prev_kv else None)


def delete_range(w: WriteTxn, req: DeleteRangeRequest) -> DeleteRangeResult:
    prevs = w.delete_range(req.key, end_of(req.range_end))
    return DeleteRangeResult(len(prevs), prevs if req.prev_kv else [])


def is_read_only(req: TxnRequest) -> bool:
    """True if no branch of the txn, at any depth, writes."""
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return False
        if isinstance(op, TxnRequest) and not is_read_only(op):
            return False
    return True


def txn(view: ReadView, req: TxnRequest) -> TxnResult:
    """etcd's Txn: compares of every level are evaluated first, on the state
    before the txn; then the chosen ops are checked, then applied in order."""
    if isinstance(view, WriteTxn):
        cost = _txn_put_cost(req)
        if cost:
            view.check_quota(cost)
    path = _compare_path(view, req)
    _check(view, req, iter(path))
    return _apply(view, req, iter(path))


def _compare_path(view: ReadView, req: TxnRequest) -> list[bool]:
    succeeded = all(view.compare(c) for c in req.compare)
    path = [succeeded]
    for op in req.success if succeeded else req.failure:
        if isinstance(op, TxnRequest):
            path += _compare_path(view, op)
    return path


def _check(view: ReadView, req: TxnRequest, path: Iterator[bool]) -> None:
    for op in req.success if next(path) else req.failure:
        if isinstance(op, TxnRequest):
            _check(view, op, path)
        elif isinstance(op, RangeRequest):
            if op.revision > view.rev:
                raise FutureRevisionError()
            if 0 < op.revision < view.compact_rev:
                raise CompactedError()
        elif isinstance(op, PutRequest):
            if (op.ignore_value or op.ignore_lease) and view.get(op.key) is None:
                raise KeyNotFoundError()
            if op.lease and not lease_exists(view, op.lease):
                raise LeaseNotFoundError()


def _txn_put_cost(req: TxnRequest) -> int:
    cost = 0
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest):
            cost += put_cost(op)
        elif isinstance(op, TxnRequest):
            cost += _txn_put_cost(op)
    return cost


def _apply(view: ReadView, req: TxnRequest, path: Iterator[bool]) -> TxnResult:
    succeeded = next(path)
    responses = [_apply_op(view, op, path) for op in (req.success if succeeded else req.failure)]
    return TxnResult(succeeded, responses)


def _apply_op(view: ReadView, op: RequestOp, path: Iterator[bool]):
    # Puts first: the ops of most write txns. A view that meets a write is a
    # WriteTxn (read-only txns hold no writes).
    if isinstance(op, PutRequest):
        prev = view.put(op.key, op.value, op.lease, op.ignore_value, op.ignore_lease)
        return PutResult(prev if op.prev_kv else None)
    if isinstance(op, RangeRequest):
        return view.range(op)
    if isinstance(op, TxnRequest):
        return _apply(view, op, path)
    return delete_range(view, op)


def lease_grant(
    w: WriteTxn, table: LeaseTable, ttl: int, lease_id: int, min_ttl: int
) -> LeaseGrant:
    """etcd's LeaseGrant: quota, TTL bound, id (random when 0) not in use."""
    w.check_quota(LEASE_OVERHEAD)
    if ttl > MAX_LEASE_TTL:
        raise LeaseTTLTooLargeError()
    if lease_id == 0:
        lease_id = secrets.randbits(63)
        while lease_id == 0 or lease_exists(w, lease_id):
            lease_id = secrets.randbits(63)
    elif lease_exists(w, lease_id):
        raise LeaseExistsError()
    ttl = max(ttl, min_ttl)
    deadline = time.monotonic() + ttl
    w.txn.put(LEASE_ID.pack(lease_id), LEASE_TTL.pack(ttl), db=w.dbs.lease)
    w.after_commit.append(lambda: table.add(lease_id, ttl, deadline))
    return LeaseGrant(w.rev, lease_id, ttl)


def lease_revoke(w: WriteTxn, table: LeaseTable, lease_id: int) -> None:
    """etcd's Revoke: delete the attached keys (sorted) in one revision, then the lease."""
    if not lease_exists(w, lease_id):
        raise LeaseNotFoundError()
    for key in attached_keys(w.txn, w.dbs.lease_keys, lease_id):
        w.delete(key)
    w.txn.delete(LEASE_ID.pack(lease_id), db=w.dbs.lease)
    w.after_commit.append(lambda: table.remove(lease_id))


def schedule_compaction(w: WriteTxn, rev: int) -> None:
    """etcd's updateCompactRev: persist the new compact revision."""
    if rev <= w.compact_rev:
        raise CompactedError()
    if rev > w.rev:
        raise FutureRevisionError()
    w.compact_rev = rev
    meta.put_int(w.txn, w.dbs.meta, meta.COMPACT_REV, rev)
