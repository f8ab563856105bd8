"""etcd's gRPC API on grpcio.

All services are registered in one function, `register`. The hot RPCs
(KV Range/Put/DeleteRange/Txn and Watch) use identity serializers: their
handlers get and return raw message bytes, so no protobuf object is built
per key. The other RPCs use the generated classes.

Threads: grpcio's sync server runs each RPC on a pool thread, and a stream
(Watch, LeaseKeepAlive) holds its thread for its whole life; a kube-apiserver
keeps hundreds of watch streams open. The pool is therefore large
(`DEFAULT_MAX_WORKERS`): ThreadPoolExecutor starts threads only when all
are busy, so an idle server pays nothing. grpc.aio would avoid the thread
per stream, but every store call blocks (LMDB, fsync) and would need an
executor anyway; the sync server keeps the services plain functions.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import grpc

from k0s_store.api.cluster import ClusterService
from k0s_store.api.header import Header
from k0s_store.api.kv import KVService
from k0s_store.api.lease import LeaseService
from k0s_store.api.maintenance import MaintenanceService
from k0s_store.api.settings import Settings
from k0s_store.api.unmarshal_errors import parse
from k0s_store.api.watch import WatchService
from k0s_store.errors import EtcdError
from k0s_store.proto import rpc_pb2 as pb
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


class Services(NamedTuple):
    """Every service of one server."""

    kv: KVService
    watch: WatchService
    lease: LeaseService
    maintenance: MaintenanceService
    cluster: ClusterService


def build_services(store, settings: Settings) -> Services:
    """The services over `store`, with headers naming this member."""
    header = Header(store.cluster_id, store.member_id, settings.raft_term)
    return Services(
        kv=KVService(store, header, settings),
        watch=WatchService(store, header, settings),
        lease=LeaseService(store, header),
        maintenance=MaintenanceService(store, header, settings),
        cluster=ClusterService(store, header, settings),
    )


def _abort(context: grpc.ServicerContext, e: EtcdError) -> None:
    context.abort(grpc.StatusCode[e.code], e.message)


def _check_size(request: bytes, limit: int, context: grpc.ServicerContext) -> None:
    """grpc-go's check of the message size, with its text (grpcio words it differently)."""
    if len(request) > limit:
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"grpc: received message larger than max ({len(request)} vs. {limit})",
        )


def _unary_handler(
    fn: Callable, limit: int, request_type=None, response_type=None
) -> grpc.RpcMethodHandler:
    """A unary handler mapping EtcdError to its gRPC status.

    Without types, `fn` takes and returns bytes. With them, the request is
    parsed here rather than by grpcio, so that a malformed one gets etcd's error.
    """

    def handle(request: bytes, context):
        _check_size(request, limit, context)
        try:
            return fn(parse(request_type, request) if request_type else request)
        except EtcdError as e:
            _abort(context, e)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        response_serializer=response_type.SerializeToString if response_type else None,
    )


def _watch_handler(service: WatchService) -> grpc.RpcMethodHandler:
    def handle(request_iterator: Iterator[bytes], context) -> Iterator[bytes]:
        stream = service.open_stream()
        context.add_callback(stream.close)
        threading.Thread(
            target=_pump, args=(request_iterator, stream), name="watch-recv", daemon=True
        ).start()
        try:
            yield from stream.responses()
        except EtcdError as e:
            _abort(context, e)
        finally:
            stream.close()

    return grpc.stream_stream_rpc_method_handler(handle)


def _pump(request_iterator: Iterator[bytes], stream) -> None:
    """Feed a watch stream's requests to it; a client half-close keeps it open, as in etcd."""
    try:
        for request in request_iterator:
            stream.submit(request)
    except grpc.RpcError:
        stream.close()


def _keepalive_handler(service: LeaseService) -> grpc.RpcMethodHandler:
    def handle(request_iterator, context):
        try:
            for request in request_iterator:
                yield service.keep_alive(request)
        except EtcdError as e:
            _abort(context, e)

    return grpc.stream_stream_rpc_method_handler(
        handle,
        request_deserializer=pb.LeaseKeepAliveRequest.FromString,
        response_serializer=pb.LeaseKeepAliveResponse.SerializeToString,
    )


def register(server: grpc.Server, s: Services, max_message_bytes: int) -> None:
    """Register every etcd service of `s` on `server`.

    Requests over `max_message_bytes` are refused. Not served (UNIMPLEMENTED,
    as any unknown method): the Auth service and Maintenance.Snapshot.
    """
    m = s.maintenance
    c = s.cluster

    def _unary(fn: Callable, request_type=None, response_type=None) -> grpc.RpcMethodHandler:
        return _unary_handler(fn, max_message_bytes, request_type, response_type)

    handlers = {
        "etcdserverpb.KV": {
            "Range": _unary(s.kv.range),
            "Put": _unary(s.kv.put),
            "DeleteRange": _unary(s.kv.delete_range),
            "Txn": _unary(s.kv.txn),
            "Compact": _unary(s.kv.compact, pb.CompactionRequest, pb.CompactionResponse),
        },
        "etcdserverpb.Watch": {"Watch": _watch_handler(s.watch)},
        "etcdserverpb.Lease": {
            "LeaseGrant": _unary(s.lease.grant, pb.LeaseGrantRequest, pb.LeaseGrantResponse),
            "LeaseRevoke": _unary(s.lease.revoke, pb.LeaseRevokeRequest, pb.LeaseRevokeResponse),
            "LeaseKeepAlive": _keepalive_handler(s.lease),
            "LeaseTimeToLive": _unary(
                s.lease.time_to_live, pb.LeaseTimeToLiveRequest, pb.LeaseTimeToLiveResponse
            ),
            "LeaseLeases": _unary(s.lease.leases, pb.LeaseLeasesRequest, pb.LeaseLeasesResponse),
        },
        "etcdserverpb.Maintenance": {
            "Alarm": _unary(m.alarm, pb.AlarmRequest, pb.AlarmResponse),
            "Status": _unary(m.status, pb.StatusRequest, pb.StatusResponse),
            "Defragment": _unary(m.defragment, pb.DefragmentRequest, pb.DefragmentResponse),
            "Hash": _unary(m.hash, pb.HashRequest, pb.HashResponse),
            "HashKV": _unary(m.hash_kv, pb.HashKVRequest, pb.HashKVResponse),
            "MoveLeader": _unary(m.move_leader, pb.MoveLeaderRequest, pb.MoveLeaderResponse),
        },
        "etcdserverpb.Cluster": {
            "MemberAdd": _unary(c.member_add, pb.MemberAddRequest, pb.MemberAddResponse),
            "MemberRemove": _unary(
                c.member_remove, pb.MemberRemoveRequest, pb.MemberRemoveResponse
            ),
            "MemberUpdate": _unary(
                c.member_update, pb.MemberUpdateRequest, pb.MemberUpdateResponse
            ),
            "MemberList": _unary(c.member_list, pb.MemberListRequest, pb.MemberListResponse),
            "MemberPromote": _unary(
                c.member_promote, pb.MemberPromoteRequest, pb.MemberPromoteResponse
            ),
        },
    }
    server.add_generic_rpc_handlers(
        (
            *(grpc.method_handlers_generic_handler(name, h) for name, h in handlers.items()),
            _UnknownMethods(handlers),
        )
    )


class _UnknownMethods(grpc.GenericRpcHandler):
    """Answers every method not registered with grpc-go's UNIMPLEMENTED text."""

    def __init__(self, handlers: dict[str, dict]) -> None:
        self.services = set(handlers)

    def service(self, handler_call_details):
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if service in self.services:
            text = f"unknown method {method} for service {service}"
        else:
            text = f"unknown service {service}"

        def refuse(request_iterator, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, text)

        return grpc.stream_stream_rpc_method_handler(refuse)


class BoundServer(NamedTuple):
    """A started server and the address each listener got (ports resolved)."""

    server: grpc.Server
    addresses: list[tuple[Listener, str]]


def start_server(
    store,
    settings: Settings,
    listeners: list[Listener],
    tls: TLSFiles,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> BoundServer:
    """Serve etcd's API over `store` on every listener and start the server.

    A TCP port 0 is replaced by the port the system picked.
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
    register(server, build_services(store, settings), settings.max_message_bytes)
    addresses = []
    for listener in listeners:
        if listener.secure:
            port = server.add_secure_port(listener.address, tls.credentials())
        else:
            port = server.add_insecure_port(listener.address)
        addresses.append((listener, _resolved(listener, port)))
    server.start()
    return BoundServer(server, addresses)


def _resolved(listener: Listener, port: int) -> str:
    if listener.is_unix:
        return listener.address
    host = listener.address.rsplit(":", 1)[0]
    return f"{host}:{port}"
