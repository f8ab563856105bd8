"""Watchers and the delivery of events to them (etcd's watchable_store).

A watcher is either *synced* (it receives each committed batch as the
writer publishes it) or *catching up* (the syncer thread replays its past
revisions from the `key` DB, which is ordered by revision, in a read
transaction that holds up no writer). Lock order: the hub lock is taken
alone; sinks are called under it for synced watchers (they must not block),
which keeps progress notices in order with events.

No gap, no duplicate: `_published` is the last revision delivered to synced
watchers. A catching-up watcher replays up to a `_published` read before its
read transaction starts (so that data is committed), then joins the synced
set only if nothing was published meanwhile; otherwise it replays again.

Bounded memory (etcd's victims, mvcc/watchable_store.go): a sink may refuse
a batch (return False) when its consumer is behind. The watcher is then
*paused*: it leaves the synced set (or stops replaying), remembers the first
revision it has not taken, and waits until its owner calls `resume()`; it
then catches up from the `key` DB like any other, so nothing is lost or
repeated and each revision still comes whole. A paused watcher is not
synced: a progress request waits until it has caught up.
"""

import threading
from collections import deque
from collections.abc import Callable

from k0s_store.backend import Backend
from k0s_store.core import codec, fanout, lmdb_kv
from k0s_store.mvcc.types import (
    EVENT_DELETE,
    EVENT_PUT,
    FILTER_NODELETE,
    FILTER_NOPUT,
    Event,
    WatchBatch,
)

REPLAY_CHUNK_EVENTS = 1000  # events read per replay step (whole revisions)

# A watcher's sink: takes a batch (returns True or None) or refuses it because
# its consumer is behind (returns False; then the watcher pauses until resumed).
# Batches without events (progress, compaction) cannot be refused.
Sink = Callable[[WatchBatch], bool | None]


class Watcher:
    """One watch on [key, end) (end None: one key; b"": every key >= key)."""

    __slots__ = (
        "_hub",
        "dead",
        "end",
        "key",
        "next_rev",
        "paused",
        "prev_kv",
        "progress_wanted",
        "sink",
        "skip",
        "synced",
    )

    def __init__(
        self,
        hub: "WatchHub",
        key: bytes,
        end: bytes | None,
        next_rev: int,
        prev_kv: bool,
        filters: frozenset[int],
        sink: Sink,
    ) -> None:
        self._hub = hub
        self.key, self.end = key, end
        self.next_rev = next_rev  # the next revision this watcher must see
        self.prev_kv = prev_kv
        self.skip = {
            t
            for t, f in ((EVENT_PUT, FILTER_NOPUT), (EVENT_DELETE, FILTER_NODELETE))
            if f in filters
        }
        self.sink = sink
        self.synced = False
        self.paused = False  # its sink refused a batch; waits for resume()
        self.progress_wanted = False  # a progress request came while not synced
        self.dead = False

    def matches(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return key >= self.key and (not self.end or key < self.end)

    def cancel(self) -> None:
        """Stop delivery; no sink call starts after this returns."""
        self._hub.cancel(self)

    def request_progress(self) -> None:
        """Send an empty batch at the synced revision; while catching up or
        paused, send it once the watcher has rejoined the synced set."""
        self._hub.request_progress(self)

    def resume(self) -> None:
        """The sink can take batches again: catch up from the first revision
        it refused (no effect unless paused)."""
        self._hub.resume(self)


class WatchHub:
    """Registers watchers, publishes committed batches, replays the past.

    Args:
        backend: the LMDB environment (replays read the `key` DB).
        revision: the committed revision at start.
        compact_revision: returns the current compact revision.
    """

    def __init__(
        self, backend: Backend, revision: int, compact_revision: Callable[[], int]
    ) -> None:
        self._backend = backend
        self._compact_revision = compact_revision
        self._lock = threading.Condition(threading.Lock())
        self._published = revision
        self._keyed: dict[bytes, set[Watcher]] = {}
        self._ranged: set[Watcher] = set()
        self._catching_up: deque[Watcher] = deque()
        self._live: set[Watcher] = set()  # every watcher not cancelled nor dead, for metrics
        self._stopping = False
        self._syncer = threading.Thread(target=self._sync_loop, name="k0s-store-watch", daemon=True)
        self._syncer.start()

    def watch(
        self,
        key: bytes,
        end: bytes | None,
        start_revision: int,
        prev_kv: bool,
        filters: frozenset[int],
        sink: Sink,
    ) -> Watcher:
        """Register a watcher (see Store.watch)."""
        with self._lock:
            watcher = Watcher(self, key, end, start_revision, prev_kv, filters, sink)
            self._live.add(watcher)
            compact = self._compact_revision()
            if start_revision == 0 or start_revision > self._published:
                watcher.next_rev = max(start_revision, self._published + 1)
                self._join(watcher)
            elif start_revision < compact:
                watcher.dead = True
                self._live.discard(watcher)
                sink(WatchBatch([], self._published, compact))
            else:
                self._catching_up.append(watcher)
                self._lock.notify_all()
            return watcher

    def _join(self, watcher: Watcher) -> None:
        watcher.synced = True
        if watcher.end is None:
            self._keyed.setdefault(watcher.key, set()).add(watcher)
        else:
            self._ranged.add(watcher)
        if watcher.progress_wanted:
            watcher.progress_wanted = False
            watcher.sink(WatchBatch([], self._published))

    def _leave(self, watcher: Watcher) -> None:
        """Take a synced watcher out of the synced set (hub lock held)."""
        watcher.synced = False
        if watcher.end is None:
            group = self._keyed.get(watcher.key)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self._keyed[watcher.key]
        else:
            self._ranged.discard(watcher)

    def cancel(self, watcher: Watcher) -> None:
        with self._lock:
            watcher.dead = True
            self._live.discard(watcher)
            if watcher.synced:
                self._leave(watcher)

    def watcher_counts(self) -> tuple[int, int]:
        """(live watchers, those not synced: catching up or paused), for metrics."""
        with self._lock:
            synced = len(self._ranged) + sum(len(group) for group in self._keyed.values())
            return len(self._live), len(self._live) - synced

    def request_progress(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher.dead:
                return
            if watcher.synced:
                watcher.sink(WatchBatch([], self._published))
            else:
                watcher.progress_wanted = True

    def resume(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher.paused and not watcher.dead:
                watcher.paused = False
                self._catching_up.append(watcher)
                self._lock.notify_all()

    def publish(self, batches: list[tuple[int, list[Event], list[bytes]]], revision: int) -> None:
        """Deliver a committed write batch (writer thread, after commit)."""
        with self._lock:
            first = self._published + 1  # the first revision of this write batch
            self._published = revision
            if not batches or not (self._keyed or self._ranged):
                return
            pending = fanout.route(batches, self._keyed, self._ranged, Event)
            for watcher, events in pending.items():
                if watcher.sink(WatchBatch(events, revision)) is False:
                    self._leave(watcher)
                    watcher.next_rev = max(watcher.next_rev, first)
                    watcher.paused = True

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._syncer.join()

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                while not self._catching_up and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                watcher = self._catching_up.popleft()
                target = self._published
            if watcher.dead:
                continue
            self._replay_step(watcher, target)

    def _replay_step(self, watcher: Watcher, target: int) -> None:
        with self._backend.read() as txn:
            compact = self._compact_revision()
            if watcher.next_rev < compact:
                with self._lock:
                    if not watcher.dead:
                        watcher.dead = True
                        self._live.discard(watcher)
                        watcher.sink(WatchBatch([], target, compact))
                return
            events, reached = self._read_events(txn, watcher, target)
        with self._lock:
            if watcher.dead:
                return
            if events and watcher.sink(WatchBatch(events, reached)) is False:
                watcher.paused = True  # next_rev unchanged: this chunk is read again
                return
            watcher.next_rev = reached + 1
            if reached == self._published:
                self._join(watcher)
            else:
                self._catching_up.append(watcher)

    def _read_events(self, txn, watcher: Watcher, target: int) -> tuple[list[Event], int]:
        """Events for `watcher` from its next revision, up to `target` or
        about REPLAY_CHUNK_EVENTS (whole revisions); and the revision reached."""
        dbs = self._backend.dbs
        cursor = txn.cursor(db=dbs.key)
        events: list[Event] = []
        scanned = last_main = 0
        if not cursor.set_range(codec.rev_key(watcher.next_rev, 0)):
            return events, target
        for rk, kv in cursor.iternext():
            main, _, tombstone = codec.parse_rev_key(rk)
            if main > target:
                return events, target
            if scanned >= REPLAY_CHUNK_EVENTS and main != last_main:
                return events, last_main
            scanned += 1
            last_main = main
            key = codec.decode_kv(kv)[0]
            kind = EVENT_DELETE if tombstone else EVENT_PUT
            if kind in watcher.skip or not watcher.matches(key):
                continue
            if tombstone:
                kv = codec.encode_kv(key, 0, main, 0, b"", 0)
            prev = None
            if watcher.prev_kv:
                prev = lmdb_kv.get_live(txn, dbs.index, dbs.key, dbs.index_history, key, main - 1)
            events.append(Event(kind, kv, prev))
        return events, target
