"""Reads at a revision: ranges (etcd's rangeKeys + applyRange) and compares.

A `ReadView` is a consistent LMDB snapshot with the revision to read at;
the write side (kv_write.WriteTxn) is one too, so a txn's reads see its own
earlier writes.
"""

from k0s_store.backend import Databases
from k0s_store.core import codec, lmdb, lmdb_kv
from k0s_store.errors import CompactedError, FutureRevisionError
from k0s_store.mvcc.types import (
    CMP_CREATE,
    CMP_LEASE,
    CMP_MOD,
    CMP_VALUE,
    CMP_VERSION,
    EQUAL,
    GREATER,
    LESS,
    NOT_EQUAL,
    SORT_ASCEND,
    SORT_DESCEND,
    SORT_NONE,
    TARGET_CREATE,
    TARGET_KEY,
    TARGET_MOD,
    TARGET_VALUE,
    TARGET_VERSION,
    Compare,
    RangeRequest,
    RangeResult,
)

# decode_kv tuple positions
_KEY, _CREATE, _MOD, _VERSION, _VALUE, _LEASE = range(6)
_SORT_FIELD = {
    TARGET_KEY: _KEY,
    TARGET_VERSION: _VERSION,
    TARGET_CREATE: _CREATE,
    TARGET_MOD: _MOD,
    TARGET_VALUE: _VALUE,
}
_COMPARE_FIELD = {
    CMP_VERSION: _VERSION,
    CMP_CREATE: _CREATE,
    CMP_MOD: _MOD,
    CMP_VALUE: _VALUE,
    CMP_LEASE: _LEASE,
}
_MISSING_KV = (b"", 0, 0, 0, b"", 0)


def end_of(range_end: bytes) -> bytes | None:
    """etcd's mkGteRange: b"" is a single key (None), b"\\0" is "every key >= key" (b"")."""
    if not range_end:
        return None
    return b"" if range_end == b"\0" else range_end


class ReadView:
    """A snapshot to read from.

    Attributes:
        txn: the LMDB transaction.
        dbs: the named DBs.
        rev: the store revision this view shows.
        compact_rev: reads below it fail.
    """

    __slots__ = ("compact_rev", "dbs", "rev", "txn")

    def __init__(self, txn: lmdb.Transaction, dbs: Databases, rev: int, compact_rev: int) -> None:
        self.txn = txn
        self.dbs = dbs
        self.rev = rev
        self.compact_rev = compact_rev

    @property
    def read_rev(self) -> int:
        """The revision a read in this view sees (a write txn sees its changes)."""
        return self.rev

    def check_revision(self, revision: int) -> None:
        """Raise as etcd does for a read at `revision` (0 = current)."""
        if revision > self.read_rev:
            raise FutureRevisionError()
        if 0 < revision < self.compact_rev:
            raise CompactedError()

    def kvs(
        self,
        key: bytes,
        end: bytes | None,
        rev: int,
        limit: int = 0,
        fetch: bool = True,
        keys_only: bool = False,
    ) -> tuple[list[bytes], int]:
        """Stored KeyValues of the keys live at `rev` in [key, end), at most
        `limit` of them (0: all; none unless `fetch`; without their values if
        `keys_only`), and how many there are."""
        txn, dbs = self.txn, self.dbs
        if end is None:
            kv = lmdb_kv.get_live(txn, dbs.index, dbs.key, dbs.index_history, key, rev)
            if kv is None:
                return [], 0
            if not fetch:
                return [], 1
            return [codec.kv_without_value(kv) if keys_only else kv], 1
        if end and end <= key:
            return [], 0
        return lmdb_kv.range_live(
            txn, dbs.index, dbs.key, dbs.index_history, key, end, rev, limit, fetch, keys_only
        )

    def get(self, key: bytes) -> bytes | None:
        """The stored KeyValue of `key` now, or None."""
        dbs = self.dbs
        return lmdb_kv.get_live(self.txn, dbs.index, dbs.key, dbs.index_history, key, self.read_rev)

    def range(self, req: RangeRequest) -> RangeResult:
        """etcd's applyRange: limit, count, more, sort, filters, keys_only, count_only."""
        self.check_revision(req.revision)
        rev = req.revision or self.read_rev
        end = end_of(req.range_end)
        if req.count_only:
            return RangeResult([], False, self.kvs(req.key, end, rev, fetch=False)[1])
        filtered = (
            req.min_mod_revision
            or req.max_mod_revision
            or req.min_create_revision
            or req.max_create_revision
        )
        sort_order = req.sort_order
        if req.sort_target != TARGET_KEY and sort_order == SORT_NONE:
            sort_order = SORT_ASCEND  # etcd sorts ASCEND when only a target is given
        fetch_all = req.sort_order != SORT_NONE or filtered
        limit = 0 if fetch_all or req.limit <= 0 else req.limit + 1
        # Values are dropped by the scan, unless filters or a sort come first.
        reorder = filtered or sort_order != SORT_NONE
        kvs, count = self.kvs(req.key, end, rev, limit, keys_only=req.keys_only and not reorder)
        if reorder:
            kvs = _filter_and_sort(kvs, req, sort_order)
        more = False
        if req.limit > 0 and len(kvs) > req.limit:
            del kvs[req.limit :]
            more = True
        if req.keys_only and reorder:
            kvs = [codec.kv_without_value(kv) for kv in kvs]
        return RangeResult(kvs, more, count)

    def range_response(self, req: RangeRequest, header: bytes) -> bytes:
        """`range(req)` marshalled as a RangeResponse with `header` (a ResponseHeader
        body). A plain range (no sort, filter, keys_only or count_only: a LIST, a
        get) goes from the map into the response in compiled code, with no
        object per key."""
        reordered = (
            req.sort_order != SORT_NONE
            or req.sort_target != TARGET_KEY
            or req.min_mod_revision
            or req.max_mod_revision
            or req.min_create_revision
            or req.max_create_revision
        )
        if reordered or req.keys_only or req.count_only:
            r = self.range(req)
            return codec.encode_range_response(header, r.kvs, r.more, r.count)
        self.check_revision(req.revision)
        end = end_of(req.range_end)
        if end and end <= req.key:
            return codec.encode_range_response(header, [], False, 0)
        return lmdb_kv.range_response(
            self.txn,
            self.dbs.index,
            self.dbs.key,
            self.dbs.index_history,
            header,
            req.key,
            end,
            req.revision or self.read_rev,
            max(req.limit, 0),
        )

    def compare(self, cmp: Compare) -> bool:
        """etcd's applyCompare: every key in the range must satisfy it; a
        missing key compares as zeros, except that VALUE always fails."""
        kvs, _ = self.kvs(cmp.key, end_of(cmp.range_end), self.read_rev)
        field = _COMPARE_FIELD.get(cmp.target)
        if field is None:
            return False
        if field == _VALUE:
            if not kvs:
                return False
            operand = cmp.operand if isinstance(cmp.operand, bytes) else b""
        else:
            operand = cmp.operand if isinstance(cmp.operand, int) else 0
        decoded = [codec.decode_kv(kv) for kv in kvs] or [_MISSING_KV]
        return all(_holds(cmp.result, kv[field], operand) for kv in decoded)


def _holds(result: int, have: int | bytes, want: int | bytes) -> bool:
    if result == EQUAL:
        return have == want
    if result == NOT_EQUAL:
        return have != want
    if result == GREATER:
        return have > want
    if result == LESS:
        return have < want
    return True


def _filter_and_sort(kvs: list[bytes], req: RangeRequest, sort_order: int) -> list[bytes]:
    rows = [(codec.decode_kv(kv), kv) for kv in kvs]
    if req.max_mod_revision:
        rows = [r for r in rows if r[0][_MOD] <= req.max_mod_revision]
    if req.min_mod_revision:
        rows = [r for r in rows if r[0][_MOD] >= req.min_mod_revision]
    if req.max_create_revision:
        rows = [r for r in rows if r[0][_CREATE] <= req.max_create_revision]
    if req.min_create_revision:
        rows = [r for r in rows if r[0][_CREATE] >= req.min_create_revision]
    if sort_order != SORT_NONE:
        field = _SORT_FIELD.get(req.sort_target, _KEY)
        rows.sort(key=lambda r: r[0][field], reverse=sort_order == SORT_DESCEND)
    return [kv for _, kv in rows]
