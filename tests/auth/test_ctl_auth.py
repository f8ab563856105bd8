"""Black-box: an operator's auth session with the real `etcdctl` 3.4, under
mutual TLS with --client-cert-auth, run on a real etcd and on ours; every
step must print the same and exit the same.

The client certificate's CN ("client") is a user: without --user, etcdctl's
calls act as that user.
"""

import pytest
from harness.etcdctl import Etcdctl

pytestmark = [pytest.mark.etcd]

ROOT = ("--user", "root:rootpw")
ALICE = ("--user", "alice:alicepw")
SESSION = [
    ("auth", "enable"),  # refused: no root user yet
    ("user", "add", "root:rootpw"),
    ("role", "add", "root"),
    ("user", "grant-role", "root", "root"),
    ("role", "add", "app"),
    ("role", "grant-permission", "app", "readwrite", "/app/", "--prefix"),
    ("role", "grant-permission", "app", "read", "/shared"),
    ("user", "add", "alice:alicepw"),
    ("user", "grant-role", "alice", "app"),
    ("user", "add", "client", "--no-password"),  # the certificate's CN
    ("user", "grant-role", "client", "app"),
    ("put", "/shared", "s"),
    ("auth", "enable"),
    (*ALICE, "put", "/app/a", "1"),
    (*ALICE, "put", "/etc/a", "1"),  # outside her prefix
    (*ALICE, "put", "/shared", "x"),  # read only
    (*ALICE, "get", "/shared"),
    (*ALICE, "get", "/app/", "--prefix"),
    (*ALICE, "get", "", "--prefix"),
    (*ALICE, "user", "list"),
    ("--user", "alice:wrong", "get", "/app/a"),
    ("put", "/app/cn", "2"),  # as "client", by certificate
    ("put", "/etc/cn", "2"),
    ("get", "/app/", "--prefix", "--keys-only"),
    ("role", "list"),
    (*ROOT, "user", "list"),
    (*ROOT, "role", "get", "app"),
    (*ROOT, "user", "get", "alice"),
    (*ROOT, "user", "delete", "root"),
    (*ROOT, "role", "revoke-permission", "app", "/app/", "--prefix"),
    (*ALICE, "get", "/app/a"),
    (*ROOT, "auth", "disable"),
    ("get", "", "--prefix"),
]


def _error_lines(stderr: str) -> list[str]:
    """etcdctl's own error lines (its retry warnings carry random client ids)."""
    return [line for line in stderr.splitlines() if line.startswith("Error")]


def _run_session(server) -> list[tuple]:
    ctl = Etcdctl(server)
    out = []
    for step in SESSION:
        result = ctl.run(*step, check=False)
        out.append((step, result.returncode, result.stdout, _error_lines(result.stderr)))
    return out


def test_ctl_auth_session_with_client_certificates(servers, tls_files):
    etcd = servers("etcd", tls=tls_files, extra_args=["--bcrypt-cost=4"])
    ours = servers("ours", tls=tls_files, extra_args=["--bcrypt-cost=4"])
    etcd.wait_ready()
    ours.wait_ready()
    for expected, got in zip(_run_session(etcd), _run_session(ours), strict=True):
        assert got == expected
