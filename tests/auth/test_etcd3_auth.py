"""The python `etcd3` client logs in with a password and is held to its role,
the same on a real etcd and on ours (each client run in its own process: see
etcd3_auth_driver.py)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.rpc import Client

from k0s_store.proto import auth_pb2
from k0s_store.proto import rpc_pb2 as pb

DRIVER = Path(__file__).with_name("etcd3_auth_driver.py")

# find_spec, not import: etcd3's stubs would clash with ours in this process.
pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(
        importlib.util.find_spec("etcd3") is None, reason="python etcd3 client not installed"
    ),
]


def _set_up(server) -> None:
    """root, a role with READWRITE on /app/, alice holding it; auth enabled."""
    client = Client(server.channel())
    auth = client.stubs["Auth"]
    try:
        auth.UserAdd(pb.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        auth.RoleAdd(pb.AuthRoleAddRequest(name="app"), timeout=10)
        app = auth_pb2.Permission(
            permType=auth_pb2.Permission.READWRITE, key=b"/app/", range_end=b"/app0"
        )
        auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name="app", perm=app))
        auth.UserAdd(pb.AuthUserAddRequest(name="alice", password="alicepw"), timeout=10)
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="alice", role="app"), timeout=10)
        auth.AuthEnable(pb.AuthEnableRequest(), timeout=10)
    finally:
        client.close()


def _drive(server, user: str, password: str) -> dict:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    host, port = server.endpoint.rsplit(":", 1)
    tls = server.tls
    pki = [str(tls.ca), str(tls.client_cert), str(tls.client_key)]
    result = subprocess.run(
        [sys.executable, str(DRIVER), host, port, *pki, user, password],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_etcd3_client_as_a_user_with_a_role(servers, tls_files):
    etcd = servers("etcd", tls=tls_files, extra_args=["--bcrypt-cost=4"])
    ours = servers("ours", tls=tls_files, extra_args=["--bcrypt-cost=4"])
    for server in (etcd.wait_ready(), ours.wait_ready()):
        _set_up(server)
    alice = _drive(ours, "alice", "alicepw")
    assert alice["put"] == "ok" and alice["watched"] == ["PutEvent", "/app/a", "1"]
    assert alice["put_outside"] == "PERMISSION_DENIED: etcdserver: permission denied"
    assert alice == _drive(etcd, "alice", "alicepw")
    wrong = _drive(ours, "alice", "nope")
    assert wrong == {
        "login": "INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password"
    }
    assert wrong == _drive(etcd, "alice", "nope")
