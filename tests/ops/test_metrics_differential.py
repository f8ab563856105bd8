"""/metrics and /health against a real etcd 3.4 started with the same flags.

The same workload goes to both; the counters it moves must move by the same
amounts on both (parsed with prometheus_client's parser), every metric we
export must be one etcd exports with the same type, and /health must answer
the same status and body in every state, NOSPACE alarm included.
"""

import time

import pytest
from harness.processes import subject_kind
from harness.rpc import Client, RpcFailure
from ops_helpers import get, scrape, start_with_metrics, value

from k0s_store.proto import rpc_pb2 as pb

N_PUTS = 25
# etcd counters without the `_total` suffix: prometheus_client cannot type them
# as counters under that name, so we export them untyped (same name and value).
UNTYPED_COUNTERS = ("etcd_server_health_success", "etcd_server_health_failures")
# Counters a workload moves the same way on etcd and on us.
MVCC_COUNTERS = (
    "etcd_mvcc_put_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_put_total",
    "etcd_debugging_mvcc_range_total",
)
# (method, service, grpc code) whose handled counts the workload moves.
HANDLED = (
    ("Put", "etcdserverpb.KV", "OK"),
    ("Range", "etcdserverpb.KV", "OK"),
    ("Range", "etcdserverpb.KV", "OutOfRange"),
    ("Txn", "etcdserverpb.KV", "OK"),
    ("DeleteRange", "etcdserverpb.KV", "OK"),
    ("LeaseRevoke", "etcdserverpb.Lease", "NotFound"),
    ("Put", "etcdserverpb.KV", "InvalidArgument"),
)


@pytest.fixture
def both(servers):
    """(etcd, subject): each (server, metrics URL, client), booted together."""
    started = [start_with_metrics(servers, kind) for kind in ("etcd", subject_kind())]
    out = []
    for server, url in started:
        server.wait_ready()
        out.append((server, url, Client(server.channel())))
    yield out
    for _, _, client in out:
        client.close()


def _workload(client: Client) -> None:
    """Puts, ranges, a txn, deletes and failures, as a kube-apiserver would mix them."""
    kv = lambda method, request: client.call("KV", method, request)  # noqa: E731
    for i in range(N_PUTS):
        assert not isinstance(kv("Put", pb.PutRequest(key=b"k%03d" % i, value=b"v")), RpcFailure)
    kv("Put", pb.PutRequest(key=b"k000", value=b"w", prev_kv=True))  # reads first
    kv("Range", pb.RangeRequest(key=b"k", range_end=b"l"))
    kv("Range", pb.RangeRequest(key=b"k001"))
    failed = kv("Range", pb.RangeRequest(key=b"k", revision=10_000))  # future revision
    assert isinstance(failed, RpcFailure) and failed.code == "OUT_OF_RANGE"
    kv("Put", pb.PutRequest(key=b""))  # empty key: InvalidArgument
    create = pb.TxnRequest(
        compare=[pb.Compare(key=b"new", target=pb.Compare.MOD, mod_revision=0)],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"new", value=b"x"))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"new"))],
    )
    assert kv("Txn", create).succeeded
    assert not kv("Txn", create).succeeded  # failure branch: a range
    two_compares = pb.TxnRequest(
        compare=[
            pb.Compare(key=b"k001", target=pb.Compare.VERSION, version=1),
            pb.Compare(key=b"k002", target=pb.Compare.VERSION, version=1),
        ],
        success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"k003"))],
    )
    assert kv("Txn", two_compares).succeeded
    kv("DeleteRange", pb.DeleteRangeRequest(key=b"k010", range_end=b"k015", prev_kv=True))
    kv("DeleteRange", pb.DeleteRangeRequest(key=b"k020"))
    failed = client.call("Lease", "LeaseRevoke", pb.LeaseRevokeRequest(ID=12345))
    assert isinstance(failed, RpcFailure) and failed.code == "NOT_FOUND"


@pytest.mark.etcd
def test_a_workload_moves_the_counters_as_on_etcd(both):
    before = [scrape(url)[0] for _, url, _ in both]
    for _, _, client in both:
        _workload(client)
    after = [scrape(url)[0] for _, url, _ in both]

    def moved(i: int, name: str, **labels: str) -> float:
        return value(after[i], name, **labels) - value(before[i], name, **labels)

    for name in MVCC_COUNTERS:
        assert moved(1, name) == moved(0, name), name
    assert moved(1, "etcd_mvcc_put_total") == N_PUTS + 2  # the txn's put too
    for method, service, code in HANDLED:
        labels = dict(grpc_method=method, grpc_service=service, grpc_type="unary")
        etcd_count = moved(0, "grpc_server_handled_total", grpc_code=code, **labels)
        assert moved(1, "grpc_server_handled_total", grpc_code=code, **labels) == etcd_count, (
            method,
            code,
        )
        assert etcd_count > 0, (method, code)
    started = dict(grpc_method="Put", grpc_service="etcdserverpb.KV", grpc_type="unary")
    assert moved(1, "grpc_server_started_total", **started) == N_PUTS + 2
    # The same requests, so the same bytes in; answers differ only in ids' varint sizes.
    received = "etcd_network_client_grpc_received_bytes_total"
    assert moved(1, received) == moved(0, received) > 0
    sent = [moved(i, "etcd_network_client_grpc_sent_bytes_total") for i in (0, 1)]
    assert abs(sent[1] - sent[0]) <= 0.1 * sent[0], sent
    keys = [value(samples, "etcd_debugging_mvcc_keys_total") for samples in after]
    assert keys[1] == keys[0] == N_PUTS - 5 - 1 + 1  # 6 deleted, "new" created


@pytest.mark.etcd
def test_our_metrics_are_etcds_with_the_same_types_and_buckets(both):
    (_, etcd_url, _), (_, our_url, _) = both
    _, etcd_types = scrape(etcd_url)
    _, our_types = scrape(our_url)
    assert set(our_types) <= set(etcd_types), sorted(set(our_types) - set(etcd_types))
    for name, kind in our_types.items():
        if name not in UNTYPED_COUNTERS:
            assert kind == etcd_types[name], name
    for name in (
        "etcd_server_has_leader",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_mvcc_put_total",
        "etcd_disk_backend_commit_duration_seconds",
        "etcd_disk_wal_fsync_duration_seconds",
        "grpc_server_handled_total",
        "grpc_server_started_total",
        "etcd_debugging_mvcc_watcher_total",
        "etcd_server_quota_backend_bytes",
    ):
        # The parser names a counter's family without `_total`.
        assert name in our_types or name.removesuffix("_total") in our_types, name
    etcd_samples, _ = scrape(etcd_url)
    our_samples, _ = scrape(our_url)
    assert get(our_url, "/metrics").content_type == get(etcd_url, "/metrics").content_type
    for histogram in (
        "etcd_disk_backend_commit_duration_seconds",
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    ):
        bucket_labels = lambda samples, h=histogram: sorted(  # noqa: E731
            dict(labels)["le"] for name, labels in samples if name == f"{h}_bucket"
        )
        assert bucket_labels(our_samples) == bucket_labels(etcd_samples), histogram
    for gauge in (
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_quota_backend_bytes",
    ):
        assert value(our_samples, gauge) == value(etcd_samples, gauge), gauge


def _health_same(both, path: str = "/health") -> tuple[int, bytes]:
    (_, etcd_url, _), (_, our_url, _) = both
    etcd_answer, our_answer = get(etcd_url, path), get(our_url, path)
    assert our_answer == etcd_answer, path
    return our_answer.status, our_answer.body


QUOTA = 1024 * 1024


@pytest.mark.etcd
def test_health_follows_the_nospace_alarm_as_on_etcd(servers):
    started = [
        start_with_metrics(servers, kind, [f"--quota-backend-bytes={QUOTA}"])
        for kind in ("etcd", subject_kind())
    ]
    both = []
    for server, url in started:
        server.wait_ready()
        both.append((server, url, Client(server.channel())))
    try:
        assert _health_same(both) == (200, b'{"health":"true"}')
        assert _health_same(both, "/nothing-here")[0] == 404
        for _, _, client in both:
            _fill_until_nospace(client)
        assert _health_same(both) == (503, b'{"health":"false"}\n')
        assert _health_same(both, "/health?exclude=NOSPACE") == (200, b'{"health":"true"}')
        for _, _, client in both:
            _recover(client)
        assert _health_same(both) == (200, b'{"health":"true"}')
        etcd_samples, our_samples = (scrape(url)[0] for _, url, _ in both)
        for counter in UNTYPED_COUNTERS:
            assert _untyped(our_samples, counter) == _untyped(etcd_samples, counter)
        assert _untyped(our_samples, "etcd_server_health_success") == 3
    finally:
        for _, _, client in both:
            client.close()


def _untyped(samples, counter: str) -> float:
    """An UNTYPED_COUNTERS value: the parser names etcd's (a counter) with `_total`."""
    return value(samples, counter) + value(samples, f"{counter}_total")


def _fill_until_nospace(client: Client) -> None:
    """Put 64 KiB values until the quota refuses one (bounded)."""
    for i in range(200):
        outcome = client.call("KV", "Put", pb.PutRequest(key=b"fill%d" % i, value=b"x" * 65536))
        if isinstance(outcome, RpcFailure):
            assert outcome.details == "etcdserver: mvcc: database space exceeded"
            return
    pytest.fail("the quota never ran out")


def _recover(client: Client) -> None:
    """etcd's documented recovery: delete, compact, defragment, disarm."""
    client.call("KV", "DeleteRange", pb.DeleteRangeRequest(key=b"fill", range_end=b"film"))
    revision = client.call("KV", "Range", pb.RangeRequest(key=b"x")).header.revision
    assert not isinstance(
        client.call("KV", "Compact", pb.CompactionRequest(revision=revision, physical=True)),
        RpcFailure,
    )
    assert not isinstance(
        client.call("Maintenance", "Defragment", pb.DefragmentRequest()), RpcFailure
    )
    raised = client.call("Maintenance", "Alarm", pb.AlarmRequest(action=pb.AlarmRequest.GET))
    for alarm in raised.alarms:  # as `etcdctl alarm disarm` does
        disarm = pb.AlarmRequest(
            action=pb.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm
        )
        assert not isinstance(client.call("Maintenance", "Alarm", disarm), RpcFailure)


def _watch_and_cancel(client: Client) -> None:
    """Open a Watch stream, get its created response, then cancel the call."""
    request = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"w"))
    call = client.stubs["Watch"].Watch(iter([request]), timeout=10)
    assert next(call).created
    call.cancel()


@pytest.mark.etcd
def test_a_cancelled_watch_stream_is_counted_as_on_etcd(both):
    labels = dict(grpc_method="Watch", grpc_service="etcdserverpb.Watch", grpc_type="bidi_stream")
    before = [scrape(url)[0] for _, url, _ in both]
    for _, _, client in both:
        _watch_and_cancel(client)
    deadline = time.monotonic() + 5.0
    while True:  # the server side ends the stream asynchronously
        after = [scrape(url)[0] for _, url, _ in both]
        handled = [
            value(a, "grpc_server_handled_total", grpc_code="Canceled", **labels)
            - value(b, "grpc_server_handled_total", grpc_code="Canceled", **labels)
            for a, b in zip(after, before, strict=True)
        ]
        if handled == [1, 1] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert handled == [1, 1]
    started = [
        value(a, "grpc_server_started_total", **labels)
        - value(b, "grpc_server_started_total", **labels)
        for a, b in zip(after, before, strict=True)
    ]
    assert started == [1, 1]
