"""etcd's Watch service: one bidirectional stream carrying many watchers.

Each stream is a `WatchStream`. Everything that happens to it (a client
request, a batch of events from the store, a progress tick) becomes an
item of one queue, handled in order by the one thread that writes the
responses. So the stream's state needs no lock, a watcher's "created"
response always precedes its events, and the store's sink only appends to
the queue: a slow client never blocks the store.

The queue is bounded, like etcd's 128-slot watch channel: once the events
queued on a stream reach `backlog_bytes`, the sink refuses further event
batches and the store pauses those watchers; when the sending thread has
drained the backlog to half the bound, it resumes them and the store
replays what they missed from its history (or answers "compacted" if that
history is gone). A stalled client thus costs about `backlog_bytes` plus one
batch, and still gets every event once, in order.

Semantics are etcd 3.4's (etcdserver/api/v3rpc/watch.go, mvcc/watcher.go)
with the progress fix of 3.4.25 that kube-apiserver relies on from 3.4.31:
- ids: watch_id 0 asks for the next free id (counting from 0); a taken id,
  or a range with key >= range_end, gives a created+canceled response with
  watch_id -1 and the reason.
- an empty key means b"\\0"; range_end b"\\0" means every key >= key.
- start_revision 0 means "from the next revision".
- a compacted start: the created response, then one with compact_revision
  set, canceled, and header revision 0.
- RequestProgress: one response with watch_id -1 once every watcher of the
  stream is synced, at a revision all of them have delivered (the current
  revision when the stream has no watcher, as etcd 3.4.23 answers).
- progress_notify: every interval (plus up to 10% jitter), an empty
  response to each such watcher that sent no events since the last tick.
- fragment: a response larger than the max message size is split into
  several, all but the last with fragment set.
"""

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator

from k0s_store import errors
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.api.header import Header
from k0s_store.api.settings import MIN_PROGRESS_NOTIFY_INTERVAL, Settings
from k0s_store.api.unmarshal_errors import parse
from k0s_store.core import codec
from k0s_store.proto import rpc_pb2

INVALID_WATCH_ID = -1  # clientv3.InvalidWatchID
AUTO_WATCH_ID = 0
ERR_EMPTY_WATCHER_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_WATCH_ID = "mvcc: duplicate watch ID provided on the WatchStream"

# Queue items: (_REQUEST, bytes) | (_BATCH, _Watch, WatchBatch, backlog bytes) | (_CLOSE,)
_REQUEST, _BATCH, _CLOSE = 0, 1, 2

# Event bytes queued on one stream before its watchers are paused.
DEFAULT_BACKLOG_BYTES = 2 * 1024 * 1024
# Counted per queued event besides its key-values: the Event and list slots.
EVENT_OVERHEAD_BYTES = 100


def batch_bytes(batch) -> int:
    """What a batch of events weighs in a stream's backlog (an estimate of its memory)."""
    size = EVENT_OVERHEAD_BYTES * len(batch.events)
    for event in batch.events:
        size += len(event.kv)
        if event.prev_kv is not None:
            size += len(event.prev_kv)
    return size


class WatchService:
    """Opens watch streams over a store; each queues at most about `backlog_bytes` of events."""

    def __init__(
        self,
        store,
        header: Header,
        settings: Settings,
        auth: AuthGuard,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
    ) -> None:
        self.store = store
        self.header = header
        self.settings = settings
        self.auth = auth
        self.backlog_bytes = backlog_bytes

    def open_stream(self, caller: Caller = ANONYMOUS) -> "WatchStream":
        """A new stream of `caller`; the transport feeds it requests and sends its responses.

        Each watch it creates needs READ on its range (checked at creation, as etcd does).
        """

        def refusal(key: bytes, range_end: bytes) -> str:
            if not self.auth.applies(caller):
                return ""
            return self.auth.watch_refusal(caller, key, range_end)

        return WatchStream(
            self.store, self.header, self.settings, self.backlog_bytes, refusal=refusal
        )


def _no_refusal(key: bytes, range_end: bytes) -> str:
    return ""


class _Watch:
    """One watcher of a stream and what the stream remembers about it."""

    __slots__ = ("dead", "fragment", "id", "progress_notify", "progress_owed", "quiet", "watcher")

    def __init__(self, watch_id: int, progress_notify: bool, fragment: bool) -> None:
        self.id = watch_id
        self.progress_notify = progress_notify
        self.fragment = fragment
        self.watcher = None  # the store's Watcher, once registered
        self.quiet = True  # no events sent since the last progress tick
        self.progress_owed = False  # a tick asked the store for a progress batch
        self.dead = False  # its start revision was compacted


class WatchStream:
    """The server side of one Watch stream.

    `submit` (client requests) and `close` may be called from any thread.
    A transport takes the responses one of two ways, from one thread at a time:
    - pull: iterate `responses()` on a thread of the stream's own (blocks);
    - push: `on_queued(wake)` registers a callback run (on any thread, possibly
      under the store's locks, so it must only schedule) whenever work is
      queued; the transport then calls `poll()` from a thread of its own,
      which handles what is queued without blocking, and calls it again at
      `next_tick` for the periodic progress. A transport that cannot send
      more just stops polling: the backlog bound then pauses the watchers.
    `refusal(key, range_end)` says why a new watch is not allowed ("": it is).
    """

    def __init__(
        self,
        store,
        header: Header,
        settings: Settings,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        refusal: Callable[[bytes, bytes], str] = _no_refusal,
    ) -> None:
        self.store = store
        self.refusal = refusal
        self.header = header
        self.max_message_bytes = settings.max_message_bytes
        self.interval = max(settings.progress_notify_interval, MIN_PROGRESS_NOTIFY_INTERVAL)
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _watches and _closed against close()
        self._watches: dict[int, _Watch] = {}
        self._closed = False
        self._next_id = 0
        # Stream-wide progress request in flight: watch id -> synced revision (None: not yet).
        self._all_progress: dict[int, int | None] | None = None
        # Events queued and not yet sent, and the watches refused meanwhile; the
        # store's threads add (in sinks, under the hub's lock), the sending
        # thread drains and calls resume() without holding this lock.
        self.backlog_bytes = backlog_bytes
        self._backlog_lock = threading.Lock()
        self._backlog = 0
        self._refused: list[_Watch] = []
        self._wake = None  # push mode: called after something is queued
        self.next_tick = time.monotonic() + self._jittered_interval()

    # -- called from other threads -------------------------------------------------

    def on_queued(self, wake) -> None:
        """Push mode: call `wake()` whenever a request, batch or close is queued."""
        self._wake = wake

    def _put(self, item: tuple) -> None:
        self._items.put(item)
        if self._wake is not None:
            self._wake()

    def submit(self, request: bytes) -> None:
        """Queue a marshalled WatchRequest from the client."""
        self._put((_REQUEST, request))

    def close(self) -> None:
        """End the stream and cancel its watchers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._watches.values())
            self._watches.clear()
        for w in watches:
            if w.watcher is not None:
                w.watcher.cancel()
        self._put((_CLOSE,))

    # -- the sending thread --------------------------------------------------------

    def responses(self) -> Iterator[bytes]:
        """Pull mode: marshalled WatchResponses, in order, until the stream is closed."""
        while not self._closed:
            try:
                item = self._items.get(timeout=max(0.0, self.next_tick - time.monotonic()))
            except queue.Empty:
                self._tick_if_due()
                continue
            if item[0] == _CLOSE:
                return
            if item[0] == _REQUEST:
                yield from self._handle_request(item[1])
            else:
                yield from self._handle_batch(item[1], item[2])
                if item[3]:
                    self._drained(item[3])

    def poll(self) -> list[bytes]:
        """Push mode: handle what is queued (and a due progress tick) without
        blocking; the responses, in order (none once the stream is closed)."""
        out: list[bytes] = []
        self._tick_if_due()
        while not self._closed:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                break
            if item[0] == _CLOSE:
                break
            if item[0] == _REQUEST:
                out += self._handle_request(item[1])
            else:
                out += self._handle_batch(item[1], item[2])
                if item[3]:
                    self._drained(item[3])
        return out

    def _tick_if_due(self) -> None:
        if time.monotonic() >= self.next_tick:
            self._tick()
            self.next_tick = time.monotonic() + self._jittered_interval()

    def _jittered_interval(self) -> float:
        return self.interval + random.uniform(0, self.interval / 10)

    def _handle_request(self, data: bytes) -> list[bytes]:
        req = parse(rpc_pb2.WatchRequest, data, refused=_unmarshal_error)
        kind = req.WhichOneof("request_union")
        if kind == "create_request":
            return self._create(req.create_request)
        if kind == "cancel_request":
            return self._cancel(req.cancel_request.watch_id)
        if kind == "progress_request":
            self._request_progress_all()
            return self._all_progress_response()
        return []  # etcd ignores an empty request

    def _create(self, creq: rpc_pb2.WatchCreateRequest) -> list[bytes]:
        key = creq.key or b"\0"
        range_end = creq.range_end
        revision = self.store.revision
        error = self.refusal(key, range_end)
        if not error:
            watch_id, error = self._allocate_id(key, range_end, creq.watch_id)
        if error:
            return [self._response(revision, INVALID_WATCH_ID, True, True, reason=error)]
        w = _Watch(watch_id, creq.progress_notify, creq.fragment)
        with self._lock:
            if self._closed:
                return []
            self._watches[watch_id] = w
        created = self._response(revision, watch_id, created=True)

        def sink(batch) -> bool:
            return self._accept(w, batch)

        w.watcher = self.store.watch(
            key,
            range_end,
            creq.start_revision or revision + 1,
            prev_kv=creq.prev_kv,
            filters=frozenset(creq.filters),
            sink=sink,
        )
        if self._all_progress is not None:
            # A stream-wide progress request is pending: its answer promises
            # every watcher's events up to its revision, this one's too.
            self._all_progress[watch_id] = None
            w.watcher.request_progress()
        return [created]

    def _allocate_id(self, key: bytes, range_end: bytes, wanted: int) -> tuple[int, str]:
        if range_end not in (b"", b"\0") and key >= range_end:
            return INVALID_WATCH_ID, ERR_EMPTY_WATCHER_RANGE
        if wanted != AUTO_WATCH_ID:
            if wanted in self._watches:
                return INVALID_WATCH_ID, ERR_DUPLICATE_WATCH_ID
            return wanted, ""
        while self._next_id in self._watches:
            self._next_id += 1
        self._next_id += 1
        return self._next_id - 1, ""

    def _cancel(self, watch_id: int) -> list[bytes]:
        with self._lock:
            w = self._watches.pop(watch_id, None)
        if w is None:
            return []  # etcd: unknown watcher, no response
        w.watcher.cancel()
        out = [self._response(self.store.revision, watch_id, canceled=True)]
        if self._all_progress is not None:
            self._all_progress.pop(watch_id, None)
            out += self._all_progress_response()
        return out

    def _accept(self, w: _Watch, batch) -> bool:
        """The store's sink (store threads): queue the batch, or refuse events
        while the backlog is full (an empty backlog takes any batch, however big)."""
        size = batch_bytes(batch) if batch.events else 0
        if size:
            with self._backlog_lock:
                if self._backlog and self._backlog >= self.backlog_bytes:
                    self._refused.append(w)
                    return False
                self._backlog += size
        self._put((_BATCH, w, batch, size))
        return True

    def _drained(self, size: int) -> None:
        """A queued batch is sent: resume the refused watchers once half the bound is free."""
        with self._backlog_lock:
            self._backlog -= size
            if not self._refused or self._backlog > self.backlog_bytes // 2:
                return
            refused, self._refused = self._refused, []
        for w in refused:
            if self._watches.get(w.id) is w:
                w.watcher.resume()

    def _handle_batch(self, w: _Watch, batch) -> list[bytes]:
        if self._watches.get(w.id) is not w:
            return []  # canceled since the batch was queued
        if batch.compact_revision:
            w.dead = True
            if self._all_progress is not None:
                self._all_progress.pop(w.id, None)
            return [
                self._response(0, w.id, canceled=True, compact_revision=batch.compact_revision),
                *self._all_progress_response(),
            ]
        if not batch.events:
            return self._progress_batch(w, batch.revision)
        events = [codec.encode_event(e.type, e.kv, e.prev_kv) for e in batch.events]
        out = self._event_responses(w, batch.revision, events)
        w.quiet = False
        if self._all_progress is not None:
            # Deferred stream-wide progress: ask the watchers not yet synced again.
            self._request_progress_all()
        return out

    def _progress_batch(self, w: _Watch, revision: int) -> list[bytes]:
        if self._all_progress is not None and self._all_progress.get(w.id, 0) is None:
            self._all_progress[w.id] = revision
            return self._all_progress_response()
        if w.progress_owed:
            w.progress_owed = False
            return [self._response(revision, w.id)]
        return []

    def _request_progress_all(self) -> None:
        if self._all_progress is None:
            live = [w for w in self._watches.values() if not w.dead]
            self._all_progress = dict.fromkeys(w.id for w in live)
        for watch_id, revision in self._all_progress.items():
            w = self._watches.get(watch_id)
            if revision is None and w is not None:
                w.watcher.request_progress()

    def _all_progress_response(self) -> list[bytes]:
        """The stream-wide progress response, once every watcher asked is synced."""
        pending = self._all_progress
        if pending is None or None in pending.values():
            return []
        self._all_progress = None
        revision = min(pending.values(), default=self.store.revision)
        return [self._response(revision, INVALID_WATCH_ID)]

    def _tick(self) -> None:
        for w in self._watches.values():
            if not w.progress_notify or w.dead:
                continue
            if w.quiet:
                w.progress_owed = True
                w.watcher.request_progress()
            w.quiet = True

    def _event_responses(self, w: _Watch, revision: int, events: list[bytes]) -> list[bytes]:
        header = self.header.encode(revision)
        whole = codec.encode_watch_response(header, w.id, False, False, 0, "", False, events)
        if not w.fragment or len(events) < 2 or len(whole) < self.max_message_bytes:
            return [whole]
        base = len(codec.encode_watch_response(header, w.id, False, False, 0, "", True, []))
        out: list[bytes] = []
        chunk: list[bytes] = []
        size = base
        for event in events:
            event_size = codec.encoded_len_field(len(event))
            if chunk and size + event_size >= self.max_message_bytes:
                out.append(
                    codec.encode_watch_response(header, w.id, False, False, 0, "", True, chunk)
                )
                chunk, size = [], base
            chunk.append(event)
            size += event_size
        out.append(codec.encode_watch_response(header, w.id, False, False, 0, "", False, chunk))
        return out

    def _response(
        self,
        revision: int,
        watch_id: int,
        created: bool = False,
        canceled: bool = False,
        compact_revision: int = 0,
        reason: str = "",
    ) -> bytes:
        header = self.header.encode(revision)
        return codec.encode_watch_response(
            header, watch_id, created, canceled, compact_revision, reason, False, []
        )


def _unmarshal_error(detail: str) -> errors.EtcdError:
    """grpc-go's error for a stream message it cannot unmarshal."""
    return errors.MalformedRequestError(f"grpc: failed to unmarshal the received message {detail}")
