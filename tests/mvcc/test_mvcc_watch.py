"""Watch: live delivery, replay of the past, filters, prev_kv, compaction, progress."""

import threading
import time

from conftest import kv

from k0s_store.mvcc import watch_hub
from k0s_store.mvcc.types import (
    EVENT_DELETE,
    EVENT_PUT,
    FILTER_NODELETE,
    FILTER_NOPUT,
    DeleteRangeRequest,
    PutRequest,
    TxnRequest,
)


class Sink:
    """Collects batches; waits for a condition on them."""

    def __init__(self) -> None:
        self.batches = []
        self._cond = threading.Condition()

    def __call__(self, batch) -> None:
        with self._cond:
            self.batches.append(batch)
            self._cond.notify_all()

    def events(self):
        return [e for b in self.batches for e in b.events]

    def wait_for(self, predicate, timeout=5.0):
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self), timeout), self.batches


def watch(store, key, end=b"", start=0, prev_kv=False, filters=()):
    sink = Sink()
    watcher = store.watch(key, end, start, prev_kv=prev_kv, filters=frozenset(filters), sink=sink)
    return watcher, sink


def test_live_events_of_a_txn_come_in_one_batch(store):
    _, sink = watch(store, b"a", b"c", prev_kv=True)
    _, single = watch(store, b"b")
    store.put(PutRequest(b"a", b"1"))
    store.put(PutRequest(b"zz", b"other"))
    store.txn(TxnRequest(success=(PutRequest(b"b", b"2"), DeleteRangeRequest(b"a"))))
    sink.wait_for(lambda s: len(s.events()) == 3)
    assert [b.revision for b in sink.batches] == [2, 4]
    put_a, put_b, del_a = sink.events()
    assert (put_a.type, kv(put_a.kv)[:5], put_a.prev_kv) == (EVENT_PUT, (b"a", 2, 2, 1, b"1"), None)
    assert put_b.type == EVENT_PUT and kv(put_b.kv)[0] == b"b"
    assert del_a.type == EVENT_DELETE and kv(del_a.kv) == (b"a", 0, 4, 0, b"", 0)
    assert kv(del_a.prev_kv)[4] == b"1"
    single.wait_for(lambda s: len(s.events()) == 1)
    assert single.batches[0].events[0].prev_kv is None


def test_replay_from_the_past_then_live(store):
    for i in range(5):
        store.put(PutRequest(b"k", b"%d" % i))  # revisions 2..6
    store.delete_range(DeleteRangeRequest(b"k"))  # 7
    _, sink = watch(store, b"k", start=4, prev_kv=True)
    sink.wait_for(lambda s: len(s.events()) == 4)
    store.put(PutRequest(b"k", b"live"))  # 8
    sink.wait_for(lambda s: len(s.events()) == 5)
    events = sink.events()
    assert [kv(e.kv)[2] for e in events] == [4, 5, 6, 7, 8]
    assert [kv(e.prev_kv)[4] for e in events[:4]] == [b"1", b"2", b"3", b"4"]
    assert events[3].type == EVENT_DELETE and events[4].prev_kv is None
    assert sink.batches[-1].revision == 8


def test_filters(store):
    _, no_put = watch(store, b"f", filters=(FILTER_NOPUT,))
    _, no_delete = watch(store, b"f", filters=(FILTER_NODELETE,))
    store.put(PutRequest(b"f", b"1"))
    store.delete_range(DeleteRangeRequest(b"f"))
    no_put.wait_for(lambda s: len(s.events()) == 1)
    no_delete.wait_for(lambda s: len(s.events()) == 1)
    assert no_put.events()[0].type == EVENT_DELETE
    assert no_delete.events()[0].type == EVENT_PUT


def test_future_start_revision_waits_for_it(store):
    _, sink = watch(store, b"w", start=4)
    for i in range(4):
        store.put(PutRequest(b"w", b"%d" % i))  # revisions 2..5
    sink.wait_for(lambda s: len(s.events()) == 2)
    assert [kv(e.kv)[2] for e in sink.events()] == [4, 5]


def test_compacted_start_revision(store):
    for i in range(5):
        store.put(PutRequest(b"c", b"%d" % i))  # revisions 2..6
    store.compact(4)
    watcher, sink = watch(store, b"c", start=3)
    sink.wait_for(lambda s: len(s.batches) == 1)
    assert sink.batches[0].compact_revision == 4 and sink.batches[0].events == []
    assert watcher.dead
    _, ok = watch(store, b"c", start=4)  # the compact revision itself is still watchable
    ok.wait_for(lambda s: len(s.events()) == 3)


def test_cancel_and_progress(store):
    watcher, sink = watch(store, b"p")
    store.put(PutRequest(b"q", b"unrelated"))
    time.sleep(0.05)
    watcher.request_progress()
    assert sink.batches[-1].events == [] and sink.batches[-1].revision == 2
    watcher.cancel()
    store.put(PutRequest(b"p", b"x"))
    time.sleep(0.05)
    assert len(sink.batches) == 1


def test_catch_up_under_concurrent_writes_never_skips_or_repeats(store, monkeypatch):
    monkeypatch.setattr(watch_hub, "REPLAY_CHUNK_EVENTS", 7)
    for i in range(200):
        store.put(PutRequest(b"n%d" % (i % 13), b"%d" % i))
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and i < 2000:
            store.put(PutRequest(b"n%d" % (i % 13), b"w"))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    _, sink = watch(store, b"n", b"o", start=2)
    time.sleep(0.3)
    stop.set()
    thread.join()
    final = store.revision
    sink.wait_for(lambda s: s.batches and s.batches[-1].revision == final)
    revs = [kv(e.kv)[2] for e in sink.events()]
    assert revs == list(range(2, final + 1))
    batch_revs = [b.revision for b in sink.batches]
    assert batch_revs == sorted(batch_revs)
    for batch in sink.batches:
        assert kv(batch.events[-1].kv)[2] == batch.revision  # whole revisions, up to `revision`
