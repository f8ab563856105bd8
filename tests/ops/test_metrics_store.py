"""/metrics and /health of an in-process store: values follow a known
workload, the writer-stall check, and the https metrics listener (a real
TLS handshake with a client certificate)."""

import ssl
import threading
import time
import urllib.request

import pytest
from harness.ports import free_port
from prometheus_client.parser import text_string_to_metric_families

from k0s_store.api.methods import Method, Shape
from k0s_store.api.rpc_stats import RpcStats
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest
from k0s_store.ops.endpoints import OpsEndpoints
from k0s_store.ops.health import check_health
from k0s_store.ops.http_listener import MetricsListeners
from k0s_store.transport.listeners import TLSFiles

N = 40


@pytest.fixture
def store(tmp_path):
    """A fresh in-process Store (fsync off, 1 s minimum lease TTL), closed at teardown."""
    opened = Store(tmp_path / "data", fsync=False, min_lease_ttl=1, lease_check_interval=0.05)
    yield opened
    opened.close()


def _samples(endpoints: OpsEndpoints) -> dict[str, float]:
    """Unlabelled samples by name (labelled ones keyed name{sorted labels})."""
    out = {}
    for family in text_string_to_metric_families(endpoints.metrics().decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@pytest.fixture
def endpoints(store) -> OpsEndpoints:
    return OpsEndpoints(store, RpcStats(), version="3.4.31", fsync=False)


def test_counters_and_gauges_follow_the_store(store, endpoints):
    before = _samples(endpoints)
    for i in range(N):
        store.put(PutRequest(b"key%03d" % i, b"v" * 100))
    store.range(RangeRequest(b"key", b"kez"))
    store.delete_range(DeleteRangeRequest(b"key000", b"key010"))
    after = _samples(endpoints)
    assert after["etcd_mvcc_put_total"] - before["etcd_mvcc_put_total"] == N
    assert after["etcd_mvcc_range_total"] - before["etcd_mvcc_range_total"] == 1
    assert after["etcd_mvcc_delete_total"] - before["etcd_mvcc_delete_total"] == 1
    assert after["etcd_debugging_mvcc_keys_total"] == N - 10
    assert after["etcd_debugging_mvcc_current_revision"] == store.revision
    assert after["etcd_server_quota_backend_bytes"] == store.quota_bytes
    status = store.status()
    assert after["etcd_mvcc_db_total_size_in_bytes"] == status.db_size
    assert after["etcd_mvcc_db_total_size_in_use_in_bytes"] <= status.db_size
    commits = after["etcd_disk_backend_commit_duration_seconds_count"]
    assert commits >= N + 1  # one commit per request at least (no concurrency here)
    assert after["etcd_disk_backend_commit_duration_seconds_bucket{le=+Inf}"] == commits
    assert "etcd_disk_wal_fsync_duration_seconds_count" not in after  # fsync is off


def test_watchers_are_counted_until_cancelled(store, endpoints):
    watchers = [
        store.watch(b"k%d" % i, b"", 0, prev_kv=False, filters=frozenset(), sink=lambda b: True)
        for i in range(3)
    ]
    assert _samples(endpoints)["etcd_debugging_mvcc_watcher_total"] == 3
    watchers[0].cancel()
    assert _samples(endpoints)["etcd_debugging_mvcc_watcher_total"] == 2


def test_health_is_false_while_the_writer_is_stalled(store, endpoints):
    assert check_health(store).healthy
    release = threading.Event()
    # An exclusive job holds the writer as a stuck fsync or defragmentation would.
    stuck = store._writer.submit(lambda: release.wait(10), exclusive=True)
    try:
        health = check_health(store)
        assert not health.healthy and "writer stalled" in health.reason
        response = endpoints.handle("GET", "/health")
        assert (response.status, response.body) == (503, b'{"health":"false"}\n')
    finally:
        release.set()
        stuck.wait()
    assert endpoints.handle("GET", "/health").status == 200
    samples = _samples(endpoints)
    assert samples["etcd_server_health_failures"] == 1
    assert samples["etcd_server_health_success"] == 1


def test_https_metrics_require_the_client_certificate(store, endpoints, tls_files):
    tls = TLSFiles(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca), True)
    port = free_port()
    listeners = MetricsListeners(f"https://127.0.0.1:{port}", tls, endpoints.handle)
    try:
        context = ssl.create_default_context(cafile=str(tls_files.ca))
        context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
        url = f"https://127.0.0.1:{port}/health"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert response.read() == b'{"health":"true"}'
        anonymous = ssl.create_default_context(cafile=str(tls_files.ca))
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            urllib.request.urlopen(url, context=anonymous, timeout=10).read()
    finally:
        listeners.close()


def test_metrics_urls_are_checked_as_etcd_checks_them(endpoints):
    with pytest.raises(ValueError, match="must be provided"):
        MetricsListeners(f"https://127.0.0.1:{free_port()}", TLSFiles(), endpoints.handle)
    with pytest.raises(ValueError, match="scheme"):
        MetricsListeners(f"ftp://127.0.0.1:{free_port()}", TLSFiles(), endpoints.handle)


def test_every_metrics_url_serves(endpoints):
    ports = [free_port(), free_port()]
    urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    listeners = MetricsListeners(urls, TLSFiles(), endpoints.handle)
    try:
        assert [address for _, address in listeners.addresses] == [
            f"127.0.0.1:{port}" for port in ports
        ]
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert b"etcd_server_has_leader 1.0" in r.read()
    finally:
        listeners.close()


def test_expired_leases_are_counted(store, endpoints):
    grant = store.lease_grant(1)
    store.put(PutRequest(b"leased", b"v", lease=grant.id))
    deadline = time.monotonic() + 5
    while _samples(endpoints)["etcd_debugging_server_lease_expired_total"] < 1:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert _samples(endpoints)["etcd_debugging_mvcc_keys_total"] == 0


def test_open_watch_streams_are_the_watch_rpcs_not_yet_finished(store):
    watch = Method("etcdserverpb.Watch", "Watch", Shape.SESSION, handler=None)
    rpc_stats = RpcStats()
    [watch_stats] = rpc_stats.serve({watch.path: watch}).values()
    endpoints = OpsEndpoints(store, rpc_stats, version="3.4.31", fsync=False)
    first, _ = watch_stats.started(), watch_stats.started()
    assert _samples(endpoints)["etcd_debugging_mvcc_watch_stream_total"] == 2
    watch_stats.finished(1, first)  # Canceled
    assert _samples(endpoints)["etcd_debugging_mvcc_watch_stream_total"] == 1


def test_a_compaction_is_timed(store, endpoints):
    for i in range(5):
        store.put(PutRequest(b"key", b"v%d" % i))
    store.compact(store.revision, physical=True)
    samples = _samples(endpoints)
    assert samples["etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count"] == 1
    assert samples["etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_count"] >= 1
    assert samples["etcd_debugging_mvcc_compact_revision"] == store.revision
