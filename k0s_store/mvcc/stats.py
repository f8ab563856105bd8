"""What the store counts for its metrics, as etcd's mvcc package counts it.

etcd counts the operations of each storage transaction when the transaction
ends (mvcc/metrics_txn.go): every Range, Put and DeleteRange call, and one
"txn" when a transaction made more than one such call. Its applier opens
transactions in ways that show in the figures, which we reproduce:

- Put and DeleteRange with prev_kv (and Put with ignore_value or
  ignore_lease) read the key first: one more range, so such a Put counts
  as a txn too.
- A Txn evaluates its compares with a Range each, on a read transaction;
  a Txn that writes ends that one and applies its ops on a write
  transaction (each end counted on its own); a read-only Txn uses one
  transaction for compares and ops. A failed compare stops the others in
  etcd; we count every compare of a level (exact for the one-compare txns
  Kubernetes sends).
"""

from k0s_store.counters import Count, Histogram, exponential_buckets
from k0s_store.mvcc.types import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
    TxnResult,
)

# etcd_disk_backend_commit_duration_seconds' buckets: 1 ms .. 8.192 s.
COMMIT_BUCKETS = exponential_buckets(0.001, 2, 14)
# etcd_debugging_mvcc_db_compaction_{pause,total}_duration_milliseconds' buckets.
COMPACTION_PAUSE_BUCKETS = exponential_buckets(1, 2, 13)
COMPACTION_TOTAL_BUCKETS = exponential_buckets(100, 2, 14)


class StoreStats:
    """The store's counters (etcd_mvcc_*_total), commit and compaction timings."""

    def __init__(self) -> None:
        self.ranges = Count()
        self.puts = Count()
        self.deletes = Count()
        self.txns = Count()
        self.leases_expired = Count()
        self.commit_seconds = Histogram(COMMIT_BUCKETS)
        self.compaction_pause_ms = Histogram(COMPACTION_PAUSE_BUCKETS)
        self.compaction_total_ms = Histogram(COMPACTION_TOTAL_BUCKETS)

    def end(self, ranges: int, puts: int = 0, deletes: int = 0) -> None:
        """One storage transaction ended after these calls."""
        self.ranges.add(ranges)
        self.puts.add(puts)
        self.deletes.add(deletes)
        if ranges + puts + deletes > 1:
            self.txns.inc()

    # Range, Put and DeleteRange are the hot paths: each counts in one or two
    # C calls instead of going through `end`.

    def range(self) -> None:
        """A Range request was run (failed ones too, as in etcd)."""
        self.ranges.inc()

    def put(self, req: PutRequest) -> None:
        """A Put request was applied."""
        self.puts.inc()
        if req.prev_kv or req.ignore_value or req.ignore_lease:
            self.ranges.inc()
            self.txns.inc()

    def delete_range(self, req: DeleteRangeRequest) -> None:
        """A DeleteRange request was applied."""
        self.deletes.inc()
        if req.prev_kv:
            self.ranges.inc()
            self.txns.inc()

    def txn(self, req: TxnRequest, result: TxnResult, wrote: bool) -> None:
        """A Txn request was applied (`wrote`: it had write ops, on any branch)."""
        counts = [0, 0, 0, 0]  # compare ranges, op ranges, puts, deletes
        self._walk(req, result, counts)
        compares, ranges, puts, deletes = counts
        if wrote:
            self.end(compares)
            self.end(ranges, puts, deletes)
        else:
            self.end(compares + ranges)

    def _walk(self, req: TxnRequest, result: TxnResult, counts: list[int]) -> None:
        counts[0] += len(req.compare)
        ops = req.success if result.succeeded else req.failure
        for index, op in enumerate(ops):
            if isinstance(op, PutRequest):
                counts[0] += op.ignore_value or op.ignore_lease  # checked before applying
                counts[1] += _reads_first(op)
                counts[2] += 1
            elif isinstance(op, RangeRequest):
                counts[1] += 1
            elif isinstance(op, DeleteRangeRequest):
                counts[1] += op.prev_kv
                counts[3] += 1
            else:
                self._walk(op, result.responses[index], counts)


def _reads_first(req: PutRequest) -> int:
    """1 when etcd's Put reads the key before writing it."""
    return 1 if req.prev_kv or req.ignore_value or req.ignore_lease else 0
