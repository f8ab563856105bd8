"""Watch back-pressure: a sink that refuses batches pauses its watcher, which
later catches up from history with the same events, in order, each revision
whole; compaction meanwhile gives the compacted notice; progress waits."""

import threading
import time

from conftest import kv

from k0s_store.mvcc import watch_hub
from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, TxnRequest

TIMEOUT = 10.0


class Sink:
    """Collects batches; takes at most `room` event batches between resumes
    (None: every batch), refusing the rest as a full stream would."""

    def __init__(self, room: int | None = None) -> None:
        self.batches = []
        self.refusals = 0
        self.room = room
        self._taken = 0
        self._cond = threading.Condition()

    def __call__(self, batch) -> bool:
        with self._cond:
            if batch.events and self.room is not None:
                if self._taken >= self.room:
                    self.refusals += 1
                    self._cond.notify_all()
                    return False
                self._taken += 1
            self.batches.append(batch)
            self._cond.notify_all()
            return True

    def make_room(self, room: int | None) -> None:
        with self._cond:
            self.room, self._taken = room, 0
            self._cond.notify_all()

    def events(self):
        return [e for b in self.batches for e in b.events]

    def wait_for(self, predicate, timeout=TIMEOUT):
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self), timeout), self.batches


def watch(store, sink, key=b"k", end=b"l", start=0, prev_kv=True):
    return store.watch(key, end, start, prev_kv=prev_kv, filters=frozenset(), sink=sink)


def write_mix(store, count: int, offset: int = 0) -> None:
    """Puts, a multi-key txn and deletes: revisions with one and several events."""
    for i in range(offset, offset + count):
        key = b"k%d" % (i % 7)
        if i % 10 == 3:
            store.txn(TxnRequest(success=(PutRequest(key, b"t"), PutRequest(b"k-txn", b"%d" % i))))
        elif i % 10 == 7:
            store.delete_range(DeleteRangeRequest(key))
        else:
            store.put(PutRequest(key, b"v%d" % i))
        if i % 5 == 0:
            store.put(PutRequest(b"other", b"x"))  # not watched


def assert_whole_revisions(sink: Sink) -> None:
    """Each batch brings every event of the revisions after the previous batch,
    up to its own revision: no revision is split across batches."""
    covered = 0
    for batch in sink.batches:
        assert batch.revision >= covered
        for event in batch.events:
            assert covered < kv(event.kv)[2] <= batch.revision
        covered = batch.revision


def test_refused_batches_are_replayed_identically(store):
    reference, paused = Sink(), Sink(room=3)
    watch(store, reference)
    watcher = watch(store, paused)
    write_mix(store, 60)
    final = store.revision
    reference.wait_for(lambda s: s.batches[-1].revision == final)
    paused.wait_for(lambda s: s.refusals == 1)
    assert watcher.paused and not watcher.synced
    assert len(paused.batches) == 3
    time.sleep(0.1)
    assert paused.refusals == 1  # no retry before resume()
    paused.make_room(None)
    watcher.resume()
    paused.wait_for(lambda s: s.batches and s.batches[-1].revision == final)
    assert paused.events() == reference.events()
    assert_whole_revisions(paused)
    write_mix(store, 5, offset=60)  # live again once caught up
    final = store.revision
    paused.wait_for(lambda s: s.batches[-1].revision == final)
    reference.wait_for(lambda s: s.batches[-1].revision == final)
    assert watcher.synced and paused.events() == reference.events()


def test_repeated_pauses_under_concurrent_writes(store, monkeypatch):
    """Pauses during live delivery and during replay, resumed from another thread."""
    monkeypatch.setattr(watch_hub, "REPLAY_CHUNK_EVENTS", 5)
    write_mix(store, 40)
    reference, paused = Sink(), Sink(room=2)
    watch(store, reference, start=2)
    watcher = watch(store, paused, start=2)
    done = threading.Event()
    resumes = 0

    def resumer():
        nonlocal resumes
        while True:
            paused.wait_for(lambda s, handled=resumes: s.refusals > handled or done.is_set())
            if done.is_set():
                return
            resumes += 1
            paused.make_room(2)
            watcher.resume()

    thread = threading.Thread(target=resumer)
    thread.start()
    try:
        write_mix(store, 300, offset=40)
        final = store.revision
        paused.wait_for(lambda s: s.batches and s.batches[-1].revision == final)
    finally:
        done.set()
        paused.make_room(None)  # wakes the resumer
        thread.join(TIMEOUT)
    reference.wait_for(lambda s: s.batches[-1].revision == final)
    assert paused.events() == reference.events()
    assert resumes > 10  # it really was paused, live and while replaying
    assert_whole_revisions(paused)


def test_refused_replay_chunk_is_read_again(store, monkeypatch):
    monkeypatch.setattr(watch_hub, "REPLAY_CHUNK_EVENTS", 4)
    write_mix(store, 30)
    final = store.revision
    reference, paused = Sink(), Sink(room=0)
    watch(store, reference, start=2)
    watcher = watch(store, paused, start=2)
    paused.wait_for(lambda s: s.refusals == 1)
    assert paused.batches == [] and watcher.paused
    paused.make_room(None)
    watcher.resume()
    reference.wait_for(lambda s: s.batches[-1].revision == final)
    paused.wait_for(lambda s: s.batches and s.batches[-1].revision == final)
    assert paused.events() == reference.events()
    assert_whole_revisions(paused)


def test_compaction_while_paused_gives_the_compacted_notice(store):
    paused = Sink(room=1)
    watcher = watch(store, paused)
    store.put(PutRequest(b"k1", b"taken"))  # revision 2
    store.put(PutRequest(b"k1", b"refused"))  # 3: the watcher pauses needing it
    paused.wait_for(lambda s: s.refusals == 1)
    for i in range(3):
        store.put(PutRequest(b"k2", b"%d" % i))  # 4..6
    store.compact(5)
    paused.make_room(None)
    watcher.resume()
    paused.wait_for(lambda s: s.batches[-1].compact_revision)
    assert [kv(e.kv)[4] for e in paused.events()] == [b"taken"]
    notice = paused.batches[-1]
    assert (notice.events, notice.compact_revision) == ([], 5)
    assert watcher.dead
    store.put(PutRequest(b"k1", b"after"))
    time.sleep(0.05)
    assert len(paused.batches) == 2


def test_paused_at_the_compact_revision_still_catches_up(store):
    paused = Sink(room=0)
    watcher = watch(store, paused)
    store.put(PutRequest(b"k1", b"a"))  # 2: refused
    store.put(PutRequest(b"k1", b"b"))  # 3
    paused.wait_for(lambda s: s.refusals == 1)
    store.compact(2)  # revision 2 itself is still readable
    paused.make_room(None)
    watcher.resume()
    paused.wait_for(lambda s: len(s.events()) == 2)
    assert [kv(e.kv)[4] for e in paused.events()] == [b"a", b"b"]
    assert not watcher.dead


def test_progress_waits_until_a_paused_watcher_has_caught_up(store):
    paused = Sink(room=0)
    watcher = watch(store, paused)
    store.put(PutRequest(b"k1", b"a"))  # 2: refused
    paused.wait_for(lambda s: s.refusals == 1)
    store.put(PutRequest(b"zz", b"unwatched"))  # 3
    watcher.request_progress()
    time.sleep(0.05)
    assert paused.batches == []  # a paused watcher reports no revision
    paused.make_room(None)
    watcher.resume()
    paused.wait_for(lambda s: len(s.batches) == 2)
    events, progress = paused.batches
    assert [kv(e.kv)[2] for e in events.events] == [2]
    assert (progress.events, progress.revision) == ([], 3)
    assert watcher.synced


def test_cancel_while_paused_stops_everything(store):
    paused = Sink(room=0)
    watcher = watch(store, paused)
    store.put(PutRequest(b"k1", b"a"))
    paused.wait_for(lambda s: s.refusals == 1)
    watcher.cancel()
    paused.make_room(None)
    watcher.resume()
    store.put(PutRequest(b"k1", b"b"))
    time.sleep(0.05)
    assert paused.batches == []
