"""Prometheus metrics with etcd 3.4's names, labels and buckets, built when scraped.

Nothing here runs per request: the hot paths bump plain counters
(`k0s_store.counters`) and the store is asked for its sizes, key count and
watchers when Prometheus scrapes. `StoreCollector` turns all of it into
metric families; `registry()` adds the process metrics (process_*) that
etcd's Go client exports under the same names.

A single member is always its own leader: has_leader and is_leader are 1,
one leader change was seen (etcd's first election). A proposal is one job
of the group-commit writer (every write request, lease expiry, compaction
step), the nearest thing to a raft proposal; the WAL fsync is the LMDB
commit's fsync, so etcd_disk_wal_fsync_duration_seconds and
etcd_disk_backend_commit_duration_seconds observe the same commits (the
former only when fsync is on).
"""

import os
import resource

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from k0s_store.api.rpc_stats import GRPC_TYPES, RpcStats
from k0s_store.counters import Count, Histogram

WATCH_PATH = "/etcdserverpb.Watch/Watch"


class OpsCounters:
    """Counters of the operations endpoints themselves (health checks)."""

    def __init__(self) -> None:
        self.health_success = Count()
        self.health_failures = Count()


class StoreCollector(Collector):
    """Every etcd metric we can give a true value, read at scrape time.

    Args:
        store: the open `k0s_store.mvcc.Store`.
        rpc_stats: the gRPC counters the transports report to.
        ops: the health-check counters.
        version: the etcd version we report (etcd_server_version).
        fsync: whether commits are fsynced (--unsafe-no-fsync off).
    """

    def __init__(
        self, store, rpc_stats: RpcStats, ops: OpsCounters, version: str, fsync: bool
    ) -> None:
        self._store = store
        self._rpc = rpc_stats
        self._ops = ops
        self._version = version
        self._fsync = fsync

    def collect(self):
        yield from self._server()
        yield from self._mvcc()
        yield from self._disk()
        yield from self._grpc()
        yield from self._os()

    def _server(self):
        store = self._store
        yield _gauge("etcd_server_has_leader", "Whether or not a leader exists.", 1)
        yield _gauge("etcd_server_is_leader", "Whether or not this member is a leader.", 1)
        yield _gauge("etcd_server_is_learner", "Whether or not this member is a learner.", 0)
        yield _counter("etcd_server_leader_changes_seen_total", "Leader changes seen.", 1)
        jobs, pending = store.writer_jobs()
        yield _gauge("etcd_server_proposals_committed_total", "Proposals committed.", jobs)
        yield _gauge("etcd_server_proposals_applied_total", "Proposals applied.", jobs)
        yield _gauge("etcd_server_proposals_pending", "Proposals pending commit.", pending)
        yield _counter("etcd_server_proposals_failed_total", "Failed proposals seen.", 0)
        yield _counter(
            "etcd_server_slow_apply_total",
            "Slow apply requests.",
            self._rpc.slow_requests.value,
        )
        yield _gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            store.quota_bytes,
        )
        yield _labelled_one(
            "etcd_server_version", "Running version.", "server_version", self._version
        )
        yield _labelled_one("etcd_server_id", "Member ID.", "server_id", f"{store.member_id:x}")
        ops = self._ops
        yield _bare_counter(
            "etcd_server_health_success", "Successful health checks.", ops.health_success.value
        )
        yield _bare_counter(
            "etcd_server_health_failures", "Failed health checks.", ops.health_failures.value
        )

    def _mvcc(self):
        store, stats = self._store, self._store.stats
        status = store.status()
        for namespace in ("etcd", "etcd_debugging"):
            for op, count in (
                ("range", stats.ranges),
                ("put", stats.puts),
                ("delete", stats.deletes),
                ("txn", stats.txns),
            ):
                yield _counter(
                    f"{namespace}_mvcc_{op}_total",
                    f"Total number of {op}s seen by this member.",
                    count.value,
                )
            yield _gauge(
                f"{namespace}_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
                status.db_size,
            )
        yield _gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            status.db_size_in_use,
        )
        yield _gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", store.key_count())
        yield _gauge(
            "etcd_debugging_mvcc_current_revision", "The current store revision.", status.revision
        )
        yield _gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            store.compact_revision,
        )
        yield _gauge(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            self._rpc.open_streams(WATCH_PATH),
        )
        yield _counter(
            "etcd_debugging_server_lease_expired_total",
            "The total number of expired leases.",
            stats.leases_expired.value,
        )
        watchers, unsynced = store.watcher_counts()
        yield _gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", watchers)
        yield _gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            unsynced,
        )

    def _disk(self):
        stats = self._store.stats
        yield _histogram(
            "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
            "Bucketed histogram of db compaction pause duration.",
            stats.compaction_pause_ms,
        )
        yield _histogram(
            "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
            "Bucketed histogram of db compaction total duration.",
            stats.compaction_total_ms,
        )
        commits = stats.commit_seconds
        yield _histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            commits,
        )
        if self._fsync:
            yield _histogram(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                commits,
            )

    def _grpc(self):
        yield _counter(
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            self._rpc.received_bytes,
        )
        yield _counter(
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
            self._rpc.sent_bytes,
        )
        labels = ["grpc_method", "grpc_service", "grpc_type"]
        started = CounterMetricFamily(
            "grpc_server_started_total", "Total RPCs started on the server.", labels=labels
        )
        for method, count in self._rpc.started_counts():
            started.add_metric([method.name, method.service, GRPC_TYPES[method.shape]], count)
        yield started
        handled = CounterMetricFamily(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            labels=["grpc_code", *labels],
        )
        for method, code, count in self._rpc.handled_counts():
            handled.add_metric([code, method.name, method.service, GRPC_TYPES[method.shape]], count)
        yield handled

    def _os(self):
        try:
            used = len(os.listdir("/proc/self/fd"))
        except OSError:
            return
        yield _gauge("os_fd_used", "The number of used file descriptors.", used)
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        yield _gauge("os_fd_limit", "The file descriptor limit.", soft)


def registry(collector: StoreCollector) -> CollectorRegistry:
    """A registry of `collector` and the process metrics (not the global one:
    several stores may live in one test process)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    ProcessCollector(registry=reg)
    return reg


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _bare_counter(name: str, doc: str, value: float) -> Metric:
    """A counter whose etcd name has no `_total`: prometheus_client writes every
    counter's TYPE line with `_total` appended, which would not name the
    sample; so it is exposed untyped, under etcd's exact name."""
    metric = Metric(name, doc, "unknown")
    metric.add_sample(name, {}, value)
    return metric


def _labelled_one(name: str, doc: str, label: str, value: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    family.add_metric([value], 1)
    return family


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [(_go_bound(bound), count) for bound, count in histogram.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=histogram.sum)


def _go_bound(bound: float) -> str:
    """A bucket bound as Go's client writes its `le` label ("1", "0.001", "+Inf"),
    so that queries naming a bucket match etcd's (prometheus_client writes "1.0")."""
    if bound == float("inf"):
        return "+Inf"
    text = repr(bound)
    return text[:-2] if text.endswith(".0") else text
