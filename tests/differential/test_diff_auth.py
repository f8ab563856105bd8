"""Differential: the Auth service and the permission checks, against a real etcd 3.4.

The same request sequences go to both servers, with each server's own token
for a user (tokens are random: only their shape is compared), and the
answers compare field by field, failures by gRPC code and message. Both run
with --bcrypt-cost=4 (an etcd flag) so that hashing does not dominate.
"""

import functools
import re
import time

import grpc
import pytest
from google.protobuf.message import Message
from harness.differential import Pair, assert_same
from harness.rpc import CALL_TIMEOUT_S, Client, Outcome, RpcFailure
from harness.streams import BidiStream

from k0s_store.proto import auth_pb2
from k0s_store.proto import rpc_pb2 as pb

pytestmark = [pytest.mark.etcd, pytest.mark.server_args("--bcrypt-cost=4")]

READ, WRITE, READWRITE = (
    auth_pb2.Permission.READ,
    auth_pb2.Permission.WRITE,
    auth_pb2.Permission.READWRITE,
)
TOKEN_SHAPE = re.compile(r"[a-zA-Z]{16}\.\d+")


def _call(client: Client, service: str, method: str, request: Message, token: str | None):
    metadata = (("token", token),) if token is not None else None
    try:
        return getattr(client.stubs[service], method)(
            request, timeout=CALL_TIMEOUT_S, metadata=metadata
        )
    except grpc.RpcError as error:
        return RpcFailure.from_error(error)


class AuthPair:
    """A pair whose calls may carry a user's token (each server's own)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.tokens: dict[str, tuple[str, str]] = {}

    def both(self, service: str, method: str, request: Message, as_user: str | None = None):
        ref_token, sub_token = self.tokens[as_user] if as_user else (None, None)
        return (
            _call(self.pair.reference, service, method, request, ref_token),
            _call(self.pair.subject, service, method, request, sub_token),
        )

    def same(self, service: str, method: str, request: Message, as_user: str | None = None):
        reference, subject = self.both(service, method, request, as_user)
        assert_same(reference, subject, f"{service}.{method} as {as_user}: {request}")
        return reference

    def auth(self, method: str, as_user: str | None = None, **fields) -> Outcome:
        """An Auth call; the request type follows the method's name."""
        name = method if method.startswith("Auth") else f"Auth{method}"
        return self.same("Auth", method, getattr(pb, f"{name}Request")(**fields), as_user)

    def kv(self, method: str, as_user: str | None = None, **fields) -> Outcome:
        request = getattr(pb, _KV_REQUESTS[method])(**fields)
        return self.same("KV", method, request, as_user)

    def login(self, name: str, password: str, as_name: str | None = None) -> None:
        """Authenticate on both; remember the tokens under `as_name` (default: name)."""
        request = pb.AuthenticateRequest(name=name, password=password)
        reference, subject = self.both("Auth", "Authenticate", request)
        for response in (reference, subject):
            assert not isinstance(response, RpcFailure), response
            assert TOKEN_SHAPE.fullmatch(response.token), response.token
        self.tokens[as_name or name] = (reference.token, subject.token)
        reference.token = subject.token = ""
        assert_same(reference, subject, "Authenticate")


_KV_REQUESTS = {
    "Range": "RangeRequest",
    "Put": "PutRequest",
    "DeleteRange": "DeleteRangeRequest",
    "Txn": "TxnRequest",
    "Compact": "CompactionRequest",
}


def perm(kind: int, key: bytes, range_end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=range_end)


def _setup_root_and_app(a: AuthPair) -> None:
    """root (role root), role app (READWRITE prefix /app/, READ key ro), alice (app), bob."""
    a.auth("UserAdd", name="root", password="rootpw")
    a.auth("RoleAdd", name="root")
    a.auth("UserGrantRole", user="root", role="root")
    a.auth("RoleAdd", name="app")
    a.auth("RoleGrantPermission", name="app", perm=perm(READWRITE, b"/app/", b"/app0"))
    a.auth("RoleGrantPermission", name="app", perm=perm(READ, b"ro"))
    a.auth("UserAdd", name="alice", password="alicepw")
    a.auth("UserGrantRole", user="alice", role="app")
    a.auth("UserAdd", name="bob", password="bobpw")
    a.kv("Put", key=b"/other", value=b"o")
    a.kv("Put", key=b"ro", value=b"r")


def test_users_and_roles_while_auth_is_disabled(pair):
    a = AuthPair(pair)
    a.auth("AuthEnable")
    a.auth("UserAdd", name="root", password="pw")
    a.auth("AuthEnable")  # root exists but lacks the root role
    a.auth("UserAdd", name="", password="pw")
    a.auth("UserAdd", name="root", password="other")
    a.auth("UserAdd", name="cert-only", options=auth_pb2.UserAddOptions(no_password=True))
    a.auth("RoleAdd", name="")
    a.auth("RoleAdd", name="r1")
    a.auth("RoleAdd", name="r1")
    a.auth("RoleAdd", name="r0")
    a.auth("UserGrantRole", user="root", role="root")  # the root role needs no RoleAdd
    a.auth("UserGrantRole", user="root", role="r1")
    a.auth("UserGrantRole", user="root", role="r1")  # twice: no-op
    a.auth("UserGrantRole", user="root", role="r0")
    a.auth("UserGrantRole", user="nobody", role="r1")
    a.auth("UserGrantRole", user="root", role="nosuch")
    a.auth("UserGet", name="root")
    a.auth("UserGet", name="nobody")
    for p in (
        perm(READ, b"k"),
        perm(WRITE, b"/a/", b"/a0"),
        perm(READWRITE, b"b", b"\0"),
        perm(READ, b"/a/", b"/a/z"),
        perm(READWRITE, b"/a/", b"/a0"),  # same range: the type changes
    ):
        a.auth("RoleGrantPermission", name="r1", perm=p)
    a.auth("RoleGrantPermission", name="nosuch", perm=perm(READ, b"k"))
    a.auth("RoleGet", role="r1")
    a.auth("RoleGet", role="nosuch")
    a.auth("RoleRevokePermission", role="r1", key=b"k", range_end=b"kz")
    a.auth("RoleRevokePermission", role="r1", key=b"k")
    a.auth("RoleRevokePermission", role="nosuch", key=b"k")
    a.auth("RoleGet", role="r1")
    a.auth("UserList")
    a.auth("RoleList")
    a.auth("UserRevokeRole", name="root", role="r0")
    a.auth("UserRevokeRole", name="root", role="r0")
    a.auth("UserRevokeRole", name="nobody", role="r0")
    a.auth("UserChangePassword", name="nobody", password="x")
    a.auth("UserChangePassword", name="root", password="pw2")
    a.auth("RoleDelete", role="r1")  # also revoked from root
    a.auth("RoleDelete", role="r1")
    a.auth("UserGet", name="root")
    a.auth("UserDelete", name="nobody")
    a.auth("UserDelete", name="cert-only")
    a.auth("Authenticate", name="root", password="pw2")  # auth is not enabled
    a.auth("AuthDisable")  # already disabled: nothing to do
    a.kv("Put", key=b"k", value=b"v")
    a.auth("UserList")  # headers follow the KV revision
    a.auth("AuthEnable")
    a.auth("UserList")  # no token now: refused
    a.auth("Authenticate", name="root", password="wrong")
    a.auth("Authenticate", name="nobody", password="pw2")
    a.login("root", "pw2")
    a.auth("UserList", "root")
    no_password = auth_pb2.UserAddOptions(no_password=True)
    a.auth("UserAdd", "root", name="cert-only", options=no_password)
    a.auth("Authenticate", name="cert-only", password="")
    a.auth("UserChangePassword", "root", name="root", password="p" * 72 + "-one")
    a.auth("UserList", "root")  # the change dropped root's token
    a.login("root", "p" * 72 + "-two")  # as Go's bcrypt, only 72 bytes count


def test_kv_lease_and_maintenance_checks_once_enabled(pair):
    a = AuthPair(pair)
    _setup_root_and_app(a)
    a.auth("AuthEnable")
    a.login("root", "rootpw")
    a.login("alice", "alicepw")
    a.login("bob", "bobpw")

    # Nobody: "user name is empty" where a user is needed, nothing where none is.
    a.kv("Range", key=b"/app/a")
    a.kv("Put", key=b"/app/a", value=b"1")
    a.same("Maintenance", "Defragment", pb.DefragmentRequest())
    a.same("Maintenance", "HashKV", pb.HashKVRequest())
    a.same("Lease", "LeaseGrant", pb.LeaseGrantRequest(ID=7, TTL=60))

    # alice: READWRITE under /app/, READ on ro.
    a.kv("Put", "alice", key=b"/app/a", value=b"1")
    a.kv("Put", "alice", key=b"/app/b", value=b"2", prev_kv=True)
    a.kv("Put", "alice", key=b"/other", value=b"x")
    a.kv("Put", "alice", key=b"ro", value=b"x")
    a.kv("Range", "alice", key=b"ro")
    a.kv("Range", "alice", key=b"/app/", range_end=b"/app0")
    a.kv("Range", "alice", key=b"/app/a", range_end=b"/app/c")
    a.kv("Range", "alice", key=b"/app/", range_end=b"\0")
    a.kv("Range", "alice", key=b"\0", range_end=b"\0")
    a.kv("Range", "alice", key=b"/other")
    a.kv("DeleteRange", "alice", key=b"/app/b", prev_kv=True)
    a.kv("DeleteRange", "alice", key=b"/", range_end=b"0")
    put_app = pb.RequestOp(request_put=pb.PutRequest(key=b"/app/t", value=b"t"))
    put_other = pb.RequestOp(request_put=pb.PutRequest(key=b"/other", value=b"t"))
    get_ro = pb.RequestOp(request_range=pb.RangeRequest(key=b"ro"))
    cmp_app = pb.Compare(key=b"/app/a", target=pb.Compare.VERSION, version=1)
    cmp_other = pb.Compare(key=b"/other", target=pb.Compare.VERSION, version=1)
    a.kv("Txn", "alice", compare=[cmp_app], success=[put_app], failure=[get_ro])
    a.kv("Txn", "alice", compare=[cmp_other], success=[put_app])
    a.kv("Txn", "alice", compare=[cmp_app], success=[put_app], failure=[put_other])
    a.kv("Txn", "alice", success=[get_ro])
    a.kv("Compact", "alice", revision=2)
    a.same("Maintenance", "Defragment", pb.DefragmentRequest(), "alice")
    a.same("Maintenance", "Hash", pb.HashRequest(), "alice")
    for status in a.both("Maintenance", "Status", pb.StatusRequest(), "alice"):
        assert not isinstance(status, RpcFailure), status  # sizes and versions differ
    a.auth("UserList", "alice")
    a.auth("UserGet", "alice", name="alice")
    a.auth("UserGet", "alice", name="root")
    a.auth("RoleGet", "alice", role="app")
    a.auth("RoleGet", "alice", role="root")
    a.auth("AuthDisable", "alice")
    a.auth("UserAdd", "alice", name="mallory", password="x")

    # bob has no role; an unknown token is nobody at all.
    a.kv("Range", "bob", key=b"/app/a")
    a.tokens["forged"] = ("abcdefghijklmnop.5", "abcdefghijklmnop.5")
    a.kv("Range", "forged", key=b"/app/a")
    a.kv("Put", "forged", key=b"/app/a", value=b"1")
    a.auth("Authenticate", "forged", name="bob", password="bobpw")
    a.same("Maintenance", "Alarm", pb.AlarmRequest(), "forged")
    a.same("Maintenance", "HashKV", pb.HashKVRequest(), "forged")

    # Membership changes need root (checked before the member is looked up).
    for who in (None, "alice", "forged"):
        a.same("Cluster", "MemberRemove", pb.MemberRemoveRequest(ID=12345), who)
        a.same("Cluster", "MemberPromote", pb.MemberPromoteRequest(ID=12345), who)

    # Leases: a lease holding /other may be neither revoked nor reused by alice.
    a.same("Lease", "LeaseGrant", pb.LeaseGrantRequest(ID=100, TTL=60), "root")
    a.kv("Put", "root", key=b"/other", value=b"leased", lease=100)
    a.same("Lease", "LeaseRevoke", pb.LeaseRevokeRequest(ID=100), "alice")
    a.kv("Put", "alice", key=b"/app/l", value=b"1", lease=100)
    a.same("Lease", "LeaseRevoke", pb.LeaseRevokeRequest(ID=100), "root")

    # root may do all; root itself stays while auth is on.
    a.kv("Range", "root", key=b"\0", range_end=b"\0")
    a.auth("UserDelete", "root", name="root")
    a.auth("RoleDelete", "root", role="root")
    a.auth("UserRevokeRole", "root", name="root", role="root")
    a.auth("RoleList", "root")
    a.auth("UserGet", "root", name="alice")

    # A new password invalidates alice's tokens; revoking her role her rights.
    a.auth("UserChangePassword", "root", name="alice", password="new")
    a.kv("Range", "alice", key=b"ro")
    a.login("alice", "new")
    a.auth("UserRevokeRole", "root", name="alice", role="app")
    a.kv("Range", "alice", key=b"ro")

    # Disabling drops every token; anonymous calls work again.
    a.auth("AuthDisable", "root")
    a.kv("Range", "root", key=b"ro")
    a.kv("Range", key=b"\0", range_end=b"\0")


def test_watch_is_checked_at_creation(pair):
    a = AuthPair(pair)
    _setup_root_and_app(a)
    a.auth("AuthEnable")
    a.login("alice", "alicepw")
    ref_token, sub_token = a.tokens["alice"]
    streams = []
    for client, token in (
        (pair.reference, ref_token),
        (pair.subject, sub_token),
        (pair.reference, None),
        (pair.subject, None),
    ):
        metadata = (("token", token),) if token else None
        streams.append(
            BidiStream(functools.partial(client.stubs["Watch"].Watch, metadata=metadata))
        )
    creates = [
        pb.WatchCreateRequest(key=b"/app/", range_end=b"/app0"),
        pb.WatchCreateRequest(key=b"/other"),
        pb.WatchCreateRequest(key=b"/app/", range_end=b"/b"),
        pb.WatchCreateRequest(key=b"ro"),
    ]
    try:
        for create in creates:
            for stream in streams:
                stream.send(pb.WatchRequest(create_request=create))
            answers = [stream.recv(5.0) for stream in streams]
            assert_same(answers[0], answers[1], f"watch as alice {create}")
            assert_same(answers[2], answers[3], f"watch as nobody {create}")
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.server_args("--bcrypt-cost=4", "--auth-token-ttl=2")
def test_tokens_expire_after_ttl_unless_used(pair):
    a = AuthPair(pair)
    _setup_root_and_app(a)
    a.auth("AuthEnable")
    a.login("alice", "alicepw")
    a.login("alice", "alicepw", as_name="idle")
    for _ in range(4):  # used every 0.8 s: renewed each time
        time.sleep(0.8)
        a.kv("Range", "alice", key=b"ro")
    time.sleep(0.5)
    a.kv("Range", "idle", key=b"ro")  # unused for 3.7 s: expired
    a.kv("Range", "alice", key=b"ro")
