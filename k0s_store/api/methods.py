"""Every gRPC method this server answers, in one table that every transport serves.

A transport looks a request's path up in `method_table` and calls the
handler the way its `Shape` says; it never knows a service by name. So a
method added here is served by every transport at once.

Requests and responses are marshalled bytes when the method's types are
None (the hot KV and Watch calls: the codec works on bytes) and generated
protobuf messages otherwise; the transport parses such requests with
`unmarshal_errors.parse`, so a malformed one gets etcd's error text.

Handlers raise `k0s_store.errors.EtcdError`; the transport turns it into a
gRPC status. A handler with `wants_caller` also gets, as the keyword
`caller`, who is calling (`Caller`): the `token` metadata the client sent
and the common name of its verified TLS client certificate.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from google.protobuf.message import Message

from k0s_store.api.auth import AuthService
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import Caller
from k0s_store.api.cluster import ClusterService
from k0s_store.api.header import Header
from k0s_store.api.kv import KVService
from k0s_store.api.lease import LeaseService
from k0s_store.api.maintenance import MaintenanceService
from k0s_store.api.settings import Settings
from k0s_store.api.watch import WatchService
from k0s_store.proto import rpc_pb2 as pb


class Shape(enum.Enum):
    """How a handler is called."""

    UNARY = "unary"  # handler(request) -> response
    SERVER_STREAM = "server_stream"  # handler(request) -> iterator of responses
    EACH_MESSAGE = "each_message"  # bidi: handler(request) -> response, once per request
    # bidi: handler() -> a session: submit(bytes), close(), and its responses either
    # pulled (responses() iterator) or pushed (on_queued(wake) + poll()); see WatchStream.
    SESSION = "session"


__all__ = [
    "Caller",
    "Method",
    "Services",
    "Shape",
    "build_services",
    "method_table",
    "unknown_method_text",
]


@dataclass(frozen=True)
class Method:
    """One gRPC method: `/{service}/{name}`."""

    service: str
    name: str
    shape: Shape
    handler: Callable
    request_type: type[Message] | None = None
    response_type: type[Message] | None = None
    wants_caller: bool = False
    # Optional second form of a unary bytes handler: submit(request, caller, reply)
    # returns at once and reply(response, error) comes later from any thread
    # (the writer's, once durable). A transport may use either form.
    submit: Callable | None = None
    # The handler only computes (reads the last committed state): it never waits
    # for the writer, a lock or a client, so it needs no thread of its own
    # (the native transport may even run it on its event loop's thread).
    computes_only: bool = False

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


class Services(NamedTuple):
    """Every service of one server."""

    kv: KVService
    watch: WatchService
    lease: LeaseService
    maintenance: MaintenanceService
    cluster: ClusterService
    auth: AuthService


def build_services(store, settings: Settings) -> Services:
    """The services over `store`, with headers naming this member."""
    header = Header(store.cluster_id, store.member_id, settings.raft_term)
    guard = AuthGuard(store, settings.client_cert_auth)
    return Services(
        kv=KVService(store, header, settings, guard),
        watch=WatchService(store, header, settings, guard),
        lease=LeaseService(store, header, guard),
        maintenance=MaintenanceService(store, header, settings, guard),
        cluster=ClusterService(store, header, settings, guard),
        auth=AuthService(store, header, guard),
    )


def method_table(s: Services) -> dict[str, Method]:
    """Every method of `s`, by path."""
    kv, lease = "etcdserverpb.KV", "etcdserverpb.Lease"
    m, c = "etcdserverpb.Maintenance", "etcdserverpb.Cluster"
    unary = Shape.UNARY
    methods = [
        Method(kv, "Range", unary, s.kv.range, wants_caller=True, computes_only=True),
        Method(kv, "Put", unary, s.kv.put, wants_caller=True, submit=s.kv.submit_put),
        Method(
            kv,
            "DeleteRange",
            unary,
            s.kv.delete_range,
            wants_caller=True,
            submit=s.kv.submit_delete_range,
        ),
        Method(kv, "Txn", unary, s.kv.txn, wants_caller=True, submit=s.kv.submit_txn),
        Method(
            kv,
            "Compact",
            unary,
            s.kv.compact,
            pb.CompactionRequest,
            pb.CompactionResponse,
            wants_caller=True,
        ),
        Method(
            "etcdserverpb.Watch", "Watch", Shape.SESSION, s.watch.open_stream, wants_caller=True
        ),
        Method(
            lease,
            "LeaseGrant",
            unary,
            s.lease.grant,
            pb.LeaseGrantRequest,
            pb.LeaseGrantResponse,
            wants_caller=True,
        ),
        Method(
            lease,
            "LeaseRevoke",
            unary,
            s.lease.revoke,
            pb.LeaseRevokeRequest,
            pb.LeaseRevokeResponse,
            wants_caller=True,
        ),
        Method(
            lease,
            "LeaseKeepAlive",
            Shape.EACH_MESSAGE,
            s.lease.keep_alive,
            pb.LeaseKeepAliveRequest,
            pb.LeaseKeepAliveResponse,
        ),
        Method(
            lease,
            "LeaseTimeToLive",
            unary,
            s.lease.time_to_live,
            pb.LeaseTimeToLiveRequest,
            pb.LeaseTimeToLiveResponse,
        ),
        Method(
            lease,
            "LeaseLeases",
            unary,
            s.lease.leases,
            pb.LeaseLeasesRequest,
            pb.LeaseLeasesResponse,
        ),
        Method(
            m,
            "Alarm",
            unary,
            s.maintenance.alarm,
            pb.AlarmRequest,
            pb.AlarmResponse,
            wants_caller=True,
        ),
        Method(m, "Status", unary, s.maintenance.status, pb.StatusRequest, pb.StatusResponse),
        Method(
            m,
            "Defragment",
            unary,
            s.maintenance.defragment,
            pb.DefragmentRequest,
            pb.DefragmentResponse,
            wants_caller=True,
        ),
        Method(
            m, "Hash", unary, s.maintenance.hash, pb.HashRequest, pb.HashResponse, wants_caller=True
        ),
        Method(
            m,
            "HashKV",
            unary,
            s.maintenance.hash_kv,
            pb.HashKVRequest,
            pb.HashKVResponse,
            wants_caller=True,
        ),
        Method(
            m,
            "Snapshot",
            Shape.SERVER_STREAM,
            s.maintenance.snapshot,
            pb.SnapshotRequest,
            pb.SnapshotResponse,
            wants_caller=True,
        ),
        Method(
            m,
            "MoveLeader",
            unary,
            s.maintenance.move_leader,
            pb.MoveLeaderRequest,
            pb.MoveLeaderResponse,
        ),
        Method(
            c,
            "MemberAdd",
            unary,
            s.cluster.member_add,
            pb.MemberAddRequest,
            pb.MemberAddResponse,
            wants_caller=True,
        ),
        Method(
            c,
            "MemberRemove",
            unary,
            s.cluster.member_remove,
            pb.MemberRemoveRequest,
            pb.MemberRemoveResponse,
            wants_caller=True,
        ),
        Method(
            c,
            "MemberUpdate",
            unary,
            s.cluster.member_update,
            pb.MemberUpdateRequest,
            pb.MemberUpdateResponse,
            wants_caller=True,
        ),
        Method(
            c,
            "MemberList",
            unary,
            s.cluster.member_list,
            pb.MemberListRequest,
            pb.MemberListResponse,
        ),
        Method(
            c,
            "MemberPromote",
            unary,
            s.cluster.member_promote,
            pb.MemberPromoteRequest,
            pb.MemberPromoteResponse,
            wants_caller=True,
        ),
        *_auth_methods(s.auth),
    ]
    return {method.path: method for method in methods}


# Auth method name -> (handler name, request type name); responses are named alike.
_AUTH_METHODS = {
    "AuthEnable": ("auth_enable", "AuthEnableRequest"),
    "AuthDisable": ("auth_disable", "AuthDisableRequest"),
    "Authenticate": ("authenticate", "AuthenticateRequest"),
    "UserAdd": ("user_add", "AuthUserAddRequest"),
    "UserGet": ("user_get", "AuthUserGetRequest"),
    "UserList": ("user_list", "AuthUserListRequest"),
    "UserDelete": ("user_delete", "AuthUserDeleteRequest"),
    "UserChangePassword": ("user_change_password", "AuthUserChangePasswordRequest"),
    "UserGrantRole": ("user_grant_role", "AuthUserGrantRoleRequest"),
    "UserRevokeRole": ("user_revoke_role", "AuthUserRevokeRoleRequest"),
    "RoleAdd": ("role_add", "AuthRoleAddRequest"),
    "RoleGet": ("role_get", "AuthRoleGetRequest"),
    "RoleList": ("role_list", "AuthRoleListRequest"),
    "RoleDelete": ("role_delete", "AuthRoleDeleteRequest"),
    "RoleGrantPermission": ("role_grant_permission", "AuthRoleGrantPermissionRequest"),
    "RoleRevokePermission": ("role_revoke_permission", "AuthRoleRevokePermissionRequest"),
}


def _auth_methods(auth: AuthService) -> list[Method]:
    return [
        Method(
            "etcdserverpb.Auth",
            name,
            Shape.UNARY,
            getattr(auth, handler),
            getattr(pb, request),
            getattr(pb, request.removesuffix("Request") + "Response"),
            wants_caller=True,
        )
        for name, (handler, request) in _AUTH_METHODS.items()
    ]


def unknown_method_text(path: str, table: dict[str, Method]) -> str:
    """grpc-go's UNIMPLEMENTED message for a path not in `table`."""
    service, _, name = path.lstrip("/").rpartition("/")
    if any(method.service == service for method in table.values()):
        return f"unknown method {name} for service {service}"
    return f"unknown service {service}"
