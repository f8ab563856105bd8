"""The checks etcd makes before a KV request reaches the store.

A faithful port of etcd 3.4's etcdserver/api/v3rpc/key.go (checkRangeRequest,
checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals), on
the store's request types. In a converted Txn an op that set none of the
oneof's fields is `None` (etcd: "key not found").
"""

from k0s_store import errors
from k0s_store.mvcc.types import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


def check_range(r: RangeRequest) -> None:
    """Reject a Range etcd would reject."""
    if not r.key:
        raise errors.EmptyKeyError()


def check_put(r: PutRequest) -> None:
    """Reject a Put etcd would reject."""
    if not r.key:
        raise errors.EmptyKeyError()
    if r.ignore_value and r.value:
        raise errors.ValueProvidedError()
    if r.ignore_lease and r.lease:
        raise errors.LeaseProvidedError()


def check_delete_range(r: DeleteRangeRequest) -> None:
    """Reject a DeleteRange etcd would reject."""
    if not r.key:
        raise errors.EmptyKeyError()


def check_txn(r: TxnRequest, max_txn_ops: int) -> None:
    """Reject a Txn etcd would reject: sizes, empty keys and ops, then overlaps.

    `max_txn_ops` bounds each of compare, success and failure; a nested txn
    gets what its parent left over (etcd's rule).
    """
    _check_txn_ops(r, max_txn_ops)
    # Overlaps are checked after the rest, as etcd does, to avoid a quadratic blowup.
    for ops in (r.success, r.failure):
        if len(ops) > 1 or (ops and isinstance(ops[0], TxnRequest)):  # one op: no overlap
            _check_intervals(ops)


def _check_txn_ops(r: TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_txn_ops:
        raise errors.TooManyOpsError()
    for c in r.compare:
        if not c.key:
            raise errors.EmptyKeyError()
    for op in (*r.success, *r.failure):
        _check_op(op, max_txn_ops - opc)


def _check_op(op, max_txn_ops: int) -> None:
    if isinstance(op, RangeRequest):
        check_range(op)
    elif isinstance(op, PutRequest):
        check_put(op)
    elif isinstance(op, DeleteRangeRequest):
        check_delete_range(op)
    elif isinstance(op, TxnRequest):
        _check_txn_ops(op, max_txn_ops)
    else:  # an op with no request set
        raise errors.KeyNotFoundError()


class _Deletes:
    """The key intervals deleted by a list of ops: [key, range_end) or the point key.

    Comparison is plain byte order, as etcd's string intervals do: a
    range_end of b"\\0" ("from key") is an inverted interval that holds no
    key, exactly as in etcd's check.
    """

    def __init__(self) -> None:
        self.intervals: list[tuple[bytes, bytes | None]] = []

    def add(self, key: bytes, range_end: bytes) -> None:
        self.intervals.append((key, range_end or None))

    def contains(self, key: bytes) -> bool:
        for begin, end in self.intervals:
            if (key == begin) if end is None else (begin <= key < end):
                return True
        return False


def _check_intervals(ops) -> tuple[set[bytes], _Deletes]:
    """Puts and deletes of `ops` (recursively) must not touch the same key.

    Returns this level's (put keys, deletes) for the parent's check. The
    two branches of a nested txn are exclusive, so a key put in both is fine.
    """
    dels = _Deletes()
    for op in ops:
        if isinstance(op, DeleteRangeRequest):
            dels.add(op.key, op.range_end)

    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for key in puts_then:
            if key in puts or dels.contains(key):
                raise errors.DuplicateKeyError()
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or dels.contains(key):
                raise errors.DuplicateKeyError()
            puts.add(key)
        dels.intervals += dels_then.intervals + dels_else.intervals

    for op in ops:
        if not isinstance(op, PutRequest):
            continue
        if op.key in puts or dels.contains(op.key):
            raise errors.DuplicateKeyError()
        puts.add(op.key)
    return puts, dels
