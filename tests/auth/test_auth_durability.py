"""Auth data is durable (a clean restart and kill -9 keep it) and passwords
never reach the data file in clear."""

import time

import grpc
import pytest
from harness.processes import READY_TIMEOUT_S, subject_is_etcd
from harness.rpc import Client, RpcFailure

from k0s_store.proto import auth_pb2, rpc_pb2_grpc
from k0s_store.proto import rpc_pb2 as pb

pytestmark = pytest.mark.server_args("--bcrypt-cost=4")

ROOT_PASSWORD = "root-secret-0123456789"
ALICE_PASSWORD = "alice-secret-9876543210"


def _auth(client: Client, method: str, token: str | None = None, **fields):
    name = method if method.startswith("Auth") else f"Auth{method}"
    request = getattr(pb, f"{name}Request")(**fields)
    metadata = (("token", token),) if token else None
    return getattr(client.stubs["Auth"], method)(request, timeout=10, metadata=metadata)


def _login(client: Client, name: str, password: str) -> str:
    return _auth(client, "Authenticate", name=name, password=password).token


def _configure(client: Client) -> None:
    """root, a role with READWRITE on /app/, alice holding it; auth enabled."""
    _auth(client, "UserAdd", name="root", password=ROOT_PASSWORD)
    _auth(client, "UserGrantRole", user="root", role="root")
    _auth(client, "RoleAdd", name="app")
    app = auth_pb2.Permission(
        permType=auth_pb2.Permission.READWRITE, key=b"/app/", range_end=b"/app0"
    )
    _auth(client, "RoleGrantPermission", name="app", perm=app)
    _auth(client, "UserAdd", name="alice", password=ALICE_PASSWORD)
    _auth(client, "UserGrantRole", user="alice", role="app")
    _auth(client, "AuthEnable")


def _put(client: Client, token: str, key: bytes):
    """A Put as the token's user: the response, or the RpcFailure."""
    try:
        request = pb.PutRequest(key=key, value=b"v")
        return client.stubs["KV"].Put(request, timeout=10, metadata=(("token", token),))
    except grpc.RpcError as error:
        return RpcFailure.from_error(error)


def _start_with_auth_on(server) -> None:
    """Start and wait until Status answers (the harness's anonymous Range is refused now)."""
    server.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    with server.channel() as channel:
        status = rpc_pb2_grpc.MaintenanceStub(channel).Status
        while True:
            try:
                status(pb.StatusRequest(), timeout=1.0)
                return
            except grpc.RpcError:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.05)


def _check_configured(server, users: list[str]) -> None:
    """After a restart: auth still on, the same users, roles and rights."""
    client = Client(server.channel())
    try:
        anonymous = client.call("KV", "Range", pb.RangeRequest(key=b"/app/a"))
        assert anonymous == RpcFailure("INVALID_ARGUMENT", "etcdserver: user name is empty")
        root = _login(client, "root", ROOT_PASSWORD)
        assert list(_auth(client, "UserList", root).users) == users
        assert list(_auth(client, "UserGet", root, name="alice").roles) == ["app"]
        alice = _login(client, "alice", ALICE_PASSWORD)
        assert isinstance(_put(client, alice, b"/app/a"), pb.PutResponse)
        refused = _put(client, alice, b"/etc/a")
        assert refused == RpcFailure("PERMISSION_DENIED", "etcdserver: permission denied")
    finally:
        client.close()


def test_auth_survives_restart_and_kill9(subject_server):
    client = Client(subject_server.channel())
    try:
        _configure(client)
    finally:
        client.close()
    subject_server.stop()
    _start_with_auth_on(subject_server)
    _check_configured(subject_server, ["alice", "root"])
    client = Client(subject_server.channel())
    try:  # one more change, acknowledged just before the crash
        root = _login(client, "root", ROOT_PASSWORD)
        _auth(client, "UserAdd", root, name="bob", password="bob-secret")
    finally:
        client.close()
    subject_server.kill9()
    _start_with_auth_on(subject_server)
    _check_configured(subject_server, ["alice", "bob", "root"])


@pytest.mark.skipif(subject_is_etcd(), reason="reads our LMDB data file")
def test_passwords_are_stored_as_bcrypt_hashes_only(subject_server):
    client = Client(subject_server.channel())
    try:
        _configure(client)
        root = _login(client, "root", ROOT_PASSWORD)
        _auth(client, "UserChangePassword", root, name="alice", password="changed-secret-42")
    finally:
        client.close()
    subject_server.stop()
    data = (subject_server.data_dir / "data.mdb").read_bytes()
    for secret in (ROOT_PASSWORD, ALICE_PASSWORD, "changed-secret-42"):
        assert secret.encode() not in data
    assert data.count(b"$2a$04$") >= 2  # root's and alice's hashes, at --bcrypt-cost=4
    log = subject_server.log_path.read_bytes()
    for secret in (ROOT_PASSWORD, ALICE_PASSWORD, "changed-secret-42"):
        assert secret.encode() not in log
