# cython: language_level=3
"""A gRPC server core over libnghttp2, OpenSSL and epoll (k0s_store._ext.h2server).

The event loop (`NativeServer.run`, on a thread of its own) runs without the
GIL: it accepts connections, does TLS and HTTP/2, assembles gRPC messages
and checks them the way grpc-go does. Python only sees whole calls: worker
threads take events with `next_events()` (blocking, GIL released) and answer
with `send()`, which queues the reply for the loop and wakes it. Which
handler serves a path is Python's business (k0s_store/transport/native.py);
this module only knows the table's paths and shapes.

Parts, each in its own file: h2_types.pxi (C state), h2_queues.pxi
(loop <-> Python hand-off), h2_grpc.pxi (gRPC on one stream),
h2_session.pxi (nghttp2 callbacks), h2_tls.pxi (OpenSSL), h2_keepalive.pxi
(PING policy), h2_loop.pxi (epoll loop).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset, strlen
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF

from http import HTTPStatus

from nghttp2 cimport *
from openssl cimport *
from sysio cimport *

include "h2_types.pxi"
include "h2_queues.pxi"
include "h2_grpc.pxi"
include "h2_session.pxi"
include "h2_tls.pxi"
include "h2_keepalive.pxi"
include "h2_loop.pxi"

# Event kinds and shapes, for the Python side.
REQUEST = EV_REQUEST
OPEN = EV_OPEN
HALF_CLOSE = EV_HALF_CLOSE
CLOSED = EV_CLOSED
UNKNOWN = EV_UNKNOWN
DRAINED = EV_DRAINED
WAKE = EV_WAKE
GONE = EV_GONE
HTTP = EV_HTTP
UNARY = SHAPE_UNARY
SERVER_STREAM = SHAPE_SERVER_STREAM
EACH_MESSAGE = SHAPE_EACH_MESSAGE
SESSION = SHAPE_SESSION


cdef Reply *new_reply(int kind, int fd, uint32_t gen, int32_t sid) except NULL:
    """A zeroed Reply of `kind` for the call (fd, gen, sid); MemoryError if none."""
    cdef Reply *r = <Reply *>calloc(1, sizeof(Reply))
    if r == NULL:
        raise MemoryError()
    r.kind = kind
    r.fd = fd
    r.gen = gen
    r.sid = sid
    return r


cdef object event_tuple(Event *ev):
    """The Python view of an event (see NativeServer.next_events)."""
    return (
        ev.kind,
        ev.fd,
        ev.gen,
        ev.sid,
        ev.method,
        PyBytes_FromStringAndSize(ev.data, ev.len) if ev.data != NULL else b"",
        ev.token.decode("utf-8", "replace") if ev.token != NULL else None,
        ev.cert_cn.decode("utf-8", "replace") if ev.cert_cn != NULL else None,
        ev.deadline_us,
        ev.seq,
    )


cdef void serve_inline(Loop *loop, Event *ev) noexcept nogil:
    """Hand one request to the loop's inline callable, on the loop's thread."""
    with gil:
        try:
            (<object>loop.inline_turn)(event_tuple(ev))
        except BaseException:
            pass  # the callable logs its own failures; the loop must go on


cdef class NativeServer:
    """The loop and its queues.

    Args:
        methods: (path, shape, quick, inline) of every served method; events
            carry the index. quick: its requests never block a worker (see
            `next_events`). inline: its requests may be served on the loop's
            thread (see `run`).
        max_recv: the largest request message accepted (grpc-go's check).
    """

    cdef Loop *loop
    cdef list _paths  # keeps the bytes the C table points into alive
    cdef dict _contexts  # listener index -> the TLSContext it serves with
    cdef object _inline_turn  # keeps the loop's callable alive

    def __cinit__(self, list methods, uint32_t max_recv):
        cdef epoll_event ev
        cdef int i
        self.loop = <Loop *>calloc(1, sizeof(Loop))
        if self.loop == NULL:
            raise MemoryError()
        self._contexts = {}
        loop = self.loop
        loop.epfd = -1
        loop.evfd = -1
        pthread_mutex_init(&loop.events.lock, NULL)
        pthread_cond_init(&loop.events.ready, NULL)
        pthread_mutex_init(&loop.replies.lock, NULL)
        pthread_mutex_init(&loop.released.lock, NULL)
        loop.max_recv = max_recv
        loop.accepting = 1
        loop.running = 1
        self._paths = [path.encode() for path, _, _, _ in methods]
        loop.nmethods = len(methods)
        loop.paths = <char **>calloc(len(methods) + 1, sizeof(char *))
        loop.pathlens = <size_t *>calloc(len(methods) + 1, sizeof(size_t))
        loop.shapes = <int *>calloc(len(methods) + 1, sizeof(int))
        loop.quick = <int *>calloc(len(methods) + 1, sizeof(int))
        loop.inline = <int *>calloc(len(methods) + 1, sizeof(int))
        for i, (_, shape, quick, inline) in enumerate(methods):
            loop.paths[i] = PyBytes_AS_STRING(self._paths[i])
            loop.pathlens[i] = PyBytes_GET_SIZE(self._paths[i])
            loop.shapes[i] = shape
            loop.quick[i] = quick
            loop.inline[i] = inline
        loop.callbacks = make_callbacks()
        nghttp2_option_new(&loop.option)
        # nghttp2's HTTP checks would refuse what grpc-go accepts (e.g. the
        # :authority "http://host:port" etcdctl sends for a URL endpoint);
        # the gRPC checks are ours (h2_grpc.pxi).
        nghttp2_option_set_no_http_messaging(loop.option, 1)
        # By default nghttp2 keeps every closed stream for RFC 7540's priority
        # tree, up to SETTINGS_MAX_CONCURRENT_STREAMS of them (ours: a million)
        # per connection: ~260 bytes per call on a long-lived connection.
        # gRPC never uses priorities.
        nghttp2_option_set_no_closed_streams(loop.option, 1)
        loop.epfd = epoll_create1(EPOLL_CLOEXEC)
        loop.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if loop.callbacks == NULL or loop.epfd < 0 or loop.evfd < 0:
            raise OSError("cannot set up the event loop")
        ev.events = EPOLLIN
        ev.data.fd = loop.evfd
        epoll_ctl(loop.epfd, EPOLL_CTL_ADD, loop.evfd, &ev)

    def add_listener(self, int fd, TLSContext tls=None) -> int:
        """Serve a listening, non-blocking socket (before `run`); its index."""
        cdef epoll_event ev
        cdef int index = self.loop.nlisteners
        if index >= MAX_LISTENERS:
            raise ValueError(f"at most {MAX_LISTENERS} listeners")
        self.loop.listeners[index].fd = fd
        if tls is not None:
            SSL_CTX_up_ref(tls.ctx)
            self.loop.listeners[index].ctx = tls.ctx
            self._contexts[index] = tls
        self.loop.nlisteners += 1
        ev.events = EPOLLIN
        ev.data.fd = fd
        epoll_ctl(self.loop.epfd, EPOLL_CTL_ADD, fd, &ev)
        return index

    def set_tls(self, int index, TLSContext tls) -> None:
        """New connections on listener `index` use `tls` from now on."""
        cdef Reply *r = new_reply(R_SET_TLS, 0, 0, index)
        SSL_CTX_up_ref(tls.ctx)
        r.ctx = tls.ctx
        self._contexts[index] = tls
        replies_push(self.loop, r)

    def add_worker(self) -> None:
        """Count one more thread taking `next_events` (before it starts)."""
        with nogil:
            pthread_mutex_lock(&self.loop.events.lock)
            self.loop.workers += 1
            pthread_mutex_unlock(&self.loop.events.lock)

    def run(self, inline_turn=None) -> None:
        """The event loop; returns after `exit()`. Call from one dedicated thread.

        `inline_turn(event)`, if given, serves requests of inline methods on
        the loop's thread while every worker (see `add_worker`) waits for an
        event, for a bounded time per loop iteration (h2_loop.pxi's
        loop_dispatch): such a call then costs no thread switch. It must not
        block.
        """
        self._inline_turn = inline_turn
        self.loop.inline_turn = <void *>inline_turn if inline_turn is not None else NULL
        with nogil:
            loop_run(self.loop)
        events_close(self.loop)

    def next_events(self, int limit):
        """Up to `limit` events in arrival order, waiting without the GIL for
        the first; [] once the loop has exited. Taking several per wake-up
        saves a worker's sleep, wake and GIL hand-off per event under load;
        only quick events come several at a time (an event that may block
        its worker comes alone).

        Each is (kind, fd, gen, stream id, method index, data, token, cert CN,
        deadline, seq): deadline: grpc-timeout's, in microseconds of
        time.monotonic()'s clock (-1: none); seq numbers a call's OPEN, REQUEST,
        HALF_CLOSE and CLOSED events from 0.
        """
        cdef Event *ev
        cdef Event *nxt
        events = []
        while not events:
            ev = events_pop(self.loop, limit, 0)
            if ev == NULL:
                # Only now let go of the GIL: a worker that finds work queued keeps
                # it, instead of handing it to one of the workers waiting for it
                # (a thread switch per request under load).
                with nogil:
                    ev = events_pop(self.loop, limit, 1)
            if ev == NULL:
                return events
            while ev != NULL:
                try:
                    if ev.kind == EV_RELEASE:
                        self._drop_released()
                    else:
                        events.append(event_tuple(ev))
                finally:
                    nxt = ev.next
                    event_free(ev)
                    ev = nxt
        return events

    def send(self, int fd, uint32_t gen, int32_t sid, bytes message, bint end=False,
             int status=0, bytes grpc_message=b"") -> None:
        """Queue a response message (None: none) and, with `end`, the call's status.

        `grpc_message` must already be percent-encoded.
        """
        cdef Reply *r = new_reply(R_MESSAGE, fd, gen, sid)
        cdef size_t n
        cdef uint32_t length
        r.end = end
        r.status = status
        if message is not None:
            n = PyBytes_GET_SIZE(message)
            # A big body (a LIST's) is sent from `message` itself, kept alive until
            # the loop is done with it; a small one is cheaper to copy.
            r.data = <char *>malloc(5 if n >= SHARE_MIN else n + 5)
            if r.data == NULL:
                free(r)
                raise MemoryError()
            length = <uint32_t>n
            r.data[0] = 0
            r.data[1] = <char>(length >> 24)
            r.data[2] = <char>(length >> 16)
            r.data[3] = <char>(length >> 8)
            r.data[4] = <char>length
            r.len = 5
            if n >= SHARE_MIN:
                Py_INCREF(message)
                r.owner = <void *>message
                r.body = PyBytes_AS_STRING(message)
                r.bodylen = n
            else:
                memcpy(r.data + 5, PyBytes_AS_STRING(message), n)
                r.len += n
        if grpc_message:
            r.msg = dup_bytes(PyBytes_AS_STRING(grpc_message), PyBytes_GET_SIZE(grpc_message))
            r.msglen = PyBytes_GET_SIZE(grpc_message)
        replies_push(self.loop, r)

    cdef void _drop_released(self):
        """Drop the references to response bodies the loop has finished with."""
        cdef OutMsg *m = released_take_all(self.loop)
        cdef OutMsg *next
        while m != NULL:
            next = m.next
            Py_XDECREF(<PyObject *>m.owner)
            free(m)
            m = next

    def send_http(self, int fd, uint32_t gen, int32_t sid, int status, headers, bytes body) -> None:
        """Answer an HTTP event: `status`, `headers` ((name, value) pairs) and `body`.

        sid 0 is an HTTP/1 connection: it gets the response and is closed.
        """
        cdef Reply *r
        cdef bytes data, fields
        if sid == 0:
            lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
            lines += [f"{name}: {value}" for name, value in headers]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            data = "\r\n".join(lines).encode("latin-1") + body
            fields = b""
        else:
            data = body
            fields = b"".join(
                name.lower().encode("latin-1") + b"\0" + value.encode("latin-1") + b"\0"
                for name, value in headers
            )
        r = new_reply(R_HTTP, fd, gen, sid)
        r.status = status
        r.data = dup_bytes(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        r.len = PyBytes_GET_SIZE(data)
        r.msg = dup_bytes(PyBytes_AS_STRING(fields), PyBytes_GET_SIZE(fields))
        r.msglen = PyBytes_GET_SIZE(fields)
        replies_push(self.loop, r)

    def request_drain(self, int fd, uint32_t gen, int32_t sid) -> None:
        """Ask for a DRAINED event once the call has little left to send (at most
        DRAIN_LOW_WATER bytes queued): the sender's write back-pressure."""
        cdef Reply *r = new_reply(R_DRAIN, fd, gen, sid)
        replies_push(self.loop, r)

    def wake(self, int fd, uint32_t gen, int32_t sid) -> None:
        """Queue a WAKE event for a call, for a worker to take (from any thread,
        without touching the loop): how a stream asks for a turn."""
        push_call_event(self.loop, EV_WAKE, fd, gen, sid)

    def _command(self, int kind) -> None:
        cdef Reply *r = new_reply(kind, 0, 0, 0)
        replies_push(self.loop, r)

    def goaway(self) -> None:
        """Stop accepting and send GOAWAY on every connection; calls in flight go on."""
        self._command(R_GOAWAY)

    def close_connections(self) -> None:
        """Flush and close every connection (streams still open get CLOSED events)."""
        self._command(R_CLOSE_ALL)

    def exit(self) -> None:
        """Make `run` return; `next_events` then answers [] to every worker."""
        self._command(R_EXIT)

    @property
    def connections(self) -> int:
        """Open connections (read without locking: a figure for tests and logs)."""
        return self.loop.live_conns

    def __dealloc__(self):
        cdef Loop *loop = self.loop
        cdef Event *ev
        cdef int i
        if loop == NULL:
            return
        for i in range(loop.nconns):
            if loop.conns[i] != NULL:
                conn_close(loop.conns[i])
        loop_apply_replies(loop)  # frees what is left (no connection remains)
        while loop.events.head != NULL:
            ev = loop.events.head
            loop.events.head = ev.next
            event_free(ev)
        self._drop_released()
        for i in range(loop.nlisteners):
            if loop.listeners[i].ctx != NULL:
                SSL_CTX_free(loop.listeners[i].ctx)
        if loop.callbacks != NULL:
            nghttp2_session_callbacks_del(loop.callbacks)
        if loop.option != NULL:
            nghttp2_option_del(loop.option)
        if loop.epfd >= 0:
            close(loop.epfd)
        if loop.evfd >= 0:
            close(loop.evfd)
        free(loop.conns)
        free(loop.paths)
        free(loop.pathlens)
        free(loop.shapes)
        free(loop.quick)
        free(loop.inline)
        free(loop)
