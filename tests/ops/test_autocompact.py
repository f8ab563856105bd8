"""Auto-compaction as etcd 3.4's compactors do it, on a store and against etcd."""

import time

import pytest
from harness.processes import subject_kind
from harness.rpc import Client
from ops_helpers import scrape, start_with_metrics, value

from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest
from k0s_store.ops.autocompact import AutoCompactor, parse_retention
from k0s_store.proto import rpc_pb2 as pb

WAIT_S = 5.0


@pytest.fixture
def store(tmp_path):
    """A fresh in-process Store (fsync off, 1 s minimum lease TTL), closed at teardown."""
    opened = Store(tmp_path / "data", fsync=False, min_lease_ttl=1, lease_check_interval=0.05)
    yield opened
    opened.close()


def _wait_for(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _puts(store, count: int) -> int:
    for i in range(count):
        store.put(PutRequest(b"key%d" % (i % 3), b"v"))
    return store.revision


def test_retention_is_read_as_etcd_reads_it():
    assert parse_retention("periodic", "2") == 2 * 3600.0  # a bare number is hours
    assert parse_retention("periodic", "90m") == 5400.0
    assert parse_retention("periodic", "0") == 0.0  # off
    assert parse_retention("revision", "1000") == 1000.0
    for mode, text in (("revision", "1h"), ("periodic", "1.5"), ("periodic", "-1"), ("x", "1")):
        with pytest.raises(ValueError):
            parse_retention(mode, text)


def test_revision_mode_keeps_the_last_n_revisions(store):
    compactor = AutoCompactor(store, "revision", 5, revision_check_seconds=0.05)
    try:
        first = _puts(store, 20)
        _wait_for(lambda: store.compact_revision == first - 5)
        second = _puts(store, 3)
        _wait_for(lambda: store.compact_revision == second - 5)
    finally:
        compactor.stop()
    assert store.revision == second


def test_revision_mode_waits_until_there_is_more_than_the_retention(store):
    compactor = AutoCompactor(store, "revision", 50, revision_check_seconds=0.02)
    try:
        _puts(store, 10)
        time.sleep(0.3)
        assert store.compact_revision == 0
    finally:
        compactor.stop()


def test_periodic_mode_compacts_to_the_revision_of_one_period_ago(store):
    period = 1.0
    before = _puts(store, 5)
    compactor = AutoCompactor(store, "periodic", period)
    try:
        start = time.monotonic()
        time.sleep(0.3)
        recent = _puts(store, 5)  # younger than the period when the first compaction runs
        _wait_for(lambda: store.compact_revision > 0, timeout=period * 3)
        took = time.monotonic() - start
        assert period * 0.9 <= took, "compacted before the retention passed"
        assert store.compact_revision == before
        # The window slides: every period, to the revision of one period ago.
        _wait_for(lambda: store.compact_revision == recent, timeout=period * 3)
    finally:
        compactor.stop()


@pytest.mark.etcd
def test_etcd_and_we_both_compact_within_a_periodic_retention(servers):
    flags = ["--auto-compaction-mode=periodic", "--auto-compaction-retention=1s"]
    started = [start_with_metrics(servers, kind, flags) for kind in ("etcd", subject_kind())]
    clients = []
    for server, _ in started:
        server.wait_ready()
        clients.append(Client(server.channel()))
    try:
        for client in clients:
            for i in range(5):
                client.call("KV", "Put", pb.PutRequest(key=b"k%d" % i, value=b"v"))
        deadline = time.monotonic() + WAIT_S
        compacted = [0.0, 0.0]
        while not all(compacted) and time.monotonic() < deadline:
            time.sleep(0.2)
            for i, (_, url) in enumerate(started):
                samples, _ = scrape(url)
                compacted[i] = value(samples, "etcd_debugging_mvcc_compact_revision")
        assert all(compacted), compacted
    finally:
        for client in clients:
            client.close()
