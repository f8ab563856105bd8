"""etcd's gRPC API on grpcio.

`register` serves every method of the transport-neutral table
(`k0s_store.api.methods`). Methods without message types (KV
Range/Put/DeleteRange/Txn and Watch) use identity serializers: their
handlers get and return raw message bytes, so no protobuf object is built
per key. The others are parsed here and answered with generated classes.

Threads: grpcio's sync server runs each RPC on a pool thread, and a stream
(Watch, LeaseKeepAlive) holds its thread for its whole life; a kube-apiserver
keeps hundreds of watch streams open. The pool is therefore large
(`DEFAULT_MAX_WORKERS`): ThreadPoolExecutor starts threads only when all
are busy, so an idle server pays nothing. grpc.aio would avoid the thread
per stream, but every store call blocks (LMDB, fsync) and would need an
executor anyway; the sync server keeps the services plain functions.

Shutdown (`BoundServer.shutdown`): stop accepting, end every open stream at
once with etcd's "server stopped" (UNAVAILABLE, which Go clients retry),
let in-flight unary calls finish, return. Streams never end by themselves,
so waiting for them would hold the process for the whole grace period while
clients, told to go away, find the port closed and back off (grpc-go: 1 s,
then x1.6): the longer the old process lingers, the later they come back.
"""

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import grpc

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
from k0s_store.transport.listeners import Listener, TLSFiles

log = logging.getLogger("k0s_store.grpc")

DEFAULT_MAX_WORKERS = 4096
HARD_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Keepalive as etcd's defaults: the server pings an idle client every 2 h
# (--grpc-keepalive-interval) and drops it after 20 s without an answer
# (--grpc-keepalive-timeout); clients may ping every 5 s
# (--grpc-keepalive-min-time; kube-apiserver pings every 30 s).
_KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 2 * 3600 * 1000),
    ("grpc.keepalive_timeout_ms", 20 * 1000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def _abort(context: grpc.ServicerContext, e: EtcdError) -> None:
    context.abort(grpc.StatusCode[e.code], e.message)


def _check_size(request: bytes, limit: int, context: grpc.ServicerContext) -> None:
    """grpc-go's check of the message size, with its text (grpcio words it differently)."""
    if len(request) > limit:
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"grpc: received message larger than max ({len(request)} vs. {limit})",
        )


def _call(method: Method, request, context: grpc.ServicerContext):
    """Call a unary-style handler, with the caller when it wants one."""
    if method.wants_caller:
        return method.handler(request, caller=_caller(context))
    return method.handler(request)


def _caller(context: grpc.ServicerContext) -> Caller:
    token = next((v for k, v in context.invocation_metadata() if k == "token"), None)
    names = context.auth_context().get("x509_common_name") or [None]
    cn = names[0].decode() if isinstance(names[0], bytes) else names[0]
    return Caller(token=token, cert_cn=cn)


def _parse(method: Method, request: bytes, limit: int, context: grpc.ServicerContext):
    _check_size(request, limit, context)
    return parse(method.request_type, request) if method.request_type else request


def _status_code(
    context: grpc.ServicerContext, exc: BaseException | None, stream: bool = True
) -> int:
    """The gRPC code an RPC ended with, for `RpcStats.finished`. A stream that
    ends because its client went away is Canceled, as etcd's handlers return
    the context's error; a unary handler that returned is OK, as in grpc-go."""
    if exc is None:
        if stream and not context.is_active():
            return grpc.StatusCode.CANCELLED.value[0]
        return grpc.StatusCode.OK.value[0]
    code = context.code()
    if code is not None:
        return code.value[0]
    if isinstance(exc, GeneratorExit) or not context.is_active():
        return grpc.StatusCode.CANCELLED.value[0]
    return grpc.StatusCode.UNKNOWN.value[0]


def _codec(method: Method, stats: RpcStats) -> dict:
    """grpcio's (de)serializers of `method`: requests stay bytes (handlers parse
    them), responses are marshalled if they are messages; every message's
    size goes to `stats`, as etcd's codec counts them."""
    received, sent = stats.received, stats.sent

    def deserialize(data: bytes) -> bytes:
        received(len(data))
        return data

    marshal = method.response_type.SerializeToString if method.response_type else None

    def serialize(response) -> bytes:
        data = marshal(response) if marshal is not None else response
        sent(len(data))
        return data

    return {"request_deserializer": deserialize, "response_serializer": serialize}


class OpenStreams:
    """The streams in progress, each with a callable that ends it; once
    `end_all` ran, a stream that starts is ended at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._enders: set = set()
        self._stopping = False

    def add(self, end: Callable[[], None]) -> bool:
        """Register a stream's ender; False when the server is stopping."""
        with self._lock:
            if not self._stopping:
                self._enders.add(end)
            return not self._stopping

    def discard(self, end: Callable[[], None]) -> None:
        with self._lock:
            self._enders.discard(end)

    def end_all(self) -> None:
        """End every open stream, and every stream that starts from now on."""
        with self._lock:
            self._stopping = True
            enders, self._enders = self._enders, set()
        for end in enders:
            end()


_STOPPED = object()  # queued by a shutdown: end the stream with StoppedError
_HALF_CLOSED = object()  # queued after the client's last request


def _feed(request_iterator: Iterator[bytes], requests: queue.SimpleQueue) -> None:
    """Move a stream's requests to a queue that a shutdown can also write to."""
    try:
        for request in request_iterator:
            requests.put(request)
    except grpc.RpcError:
        pass  # the call is over (cancelled by the client, or the server stopped)
    finally:
        requests.put(_HALF_CLOSED)


@contextlib.contextmanager
def _reported(stats: MethodStats, context: grpc.ServicerContext):
    """Report a streaming RPC to `stats` when it ends, with the code it ended with."""
    started, failure = stats.started(), None
    try:
        yield
    except BaseException as e:
        failure = e
        raise
    finally:
        stats.finished(_status_code(context, failure), started)


def _handler(
    method: Method, limit: int, streams: OpenStreams, stats: MethodStats, rpc_stats: RpcStats
) -> grpc.RpcMethodHandler:
    """grpcio's handler for `method`; EtcdError becomes its gRPC status; every RPC is
    reported to `stats`, every message's size to `rpc_stats`."""
    if method.shape is Shape.UNARY:

        def unary(request: bytes, context):
            started, response, failure, error = stats.started(), None, None, ""
            try:
                response = _call(method, _parse(method, request, limit, context), context)
                return response
            except EtcdError as e:
                failure, error = e, e.message
                _abort(context, e)
            except BaseException as e:
                failure = e
                raise
            finally:
                code = _status_code(context, failure, stream=False)
                stats.finished(code, started, request, response, error)

        return grpc.unary_unary_rpc_method_handler(unary, **_codec(method, rpc_stats))
    if method.shape is Shape.SERVER_STREAM:

        def server_stream(request: bytes, context):
            with _reported(stats, context):
                try:
                    yield from _call(method, _parse(method, request, limit, context), context)
                except EtcdError as e:
                    _abort(context, e)

        return grpc.unary_stream_rpc_method_handler(server_stream, **_codec(method, rpc_stats))
    if method.shape is Shape.EACH_MESSAGE:

        def each_message(request_iterator, context):
            with _reported(stats, context):
                yield from _each_message(request_iterator, context)

        def _each_message(request_iterator, context):
            requests: queue.SimpleQueue = queue.SimpleQueue()

            def end() -> None:
                requests.put(_STOPPED)

            if not streams.add(end):
                _abort(context, StoppedError())
            threading.Thread(
                target=_feed, args=(request_iterator, requests), name="stream-recv", daemon=True
            ).start()
            try:
                while (request := requests.get()) is not _HALF_CLOSED:
                    if request is _STOPPED:
                        raise StoppedError()
                    yield _call(method, _parse(method, request, limit, context), context)
            except EtcdError as e:
                _abort(context, e)
            finally:
                streams.discard(end)

        return grpc.stream_stream_rpc_method_handler(each_message, **_codec(method, rpc_stats))

    def session(request_iterator: Iterator[bytes], context) -> Iterator[bytes]:
        with _reported(stats, context):
            yield from _session(request_iterator, context)

    def _session(request_iterator: Iterator[bytes], context) -> Iterator[bytes]:
        stream = (
            method.handler(caller=_caller(context)) if method.wants_caller else method.handler()
        )
        stopped = threading.Event()

        def end() -> None:
            stopped.set()
            stream.close()

        if not streams.add(end):
            stream.close()
            _abort(context, StoppedError())
        context.add_callback(stream.close)
        threading.Thread(
            target=_pump, args=(request_iterator, stream), name="stream-recv", daemon=True
        ).start()
        try:
            yield from stream.responses()
            if stopped.is_set():
                raise StoppedError()
        except EtcdError as e:
            _abort(context, e)
        finally:
            streams.discard(end)
            stream.close()

    return grpc.stream_stream_rpc_method_handler(session, **_codec(method, rpc_stats))


def _pump(request_iterator: Iterator[bytes], stream) -> None:
    """Feed a session's requests to it; a client half-close keeps it open, as in etcd."""
    try:
        for request in request_iterator:
            stream.submit(request)
    except grpc.RpcError:
        stream.close()


def register(
    server: grpc.Server,
    table: dict[str, Method],
    max_message_bytes: int,
    streams: OpenStreams,
    rpc_stats: RpcStats,
) -> None:
    """Serve every method of `table` on `server`; requests over `max_message_bytes` are
    refused; streams are registered in `streams` while they run; every RPC is reported
    to `rpc_stats`."""
    method_stats = rpc_stats.serve(table)
    handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for path, method in table.items():
        handler = _handler(method, max_message_bytes, streams, method_stats[path], rpc_stats)
        handlers.setdefault(method.service, {})[method.name] = handler
    server.add_generic_rpc_handlers(
        (
            *(grpc.method_handlers_generic_handler(name, h) for name, h in handlers.items()),
            _UnknownMethods(table),
        )
    )


class _UnknownMethods(grpc.GenericRpcHandler):
    """Answers every method not in the table with grpc-go's UNIMPLEMENTED text."""

    def __init__(self, table: dict[str, Method]) -> None:
        self.table = table

    def service(self, handler_call_details):
        text = unknown_method_text(handler_call_details.method, self.table)

        def refuse(request_iterator, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, text)

        return grpc.stream_stream_rpc_method_handler(refuse)


class BoundServer(NamedTuple):
    """A started server and the address each listener got (ports resolved)."""

    server: grpc.Server
    addresses: list[tuple[Listener, str]]
    streams: OpenStreams

    def shutdown(self, grace: float) -> None:
        """Stop accepting, end every stream with "server stopped", give in-flight
        unary calls up to `grace` seconds, then return."""
        done = self.server.stop(grace)
        self.streams.end_all()
        done.wait()


def start_server(
    store,
    settings: Settings,
    listeners: list[Listener],
    tls: TLSFiles,
    max_workers: int = DEFAULT_MAX_WORKERS,
    rpc_stats: RpcStats | None = None,
) -> BoundServer:
    """Serve etcd's API over `store` on every listener and start the server.

    A TCP port 0 is replaced by the port the system picked. Every RPC is
    reported to `rpc_stats` (a fresh one if None).
    """
    options = [
        # A hard cap only: the handlers apply etcd's limit, with grpc-go's error.
        (
            "grpc.max_receive_message_length",
            max(settings.max_message_bytes, HARD_MAX_MESSAGE_BYTES),
        ),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
        *_KEEPALIVE_OPTIONS,
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), options=options)
    streams = OpenStreams()
    table = method_table(build_services(store, settings))
    register(server, table, settings.max_message_bytes, streams, rpc_stats or RpcStats())
    addresses = []
    for listener in listeners:
        if listener.secure:
            port = server.add_secure_port(listener.address, tls.credentials())
        else:
            port = server.add_insecure_port(listener.address)
        addresses.append((listener, _resolved(listener, port)))
    server.start()
    return BoundServer(server, addresses, streams)


def _resolved(listener: Listener, port: int) -> str:
    if listener.is_unix:
        return listener.address
    host = listener.address.rsplit(":", 1)[0]
    return f"{host}:{port}"
