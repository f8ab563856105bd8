"""Watch stream mechanics over a scripted store: ids, order, cancel,
compaction, progress (requested and periodic), fragmentation and the
bounded backlog."""

import queue
import threading
from typing import NamedTuple

import pytest

from k0s_store import errors
from k0s_store.api.header import Header
from k0s_store.api.settings import Settings
from k0s_store.api.watch import WatchStream, batch_bytes
from k0s_store.core import codec
from k0s_store.mvcc.types import EVENT_PUT, Event
from k0s_store.proto import rpc_pb2

TIMEOUT = 5.0


class Batch(NamedTuple):
    events: list
    revision: int
    compact_revision: int = 0


class ScriptedWatcher:
    def __init__(self, store, args, sink) -> None:
        self.args = args
        self.sink = sink
        self.canceled = False
        self.progress_requests = 0
        self.resumes = 0
        self.store = store

    def cancel(self) -> None:
        self.canceled = True

    def resume(self) -> None:
        self.resumes += 1

    def request_progress(self) -> None:
        self.progress_requests += 1
        if self.store.synced:
            self.sink(Batch([], self.store.revision))


class ScriptedStore:
    """Hands out watchers whose sinks the test drives; answers progress when `synced`."""

    def __init__(self, revision: int = 10) -> None:
        self.revision = revision
        self.synced = True
        self.watchers: list[ScriptedWatcher] = []
        self.on_watch = None  # called with the watcher before watch() returns

    def watch(self, key, range_end, start_revision, *, prev_kv, filters, sink):
        w = ScriptedWatcher(self, (key, range_end, start_revision, prev_kv, filters), sink)
        self.watchers.append(w)
        if self.on_watch:
            self.on_watch(w)
        return w


class Client:
    """Runs a WatchStream's sending loop in a thread and collects its responses."""

    def __init__(self, store, **settings) -> None:
        self.stream = WatchStream(store, Header(1, 2, 3), Settings(**settings))
        self.out: queue.Queue = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for data in self.stream.responses():
                self.out.put(rpc_pb2.WatchResponse.FromString(data))
        except errors.EtcdError as e:
            self.error = e
            self.out.put(None)

    def send(self, **kwargs) -> None:
        self.stream.submit(rpc_pb2.WatchRequest(**kwargs).SerializeToString())

    def create(self, key=b"k", **kwargs) -> None:
        self.send(create_request=rpc_pb2.WatchCreateRequest(key=key, **kwargs))

    def recv(self) -> rpc_pb2.WatchResponse:
        return self.out.get(timeout=TIMEOUT)

    def assert_silent(self, seconds: float = 0.2) -> None:
        with pytest.raises(queue.Empty):
            self.out.get(timeout=seconds)

    def close(self) -> None:
        self.stream.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def store():
    return ScriptedStore()


@pytest.fixture
def client(store):
    c = Client(store)
    yield c
    c.close()


def put_event(key: bytes, rev: int) -> Event:
    return Event(EVENT_PUT, codec.encode_kv(key, rev, rev, 1, b"v", 0), None)


def test_ids_are_allocated_from_zero_and_headers_name_the_member(client, store):
    client.create()
    client.create(watch_id=7)
    client.create()
    a, b, c = client.recv(), client.recv(), client.recv()
    assert [(r.watch_id, r.created, r.canceled) for r in (a, b, c)] == [
        (0, True, False),
        (7, True, False),
        (1, True, False),
    ]
    assert (a.header.cluster_id, a.header.member_id, a.header.raft_term) == (1, 2, 3)
    assert a.header.revision == 10
    # start_revision 0 means the next revision; an empty key means \0.
    assert store.watchers[0].args[:3] == (b"k", b"", 11)


def test_key_defaults_and_filters_reach_the_store(client, store):
    client.create(key=b"", range_end=b"\0", start_revision=4, prev_kv=True, filters=[1])
    client.recv()
    assert store.watchers[0].args == (b"\0", b"\0", 4, True, frozenset({1}))


def test_duplicate_id_and_empty_range_are_refused_with_minus_one(client):
    client.create(watch_id=3)
    client.recv()
    client.create(watch_id=3)
    client.create(key=b"b", range_end=b"a")
    dup, empty = client.recv(), client.recv()
    for r in (dup, empty):
        assert (r.watch_id, r.created, r.canceled) == (-1, True, True)
    assert dup.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
    assert empty.cancel_reason == "mvcc: watcher range is empty"


def test_created_precedes_events_sent_while_registering(client, store):
    store.on_watch = lambda w: w.sink(Batch([put_event(b"k", 5)], 5))
    client.create(start_revision=5)
    created, events = client.recv(), client.recv()
    assert created.created and not created.events
    assert [e.kv.key for e in events.events] == [b"k"]
    assert events.header.revision == 5


def test_cancel_answers_once_and_drops_later_batches(client, store):
    client.create()
    client.recv()
    client.send(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0))
    r = client.recv()
    assert (r.watch_id, r.canceled) == (0, True)
    assert store.watchers[0].canceled
    store.watchers[0].sink(Batch([put_event(b"k", 11)], 11))
    client.send(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=42))  # unknown: silent
    client.assert_silent()


def test_compacted_start_is_created_then_canceled_with_compact_revision(client, store):
    store.on_watch = lambda w: w.sink(Batch([], 0, compact_revision=8))
    client.create(start_revision=2)
    created, compacted = client.recv(), client.recv()
    assert created.created and not created.canceled
    assert (compacted.canceled, compacted.compact_revision) == (True, 8)
    assert compacted.header.revision == 0


def test_request_progress_waits_for_every_watcher_and_follows_their_events(client, store):
    client.send(progress_request=rpc_pb2.WatchProgressRequest())
    alone = client.recv()  # no watcher: the current revision at once
    assert (alone.watch_id, alone.header.revision) == (-1, 10)
    client.create(key=b"a")
    client.create(key=b"b")
    client.recv(), client.recv()
    store.synced = False
    client.send(progress_request=rpc_pb2.WatchProgressRequest())
    client.assert_silent()
    a, b = store.watchers
    assert (a.progress_requests, b.progress_requests) == (1, 1)
    a.sink(Batch([], 11))  # a reports synced at 11; b has not answered
    client.assert_silent()
    # b catches up: its events go out first, then it is asked again and answers.
    store.synced = True
    store.revision = 12
    b.sink(Batch([put_event(b"b", 12)], 12))
    assert client.recv().events[0].kv.key == b"b"
    progress = client.recv()
    assert (progress.watch_id, progress.header.revision, len(progress.events)) == (-1, 11, 0)
    assert (a.progress_requests, b.progress_requests) == (1, 2)


def test_a_watcher_created_while_progress_is_pending_is_waited_for(client, store):
    client.create(key=b"a")
    client.recv()
    store.synced = False
    client.send(progress_request=rpc_pb2.WatchProgressRequest())
    client.create(key=b"b", start_revision=5)  # catching up from 5
    assert client.recv().created
    a, b = store.watchers
    assert (a.progress_requests, b.progress_requests) == (1, 1)
    a.sink(Batch([], 11))
    client.assert_silent()  # b has not sent its events up to 11
    store.synced = True
    b.sink(Batch([put_event(b"b", 9)], 9))
    assert client.recv().events[0].kv.key == b"b"
    progress = client.recv()
    assert (progress.watch_id, progress.header.revision, len(progress.events)) == (-1, 10, 0)


def test_periodic_progress_only_for_quiet_progress_notify_watchers(store):
    client = Client(store, progress_notify_interval=0.1)
    try:
        client.create(key=b"p", progress_notify=True)
        client.create(key=b"q")
        client.recv(), client.recv()
        notify = client.recv()
        assert (notify.watch_id, notify.header.revision, len(notify.events)) == (0, 10, 0)
        assert store.watchers[1].progress_requests == 0
    finally:
        client.close()


def test_fragment_splits_large_responses_only_when_asked(store):
    client = Client(store, max_request_bytes=0)  # threshold: the 512 KiB gRPC overhead
    try:
        client.create(key=b"a", fragment=True)
        client.create(key=b"b")
        client.recv(), client.recv()
        big = [put_event(b"k%d" % i, 20) for i in range(3)]
        big = [e._replace(kv=codec.encode_kv(b"k", 20, 20, 1, b"x" * 200_000, 0)) for e in big]
        store.watchers[0].sink(Batch(big, 20))
        parts = [client.recv() for _ in range(2)]
        assert [len(p.events) for p in parts] == [2, 1]
        assert [p.fragment for p in parts] == [True, False]
        store.watchers[1].sink(Batch(big, 20))
        whole = client.recv()
        assert (len(whole.events), whole.fragment) == (3, False)
    finally:
        client.close()


def test_malformed_request_ends_the_stream(client):
    client.stream.submit(b"\x0a\xff")
    assert client.recv() is None
    assert isinstance(client.error, errors.MalformedRequestError)


def test_close_cancels_every_watcher(store):
    client = Client(store)
    client.create()
    client.recv()
    client.close()
    assert store.watchers[0].canceled
    assert not client.thread.is_alive()


def stalled_stream(store, backlog_bytes: int):
    """A stream whose client reads only when the test calls next() on it."""
    stream = WatchStream(store, Header(1, 2, 3), Settings(), backlog_bytes=backlog_bytes)
    responses = stream.responses()
    stream.submit(
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"k")
        ).SerializeToString()
    )
    assert rpc_pb2.WatchResponse.FromString(next(responses)).created
    return stream, responses


def test_full_backlog_refuses_events_and_resumes_at_half(store):
    batch = Batch([put_event(b"k", 11)], 11)
    stream, responses = stalled_stream(store, backlog_bytes=3 * batch_bytes(batch))
    watcher = store.watchers[0]
    taken = [watcher.sink(Batch([put_event(b"k", rev)], rev)) for rev in range(11, 15)]
    assert taken == [True, True, True, False]
    assert watcher.sink(Batch([], 13)) is True  # progress and compaction are never refused
    revisions = []
    for _ in range(2):
        revisions.append(rpc_pb2.WatchResponse.FromString(next(responses)).header.revision)
        assert watcher.resumes == 0  # 2 batches still queued: above half the bound
    revisions.append(rpc_pb2.WatchResponse.FromString(next(responses)).header.revision)
    assert watcher.resumes == 1  # the second was sent: one left, half the bound free
    assert revisions == [11, 12, 13]
    assert watcher.sink(Batch([put_event(b"k", 14)], 14)) is True
    stream.close()


def test_an_empty_backlog_takes_a_batch_larger_than_the_bound(store):
    stream, responses = stalled_stream(store, backlog_bytes=1)
    watcher = store.watchers[0]
    big = Batch([put_event(b"k%d" % i, 11) for i in range(50)], 11)
    assert watcher.sink(big) is True
    assert watcher.sink(Batch([put_event(b"k", 12)], 12)) is False
    assert len(rpc_pb2.WatchResponse.FromString(next(responses)).events) == 50
    stream.submit(rpc_pb2.WatchRequest(progress_request={}).SerializeToString())
    progress = rpc_pb2.WatchResponse.FromString(next(responses))  # the big batch is drained
    assert (progress.watch_id, watcher.resumes) == (-1, 1)
    stream.close()


def test_push_mode_wakes_and_polls_in_order(store):
    """The push form a transport without a thread per stream uses: every queued
    item wakes it, poll() answers what is queued without blocking."""
    stream = WatchStream(store, Header(1, 2, 3), Settings())
    wakes = []
    stream.on_queued(lambda: wakes.append(1))
    assert stream.poll() == []  # nothing queued: returns at once
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k"))
    stream.submit(create.SerializeToString())
    assert len(wakes) == 1
    [created] = [rpc_pb2.WatchResponse.FromString(r) for r in stream.poll()]
    assert created.created
    store.watchers[0].sink(Batch([put_event(b"k", 11)], 11))
    store.watchers[0].sink(Batch([put_event(b"k", 12)], 12))
    assert len(wakes) == 3
    responses = [rpc_pb2.WatchResponse.FromString(r) for r in stream.poll()]
    assert [r.header.revision for r in responses] == [11, 12]
    stream.close()
    assert store.watchers[0].canceled and stream.poll() == []
