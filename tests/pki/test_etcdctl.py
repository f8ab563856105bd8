"""etcdctl, with the apiserver-etcd-client certificate, talks to a store serving
etcd/server, before and after ``k0s-pki rotate`` and across an etcd CA rotation.

The server is started on the PKI's files (``--cert-file etcd/server.crt
--key-file etcd/server.key --trusted-ca-file etcd/ca.crt
--client-cert-auth``) and restarted after each change of its own files, as a
server that reads them at start needs.
"""

import shutil
import subprocess

import pytest
from harness.certs import TLSFiles
from harness.processes import ServerProcess, subject_kind

from k0s_pki.ca_rotation import plan_phase
from k0s_pki.cli import main

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl not installed"),
]


def _tls(layout) -> TLSFiles:
    return TLSFiles(
        ca=layout.cert("etcd/ca"),
        server_cert=layout.cert("etcd/server"),
        server_key=layout.key("etcd/server"),
        client_cert=layout.cert("apiserver-etcd-client"),
        client_key=layout.key("apiserver-etcd-client"),
    )


def _etcdctl(layout, server, *args) -> str:
    result = subprocess.run(
        [
            "etcdctl",
            f"--endpoints={server.url}",
            f"--cacert={layout.cert('etcd/ca')}",
            f"--cert={layout.cert('apiserver-etcd-client')}",
            f"--key={layout.key('apiserver-etcd-client')}",
            "--command-timeout=10s",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"ETCDCTL_API": "3"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def server(layout, tmp_path):
    proc = ServerProcess(subject_kind(), tmp_path / "server", tls=_tls(layout)).start()
    proc.wait_ready()
    yield proc
    proc.stop()


def test_put_get_before_and_after_rotate(layout, config, server):
    assert _etcdctl(layout, server, "put", "/k", "before") == "OK\n"
    assert _etcdctl(layout, server, "get", "/k", "--print-value-only") == "before\n"
    assert main(["rotate", "--pki-dir", str(layout.pki_dir)]) == 0
    # New client certificate, server still on its old one: same CA, works.
    assert _etcdctl(layout, server, "get", "/k", "--print-value-only") == "before\n"
    server.restart()
    assert _etcdctl(layout, server, "put", "/k", "after") == "OK\n"
    assert _etcdctl(layout, server, "get", "/k", "--print-value-only") == "after\n"


def test_etcd_ca_rotation(layout, config, server):
    assert _etcdctl(layout, server, "put", "/k", "v0") == "OK\n"
    for i, phase in enumerate(("prepare", "switch", "finish"), start=1):
        plan_phase(layout, "etcd-ca", phase, config).apply()
        # The client already uses the new files; the server has not reloaded yet.
        assert _etcdctl(layout, server, "put", "/k", f"v{i}") == "OK\n"
        server.restart()
        assert _etcdctl(layout, server, "put", "/k", f"v{i}") == "OK\n"
    assert _etcdctl(layout, server, "get", "/k", "--print-value-only") == "v3\n"
