"""etcd's gRPC API on the native server core (`k0s_store._ext.h2server`).

The core's event loop does HTTP/2, TLS and gRPC framing without the GIL and
hands whole calls to this module's worker threads, which call the handlers
of the transport-neutral table (`k0s_store.api.methods`) the way their
`Shape` says and queue the answers back to the loop.

Threads:
- the loop (one, in C, GIL released);
- workers: a pool that grows, up to `max_workers`, when a request that may
  wait (a cold RPC on the writer, a snapshot) finds every worker busy (see
  `_WorkerPool`); a worker takes up to `EVENTS_PER_TURN` quick events
  (`_quick`) at once, an event that may block alone;
- the events of one streaming call (Watch, LeaseKeepAlive) are handled one
  at a time, in order (`_Call.post`), by whichever worker is free;
- a Watch session has no thread: it is driven push-style (see
  `WatchStream`): when it has work queued it asks for a turn (`wake`, a WAKE
  event) and a worker polls it; `_Ticker` (one thread) wakes sessions for
  their periodic progress, and streaming calls when their grpc-timeout runs
  out (etcd then ends them with "context deadline exceeded");
- write back-pressure: a session that has handed the loop
  `DRAIN_HIGH_WATER` bytes is not polled again until the loop reports them
  nearly sent (DRAINED), so a client that stops reading leaves the session's
  work queued and its backlog bound pauses the watchers; a server-streaming
  call's worker waits for DRAINED the same way (`_Flow`);
- `CertificateWatcher`: reloads changed TLS files for new connections.

Plain HTTP requests on a client URL (HTTP/1, or an HTTP/2 GET that is not
gRPC), as etcd serves /health and /metrics there, go to the `http` handler.
"""

# Hints stay unevaluated: closures made per request would build them every call.
from __future__ import annotations

import contextlib
import heapq
import logging
import os
import resource
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from k0s_store._ext import h2server
from k0s_store.api.caller import ANONYMOUS
from k0s_store.api.methods import (
    Caller,
    Method,
    Shape,
    build_services,
    method_table,
    unknown_method_text,
)
from k0s_store.api.rpc_stats import MethodStats, RpcStats
from k0s_store.api.settings import Settings
from k0s_store.api.unmarshal_errors import parse
from k0s_store.errors import EtcdError, StoppedError
from k0s_store.transport.certificates import CertificateWatcher
from k0s_store.transport.listeners import Listener, TLSFiles
from k0s_store.transport.status import (
    CANCELLED,
    OK,
    UNIMPLEMENTED,
    UNKNOWN,
    encode_message,
    status_code,
)

log = logging.getLogger("k0s_store.native")

MIN_WORKERS = 8
# Quick events (`_quick`) a worker takes at once: fewer thread switches and
# GIL hand-offs under load, while a turn stays short.
EVENTS_PER_TURN = 8
DRAIN_HIGH_WATER = 1024 * 1024
DEFAULT_MAX_WORKERS = 512
LISTEN_BACKLOG = 4096
_NOT_FOUND = (404, (("Content-Type", "text/plain; charset=utf-8"),), b"404 page not found\n")
_BAD_REQUEST = (400, (("Content-Type", "text/plain; charset=utf-8"),), b"400 Bad Request")

HttpHandle = Callable[[str, str], tuple[int, tuple[tuple[str, str], ...], bytes]]
"""(method, target) -> (status, headers, body): `k0s_store.ops.endpoints.OpsEndpoints.handle`."""
STREAMS_END_WAIT_S = 0.5  # at shutdown, for ended streams to reach their clients
DEADLINE_EXCEEDED = status_code("DEADLINE_EXCEEDED")
DEADLINE_EXCEEDED_TEXT = "context deadline exceeded"  # grpc-go's, from Go's context


class _DeadlineExceeded(Exception):
    """A call's grpc-timeout passed before it was run."""


_SHAPES = {
    Shape.UNARY: h2server.UNARY,
    Shape.SERVER_STREAM: h2server.SERVER_STREAM,
    Shape.EACH_MESSAGE: h2server.EACH_MESSAGE,
    Shape.SESSION: h2server.SESSION,
}


def _caller(token: str | None, cert_cn: str | None) -> Caller:
    """Who is calling; one shared `ANONYMOUS` for the many calls with neither."""
    if token is None and cert_cn is None:
        return ANONYMOUS
    return Caller(token=token, cert_cn=cert_cn)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class _Flow:
    """Write back-pressure of one call: the sender waits once it has queued
    `DRAIN_HIGH_WATER` bytes until the loop reports them nearly sent."""

    __slots__ = ("drained", "gone", "queued")

    def __init__(self) -> None:
        self.queued = 0
        self.drained = threading.Event()
        self.gone = False  # the call went away (or the server stopped) while we waited

    def sent(self, dispatcher: _Dispatcher, key, size: int) -> bool:
        """Count `size` bytes handed to the loop, waiting for them to drain past the
        high-water mark; False once the call is gone: send nothing more."""
        self.queued += size
        if self.queued < DRAIN_HIGH_WATER:
            return True
        self.drained.clear()
        with dispatcher.lock:
            if dispatcher.stopped:  # no loop left to report DRAINED
                return False
            dispatcher.flows[key] = self
        dispatcher.core.request_drain(*key)
        self.drained.wait()  # set by DRAINED, GONE, or the shutdown (`release_flows`)
        with dispatcher.lock:
            dispatcher.flows.pop(key, None)
        self.queued = 0
        return not self.gone


class _Call:
    """A streaming call's state. Its steps run one at a time: the client's
    (open, messages, half-close, close) in the order the loop numbered them,
    however the workers that took them race; polls (WAKE, DRAINED) between them."""

    __slots__ = (
        "caller",
        "congested",
        "deadline",
        "ended",
        "extra",
        "lock",
        "method",
        "next_seq",
        "ordered",
        "queued",
        "running",
        "session",
        "started",
        "stats",
        "tick_at",
        "woken",
    )

    def __init__(
        self, method: Method, caller: Caller, stats: MethodStats, deadline: float | None
    ) -> None:
        self.method = method
        self.caller = caller
        self.stats = stats
        self.deadline = deadline  # time.monotonic() when its grpc-timeout runs out
        self.started = stats.started()
        self.ended = False  # its status is sent (or the client went away)
        self.session = None
        self.lock = threading.Lock()
        self.ordered: dict[int, object] = {}  # seq -> step, until its turn
        self.next_seq = 0
        self.extra: deque = deque()  # polls, in any order
        self.running = False
        self.woken = False  # a WAKE is queued for this call
        self.congested = False  # waiting for DRAINED before polling again
        self.queued = 0  # bytes handed to the loop since the last DRAINED
        self.tick_at = 0.0  # when the ticker will wake the session next

    def post(self, step, seq: int | None = None) -> None:
        """Run `step()` in its turn (`seq`: the loop's number; None: a poll), here
        or on the worker already running this call's steps."""
        with self.lock:
            if seq is None:
                self.extra.append(step)
            else:
                self.ordered[seq] = step
            if self.running:
                return
            self.running = True
        while True:
            with self.lock:
                step = self.ordered.pop(self.next_seq, None)
                if step is not None:
                    self.next_seq += 1
                elif self.extra:
                    step = self.extra.popleft()
                else:
                    self.running = False
                    return
            step()


class _Ticker:
    """One thread waking sessions when their periodic progress is due."""

    def __init__(self, wake) -> None:
        self.wake = wake
        self.due: list[tuple[float, tuple]] = []
        self.changed = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="watch-ticker", daemon=True)

    def add(self, key: tuple, at: float) -> None:
        with self.changed:
            heapq.heappush(self.due, (at, key))
            self.changed.notify()

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify()

    def _run(self) -> None:
        with self.changed:
            while not self.stopped:
                now = time.monotonic()
                if self.due and self.due[0][0] <= now:
                    _, key = heapq.heappop(self.due)
                    self.wake(key)
                    continue
                self.changed.wait(self.due[0][0] - now if self.due else None)


class _Dispatcher:
    """Turns the core's events into handler calls and their answers into replies."""

    def __init__(
        self,
        core: h2server.NativeServer,
        methods: list[Method],
        rpc_stats: RpcStats,
        http: HttpHandle | None,
    ) -> None:
        self.core = core
        self.http = http
        self.methods = methods
        self.table = {m.path: m for m in methods}
        self.rpc_stats = rpc_stats
        served = rpc_stats.serve(self.table)
        self.stats = [served[m.path] for m in methods]  # by the core's method index
        # Requests that may hold their worker waiting (see _WorkerPool), by index.
        self.waiting = [not (_quick(m) or m.computes_only) for m in methods]
        self.calls: dict[tuple[int, int, int], _Call] = {}
        self.flows: dict[tuple[int, int, int], _Flow] = {}  # senders waiting for DRAINED
        self.lock = threading.Lock()
        self.idle_changed = threading.Condition(self.lock)
        self.in_flight = 0  # unary and server-streaming calls being answered
        self.stopped = False  # the loop is gone: no DRAINED will come
        self.ticker = _Ticker(self._wake_key)

    # -- events ------------------------------------------------------------------

    def handle(self, event) -> None:
        kind, fd, gen, sid, index, data, token, cert_cn, deadline_us, seq = event
        key = (fd, gen, sid)
        if kind == h2server.HTTP:
            self._http(key, data)
            return
        if kind == h2server.UNKNOWN:
            path = data.decode("utf-8", "replace")
            self._end(key, UNIMPLEMENTED, unknown_method_text(path, self.table))
            return
        if kind in (h2server.DRAINED, h2server.GONE):
            flow = self.flows.get(key)
            if flow is not None:
                flow.gone = kind == h2server.GONE
                flow.drained.set()
            if kind == h2server.GONE:
                return  # a streaming call's own CLOSED follows
        if kind in (h2server.DRAINED, h2server.WAKE):
            call = self.calls.get(key)
            if call is not None:
                call.post(lambda: self._poll(key, call, drained=kind == h2server.DRAINED))
            return
        method = self.methods[index]
        if kind == h2server.REQUEST:
            self.rpc_stats.received(len(data))
            if method.shape in (Shape.UNARY, Shape.SERVER_STREAM):
                caller = _caller(token, cert_cn)
                deadline = deadline_us / 1e6 if deadline_us >= 0 else None
                if method.submit is not None:
                    self._submit(key, method, self.stats[index], data, caller, deadline)
                    return
                self._unary(key, method, self.stats[index], data, caller, deadline)
                return
        # A streaming call: its first event to reach a worker (not always OPEN)
        # makes its state; CLOSED, in its turn, removes it.
        with self.lock:
            call = self.calls.get(key)
            if call is None:
                caller = Caller(token=token, cert_cn=cert_cn)
                deadline = deadline_us / 1e6 if deadline_us >= 0 else None
                call = self.calls[key] = _Call(method, caller, self.stats[index], deadline)
                if deadline is not None:
                    self.ticker.add(key, deadline)  # its poll then ends it
        if kind == h2server.OPEN:
            call.post(lambda: self._open(key, call), seq)
        elif kind == h2server.REQUEST:
            call.post(lambda: self._message(key, call, data), seq)
        elif kind == h2server.HALF_CLOSE:
            call.post(lambda: self._half_close(key, call), seq)
        else:
            call.post(lambda: self._closed(key, call), seq)

    def _http(self, key, request_line: bytes) -> None:
        """Answer a plain HTTP request (its request line: method, target, version)."""
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[1].startswith("/"):
            status, headers, body = _BAD_REQUEST
        elif self.http is None:
            status, headers, body = _NOT_FOUND
        else:
            try:
                status, headers, body = self.http(parts[0], parts[1])
            except Exception:  # a bug: the client gets a 500, the log the trace
                log.exception("HTTP %s %s failed", parts[0], parts[1])
                status, headers, body = 500, (), b""
        self.core.send_http(*key, status, headers, body)

    # -- unary and server-streaming calls ------------------------------------------

    def _unary(
        self,
        key,
        method: Method,
        stats: MethodStats,
        data: bytes,
        caller: Caller,
        deadline: float | None,
    ) -> None:
        """Answer a unary or server-streaming call. Past its deadline (grpc-timeout,
        on time.monotonic()'s clock) it ends with grpc-go's DEADLINE_EXCEEDED: a call
        that waited that long for a worker is not started, a stream stops between
        messages (a started unary handler runs to its end, as etcd's apply does)."""
        with self.lock:
            self.in_flight += 1
        started, response, code, error = stats.started(), None, OK, ""
        try:
            if _expired(deadline):
                code, error = DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_TEXT
                self._end(key, code, error)
                return
            request = parse(method.request_type, data) if method.request_type else data
            result = self._invoke(method, request, caller)
            if method.shape is Shape.UNARY:
                response = self._encode(method, result)
                self._send(key, response, end=True)
            else:
                flow = _Flow()
                for response in result:
                    if _expired(deadline):
                        code, error = DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_TEXT
                        self._end(key, code, error)
                        return
                    message = self._encode(method, response)
                    self._send(key, message)
                    if not flow.sent(self, key, len(message)):
                        code = CANCELLED  # the client went away, or the server stopped
                        return
                self._end(key, OK, "")
        except EtcdError as e:
            code, error = status_code(e.code), e.message
            self._end(key, code, error)
        except Exception as e:  # a bug: the client gets grpc's UNKNOWN, the log the trace
            log.exception("%s failed", method.path)
            code, error = UNKNOWN, f"Exception calling application: {e}"
            self._end(key, code, error)
        finally:
            stats.finished(code, started, data, response, error)
            with self.lock:
                self.in_flight -= 1
                if not self.in_flight:  # what a shutdown waits for
                    self.idle_changed.notify_all()

    def _submit(
        self,
        key,
        method: Method,
        stats: MethodStats,
        data: bytes,
        caller: Caller,
        deadline: float | None,
    ) -> None:
        """A unary call answered later through `method.submit` (a write: by the
        store's committing thread once its group commit is durable), so no worker waits
        on it. Past its deadline before it starts, it is not run (as `_unary`)."""
        with self.lock:
            self.in_flight += 1
        started = stats.started()

        def reply(response: bytes | None, error: BaseException | None) -> None:
            code, text = OK, ""
            if error is None:
                self._send(key, response, end=True)
            elif isinstance(error, EtcdError):
                code, text = status_code(error.code), error.message
            elif isinstance(error, _DeadlineExceeded):
                code, text = DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_TEXT
            else:  # a bug: the client gets grpc's UNKNOWN, the log the trace
                log.error("%s failed", method.path, exc_info=error)
                code, text = UNKNOWN, f"Exception calling application: {error}"
            if code != OK:
                self._end(key, code, text)
            stats.finished(code, started, data, response, text)
            with self.lock:
                self.in_flight -= 1
                if not self.in_flight:  # what a shutdown waits for
                    self.idle_changed.notify_all()

        try:
            if _expired(deadline):
                raise _DeadlineExceeded()
            method.submit(data, caller, reply)
        except Exception as e:
            reply(None, e)

    @staticmethod
    def _invoke(method: Method, request, caller: Caller):
        if method.wants_caller:
            return method.handler(request, caller=caller)
        return method.handler(request)

    @staticmethod
    def _encode(method: Method, response) -> bytes:
        return response.SerializeToString() if method.response_type else response

    # -- streaming calls (steps run by _Call.post) -----------------------------------

    def _open(self, key, call: _Call) -> None:
        if call.method.shape is not Shape.SESSION or self._over(key, call):
            return
        method = call.method
        try:
            session = (
                method.handler(caller=call.caller) if method.wants_caller else method.handler()
            )
        except EtcdError as e:
            self._end_call(key, call, status_code(e.code), e.message)
            return
        call.session = session
        session.on_queued(lambda: self._wake(key, call))
        self._poll(key, call)

    def _wake_key(self, key) -> None:
        call = self.calls.get(key)
        if call is not None:
            self._wake(key, call)

    def _wake(self, key, call: _Call) -> None:
        """Ask for a turn of the session on a worker (any thread; never runs it here)."""
        with call.lock:
            if call.woken:
                return
            call.woken = True
        self.core.wake(*key)

    def _poll(self, key, call: _Call, drained: bool = False) -> None:
        """Send what the session has ready, unless the client is not reading."""
        with call.lock:
            call.woken = False
        if self._over(key, call):
            return
        if drained:
            call.congested = False
            call.queued = 0
        session = call.session
        if session is None or call.congested:
            return
        try:
            responses = session.poll()
        except EtcdError as e:
            session.close()
            self._end_call(key, call, status_code(e.code), e.message)
            return
        for response in responses:
            self._send(key, response)
            call.queued += len(response)
        if call.queued >= DRAIN_HIGH_WATER:
            call.congested = True
            self.core.request_drain(*key)
        if session.next_tick != call.tick_at:
            call.tick_at = session.next_tick
            self.ticker.add(key, session.next_tick)

    def _message(self, key, call: _Call, data: bytes) -> None:
        if self._over(key, call):
            return
        if call.session is not None:
            with call.lock:
                call.woken = True  # polled right here: no WAKE needed
            call.session.submit(data)
            self._poll(key, call)
            return
        if call.method.shape is not Shape.EACH_MESSAGE:
            return
        try:
            request = parse(call.method.request_type, data) if call.method.request_type else data
            response = self._invoke(call.method, request, call.caller)
            self._send(key, self._encode(call.method, response))
        except EtcdError as e:
            self._end_call(key, call, status_code(e.code), e.message)

    def _over(self, key, call: _Call) -> bool:
        """True if the call has ended, or ends now because its grpc-timeout ran
        out (etcd's status then races between DEADLINE_EXCEEDED and UNKNOWN,
        always with Go's "context deadline exceeded")."""
        if call.ended:
            return True
        if not _expired(call.deadline):
            return False
        if call.session is not None:
            call.session.close()
        self._end_call(key, call, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_TEXT)
        return True

    def _half_close(self, key, call: _Call) -> None:
        # A Watch stays open when the client half-closes, as in etcd; an
        # each-message call is over once its last request is answered.
        if call.method.shape is Shape.EACH_MESSAGE:
            self._end_call(key, call, OK, "")

    def _closed(self, key, call: _Call) -> None:
        with self.lock:
            self.calls.pop(key, None)
            self.idle_changed.notify_all()
        if not call.ended:  # the client (or a shutdown) ended it: grpc's Canceled
            call.ended = True
            call.stats.finished(CANCELLED, call.started)
        if call.session is not None:
            call.session.close()

    def release_flows(self) -> None:
        """The loop has exited: wake every sender waiting for DRAINED, as if its
        call were gone (its worker then lets go of what it reads)."""
        with self.lock:
            self.stopped = True
            flows = list(self.flows.values())
        for flow in flows:
            flow.gone = True
            flow.drained.set()

    # -- replies ---------------------------------------------------------------------

    def _send(self, key, message: bytes, end: bool = False) -> None:
        self.rpc_stats.sent(len(message))
        self.core.send(*key, message, end)

    def end_streams(self, error: EtcdError) -> None:
        """End every open streaming call with `error`'s status (a shutdown: clients
        retry elsewhere at once instead of waiting for the connection to close)."""
        with self.lock:
            calls = list(self.calls.items())
        for key, call in calls:
            call.post(lambda key=key, call=call: self._stop(key, call, error))

    def _stop(self, key, call: _Call, error: EtcdError) -> None:
        if call.session is not None:
            call.session.close()
        self._end_call(key, call, status_code(error.code), error.message)

    def _end_call(self, key, call: _Call, code: int, text: str) -> None:
        """End a streaming call with a status, counted once."""
        if not call.ended:
            call.ended = True
            call.stats.finished(code, call.started)
        self._end(key, code, text)

    def _end(self, key, code: int, text: str) -> None:
        self.core.send(*key, None, True, code, encode_message(text))


class _WorkerPool:
    """Threads taking the core's events. One more starts when a worker takes a
    request that may wait (a cold RPC on the writer, a snapshot on its client)
    and none is idle, so waiting calls never leave the quick ones unserved.
    Only then: work that just computes gains nothing from more threads (they
    share the GIL), and a large pool turns every wake-up into a fight for it
    (at 100 clients of Range, ~185 threads halved the throughput)."""

    def __init__(
        self,
        dispatcher: _Dispatcher,
        max_workers: int,
        writes_held: Callable[[], contextlib.AbstractContextManager],
    ) -> None:
        self.dispatcher = dispatcher
        self.max_workers = max_workers
        self.writes_held = writes_held  # the store's: a turn's writes commit together
        self.lock = threading.Lock()
        self.idle = 0
        self.threads: list[threading.Thread] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="rpc-worker", daemon=True)
        self.dispatcher.core.add_worker()
        with self.lock:
            self.idle += 1
            self.threads.append(thread)
        thread.start()

    def _work(self) -> None:
        core = self.dispatcher.core
        while True:
            events = core.next_events(EVENTS_PER_TURN)
            if not events:
                return
            first = events[0]
            may_wait = first[0] == h2server.REQUEST and self.dispatcher.waiting[first[4]]
            with self.lock:
                self.idle -= 1
                grow = may_wait and self.idle == 0 and len(self.threads) < self.max_workers
            if grow:
                self._spawn()
            with self.writes_held():
                for event in events:
                    self.serve(event)
            with self.lock:
                self.idle += 1

    def serve(self, event) -> None:
        """Handle one event; also the loop's inline turn (h2server's `run`)."""
        try:
            self.dispatcher.handle(event)
        except Exception:
            log.exception("dispatching an event failed")

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def _bind(listener: Listener) -> list[socket.socket]:
    """Listening non-blocking sockets for a listener (every address of its host)."""
    if listener.is_unix:
        path = listener.address[len("unix:") :]
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        socks = [sock]
    else:
        host, _, port = listener.address.rpartition(":")
        host = host.strip("[]")
        infos = socket.getaddrinfo(
            host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        socks, bound_port = [], int(port)
        for family, _, _, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], bound_port, *address[2:]))
            bound_port = sock.getsockname()[1]  # port 0: every address gets the first's port
            socks.append(sock)
    for sock in socks:
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    return socks


class NativeServer:
    """A running native server; `stop(grace)` as grpc.Server's (returns an Event)."""

    def __init__(self, core, pool: _WorkerPool, sockets, certificates) -> None:
        self.core = core
        self.pool = pool
        self.sockets = sockets
        self.certificates = certificates
        self.loop_thread = threading.Thread(
            target=core.run, args=(pool.serve,), name="h2-loop", daemon=True
        )
        self._stopped = threading.Event()
        self._stopping = False

    def stop(self, grace: float | None) -> threading.Event:
        """Stop accepting, GOAWAY, end open streams with etcd's "server stopped"
        (UNAVAILABLE), let unary calls in flight finish (up to `grace` seconds),
        then close every connection and the loop."""
        if not self._stopping:
            self._stopping = True
            threading.Thread(target=self._shutdown, args=(grace or 0.0,), daemon=True).start()
        return self._stopped

    def _shutdown(self, grace: float) -> None:
        if self.certificates is not None:
            self.certificates.stop()
        self.pool.dispatcher.ticker.stop()
        dispatcher = self.pool.dispatcher
        # Streams end before the GOAWAY goes out (nghttp2 sends it ahead of
        # stream frames): a client may take frames after it as a protocol
        # error (python h2 does), though HTTP/2 allows them.
        dispatcher.end_streams(StoppedError())
        deadline = time.monotonic() + STREAMS_END_WAIT_S
        with dispatcher.lock:
            while dispatcher.calls and time.monotonic() < deadline:
                dispatcher.idle_changed.wait(max(0.0, deadline - time.monotonic()))
        self.core.goaway()
        deadline = time.monotonic() + grace
        with dispatcher.lock:
            while dispatcher.in_flight and time.monotonic() < deadline:
                dispatcher.idle_changed.wait(max(0.0, deadline - time.monotonic()))
        self.core.close_connections()
        self.core.exit()
        self.loop_thread.join()
        dispatcher.release_flows()
        self.pool.join(max(1.0, deadline - time.monotonic()))
        for sock in self.sockets:
            if sock.family == socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    os.unlink(sock.getsockname())
            sock.close()
        self._stopped.set()


class BoundServer(NamedTuple):
    """A started server and the address each listener got (ports resolved)."""

    server: NativeServer
    addresses: list[tuple[Listener, str]]

    def shutdown(self, grace: float) -> None:
        """Stop accepting, GOAWAY, give calls in flight up to `grace` seconds, then
        close every connection (open streams end), and return."""
        self.server.stop(grace).wait()


def start_server(
    store,
    settings: Settings,
    listeners: list[Listener],
    tls: TLSFiles,
    max_workers: int = DEFAULT_MAX_WORKERS,
    rpc_stats: RpcStats | None = None,
    http: HttpHandle | None = None,
) -> BoundServer:
    """Serve etcd's API over `store` on every listener and start the server.

    A TCP port 0 is replaced by the port the system picked. Every RPC is
    reported to `rpc_stats` (a fresh one if None). Plain HTTP requests get
    `http`'s answer (404 without one).
    """
    _raise_fd_limit()
    methods = list(method_table(build_services(store, settings)).values())
    core = h2server.NativeServer(
        [(m.path, _SHAPES[m.shape], _quick(m), m.computes_only) for m in methods],
        settings.max_message_bytes,
    )
    certificates = CertificateWatcher(tls, core) if any(x.secure for x in listeners) else None
    sockets, addresses = [], []
    for listener in listeners:
        bound = _bind(listener)
        sockets += bound
        for sock in bound:
            index = core.add_listener(
                sock.fileno(), certificates.context if listener.secure else None
            )
            if listener.secure:
                certificates.serve(index)
        addresses.append((listener, _resolved(listener, bound[0])))
    dispatcher = _Dispatcher(core, methods, rpc_stats or RpcStats(), http)
    pool = _WorkerPool(dispatcher, max_workers, store.writes_held)
    server = NativeServer(core, pool, sockets, certificates)
    server.loop_thread.start()
    pool.dispatcher.ticker.thread.start()
    pool.start(MIN_WORKERS)
    if certificates is not None:
        certificates.start()
    return BoundServer(server, addresses)


def _quick(method: Method) -> bool:
    """True if the method's requests do not hold up a worker: a write is queued
    to the writer (`submit`; run in place only when the writer is idle, one
    commit), a stream's messages go to its call (LeaseKeepAlive's renewal is
    in memory)."""
    return method.submit is not None or method.shape in (Shape.SESSION, Shape.EACH_MESSAGE)


def _raise_fd_limit() -> None:
    """Every client connection is a descriptor: allow as many as the hard limit
    (the Go runtime does the same for etcd)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _resolved(listener: Listener, sock: socket.socket) -> str:
    if listener.is_unix:
        return listener.address
    host = listener.address.rsplit(":", 1)[0]
    return f"{host}:{sock.getsockname()[1]}"
