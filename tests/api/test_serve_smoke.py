"""End to end: `python -m k0s_store serve` over TCP, IPv6, TLS (mTLS) and a
unix socket, driven with the generated stubs and with etcdctl."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from harness.certs import make_tls_files

from k0s_store.proto import rpc_pb2 as pb
from k0s_store.proto import rpc_pb2_grpc as stubs

READY_TIMEOUT = 30.0


class Served:
    """A running `k0s_store serve` and the addresses it bound."""

    def __init__(self, tmp: Path, urls: list[str], *extra: str) -> None:
        self.log = tmp / "serve.log"
        argv = [
            sys.executable,
            "-m",
            "k0s_store",
            "serve",
            f"--data-dir={tmp / 'data'}",
            "--listen-client-urls",
            ",".join(urls),
            *extra,
        ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        self.addresses = self._wait_ready()

    def _wait_ready(self) -> dict[str, str]:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if "ready to serve client requests" in text:
                found = re.findall(r"client requests on (\S+) \((\S+)\)", text)
                return {url: address for address, url in found}
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"server not ready:\n{self.log.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


def ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def served(tmp_path):
    tls = make_tls_files(tmp_path)
    urls = ["http://127.0.0.1:0", "https://127.0.0.1:0", "unix://k0s.sock"]
    if ipv6_loopback():
        urls.append("http://[::1]:0")
    server = Served(
        tmp_path,
        urls,
        f"--cert-file={tls.server_cert}",
        f"--key-file={tls.server_key}",
        f"--trusted-ca-file={tls.ca}",
        "--client-cert-auth",
        "--experimental-watch-progress-notify-interval=100ms",
    )
    server.tls = tls
    server.tmp = tmp_path
    yield server
    if server.proc.poll() is None:
        assert server.stop() == 0, server.log.read_text()


def channels(server):
    """One channel per listener kind."""
    tls = server.tls
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )
    out = {}
    for url, address in server.addresses.items():
        if url.startswith("https"):
            out["tls"] = grpc.secure_channel(address, credentials)
        elif url.startswith("unix"):
            out["unix"] = grpc.insecure_channel(f"unix:{server.tmp / address[len('unix:') :]}")
        elif "[" in address:
            out["ipv6"] = grpc.insecure_channel(address)
        else:
            out["tcp"] = grpc.insecure_channel(address)
    return out


def exercise(channel: grpc.Channel, key: bytes) -> None:
    kv, watch, lease = stubs.KVStub(channel), stubs.WatchStub(channel), stubs.LeaseStub(channel)
    put = kv.Put(pb.PutRequest(key=key, value=b"v1"), timeout=5)
    assert put.header.revision > 1 and put.header.raft_term == 2
    got = kv.Range(pb.RangeRequest(key=key), timeout=5)
    assert [(x.key, x.value) for x in got.kvs] == [(key, b"v1")]

    txn = kv.Txn(
        pb.TxnRequest(
            compare=[pb.Compare(target=pb.Compare.MOD, key=key, mod_revision=put.header.revision)],
            success=[
                pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"v2", prev_kv=True)),
                pb.RequestOp(request_range=pb.RangeRequest(key=key)),
            ],
        ),
        timeout=5,
    )
    assert txn.succeeded and txn.header.revision == put.header.revision + 1
    assert txn.responses[0].response_put.prev_kv.value == b"v1"
    assert txn.responses[1].response_range.kvs[0].value == b"v2"
    assert txn.responses[1].response_range.header.revision == txn.header.revision

    grant = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30), timeout=5)
    assert grant.ID and grant.TTL == 30
    alive = next(lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=grant.ID)]), timeout=5))
    assert (alive.ID, alive.TTL) == (grant.ID, 30)

    requests = [
        pb.WatchRequest(
            create_request=pb.WatchCreateRequest(
                key=key, start_revision=put.header.revision, prev_kv=True, progress_notify=True
            )
        )
    ]
    responses = watch.Watch(iter(requests), timeout=10)
    created = next(responses)
    assert created.created
    events = []
    while len(events) < 2:
        events += next(responses).events
    assert [(e.kv.value, e.prev_kv.value) for e in events] == [(b"v1", b""), (b"v2", b"v1")]
    progress = next(responses)  # a quiet progress_notify watcher hears from us every 100 ms
    assert not progress.events and progress.header.revision >= txn.header.revision
    responses.cancel()


def test_every_listener_serves_kv_watch_and_lease(served):
    for kind, channel in channels(served).items():
        exercise(channel, f"/smoke/{kind}".encode())


def test_tls_listener_requires_a_client_certificate(served):
    address = next(a for u, a in served.addresses.items() if u.startswith("https"))
    credentials = grpc.ssl_channel_credentials(root_certificates=served.tls.ca.read_bytes())
    kv = stubs.KVStub(grpc.secure_channel(address, credentials))
    with pytest.raises(grpc.RpcError) as exc:
        kv.Range(pb.RangeRequest(key=b"k"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_errors_carry_etcds_code_and_text(served):
    kv = stubs.KVStub(channels(served)["tcp"])
    with pytest.raises(grpc.RpcError) as exc:
        kv.Range(pb.RangeRequest(key=b""), timeout=5)
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    )
    with pytest.raises(grpc.RpcError) as exc:
        kv.Range(pb.RangeRequest(key=b"k", revision=10**6), timeout=5)
    assert exc.value.details() == "etcdserver: mvcc: required revision is a future revision"
    raw = channels(served)["tcp"].unary_unary("/etcdserverpb.KV/Put")
    with pytest.raises(grpc.RpcError) as exc:
        raw(b"\x0a\xff", timeout=5)
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    with pytest.raises(grpc.RpcError) as exc:
        raw(pb.PutRequest(key=b"k", value=b"x" * (3 << 20)).SerializeToString(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as exc:
        raw(pb.PutRequest(key=b"k", value=b"x" * (1600 << 10)).SerializeToString(), timeout=5)
    assert exc.value.details() == "etcdserver: request is too large"
    with pytest.raises(grpc.RpcError) as exc:
        stubs.AuthStub(channels(served)["tcp"]).AuthEnable(pb.AuthEnableRequest(), timeout=5)
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: root user does not exist",
    )


def test_maintenance_and_cluster_describe_one_member(served):
    channel = channels(served)["tcp"]
    status = stubs.MaintenanceStub(channel).Status(pb.StatusRequest(), timeout=5)
    assert status.version >= "3.4.31" and status.leader == status.header.member_id
    members = stubs.ClusterStub(channel).MemberList(pb.MemberListRequest(), timeout=5).members
    assert [m.ID for m in members] == [status.header.member_id]


@pytest.mark.etcd
@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl not installed")
def test_etcdctl_put_get_watch(served):
    address = next(a for u, a in served.addresses.items() if u.startswith("http://127"))
    env = {**os.environ, "ETCDCTL_API": "3"}
    base = ["etcdctl", f"--endpoints={address}", "--command-timeout=5s"]

    def run(*args: str) -> str:
        done = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("put", "/ctl/a", "1") == "OK\n"
    assert run("put", "/ctl/b", "2") == "OK\n"
    assert run("get", "--prefix", "/ctl/") == "/ctl/a\n1\n/ctl/b\n2\n"
    watcher = subprocess.Popen(
        [*base, "watch", "--prefix", "/ctl/", "--rev=1"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [watcher.stdout.readline() for _ in range(6)]
    finally:
        watcher.kill()
        watcher.wait()
    assert lines == ["PUT\n", "/ctl/a\n", "1\n", "PUT\n", "/ctl/b\n", "2\n"]
    assert "3.4.31" in run("endpoint", "status")
    assert run("del", "--prefix", "/ctl/") == "2\n"
