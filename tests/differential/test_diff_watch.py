"""Differential: Watch streams, compared response by response."""

import time

import pytest

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd

Filter = rpc_pb2.WatchCreateRequest.FilterType


@pytest.fixture
def watch(pair):
    stream = pair.watch()
    yield stream
    stream.close()


def test_live_events_key_and_range(pair, watch):
    watch.create(key=b"a")
    watch.expect_same(1)
    watch.create(key=b"b", range_end=b"c", prev_kv=True)
    watch.expect_same(1)
    pair.kv("Put", key=b"a", value=b"1")
    pair.kv("Put", key=b"b1", value=b"1")
    pair.kv("Put", key=b"b1", value=b"2")
    pair.kv("DeleteRange", key=b"b", range_end=b"c")
    pair.kv("Put", key=b"c", value=b"not watched")
    watch.expect_same(4)
    watch.expect_same_drained()


def test_start_revision_replay(pair, watch):
    for index in range(5):
        pair.kv("Put", key=b"k%d" % (index % 2), value=b"%d" % index)
    pair.kv("DeleteRange", key=b"k0")
    watch.create(key=b"k", range_end=b"l", start_revision=2, prev_kv=True)
    watch.expect_same_drained()
    pair.kv("Put", key=b"k9", value=b"live")
    watch.expect_same(1)
    watch.create(key=b"k1", start_revision=1)
    watch.expect_same_drained()
    watch.create(key=b"k1", start_revision=100)  # future start: waits
    watch.expect_same(1)
    pair.kv("Put", key=b"k1", value=b"x")
    watch.expect_same_drained()


def test_filters_and_client_watch_ids(pair, watch):
    watch.create(key=b"k", filters=[Filter.NOPUT], watch_id=7)
    watch.create(key=b"k", filters=[Filter.NODELETE], watch_id=3)
    watch.create(key=b"k", filters=[Filter.NOPUT, Filter.NODELETE])
    watch.create(key=b"k", watch_id=7)  # id in use
    watch.expect_same(4)
    pair.kv("Put", key=b"k", value=b"1")
    pair.kv("DeleteRange", key=b"k")
    watch.expect_same_drained()


def test_cancel_and_multiple_watchers(pair, watch):
    for _ in range(3):
        watch.create(key=b"k")
    watch.expect_same(3)
    pair.kv("Put", key=b"k", value=b"1")
    watch.expect_same_drained()
    watch.cancel(1)
    watch.expect_same(1)
    watch.cancel(1)  # unknown now
    watch.cancel(42)
    watch.expect_same_drained()
    pair.kv("Put", key=b"k", value=b"2")
    watch.expect_same_drained()


def test_txn_events_in_one_response(pair, watch):
    watch.create(key=b"\0", range_end=b"\0", prev_kv=True)
    watch.expect_same(1)
    put = rpc_pb2.RequestOp
    pair.kv("Put", key=b"b", value=b"0")
    ops = [
        put(request_put=rpc_pb2.PutRequest(key=b"a", value=b"1")),
        put(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"b")),
        put(request_put=rpc_pb2.PutRequest(key=b"c", value=b"3")),
    ]
    pair.kv("Txn", success=ops)
    watch.expect_same(2)


def test_compacted_start_revision(pair, watch):
    for index in range(5):
        pair.kv("Put", key=b"k", value=b"%d" % index)
    pair.kv("Compact", revision=4)
    watch.create(key=b"k", start_revision=2)
    watch.expect_same_drained()
    watch.create(key=b"k", start_revision=4)
    watch.expect_same_drained()


def test_request_progress(pair, watch):
    watch.progress()  # no watcher yet
    watch.expect_same_drained()
    watch.create(key=b"k")
    watch.expect_same(1)
    pair.kv("Put", key=b"other", value=b"1")
    watch.progress()
    watch.expect_same(1)


@pytest.mark.server_args("--experimental-watch-progress-notify-interval=300ms")
def test_progress_notify_periodic(pair, watch):
    watch.create(key=b"k", progress_notify=True)
    watch.expect_same(1)
    pair.kv("Put", key=b"other", value=b"1")
    # Both send header-only notifications carrying the current revision.
    time.sleep(0.2)
    reference = watch.reference.recv(2.0)
    subject = watch.subject.recv(2.0)
    assert reference is not None and len(reference.events) == 0
    assert subject is not None, "subject sent no progress notification within 2 s"
    assert len(subject.events) == 0
    assert subject.header.revision == reference.header.revision == 2
    assert subject.watch_id == reference.watch_id
    assert subject.created == reference.created


def test_watch_errors(pair, watch):
    watch.create(key=b"")  # empty key
    watch.create(key=b"k", start_revision=-1)
    watch.expect_same_drained()


def test_fragmented_large_replay(pair, watch):
    big = b"x" * (700 * 1024)
    for index in range(4):  # 2.8 MiB of history: over the 1.5 MiB response limit
        pair.kv("Put", key=b"big%d" % index, value=big)
    watch.create(key=b"big", range_end=b"bih", start_revision=1, fragment=True)
    # Fragments compare as sent: the flags and the split are part of the contract.
    watch.expect_same_drained(1.0, merge=False)
