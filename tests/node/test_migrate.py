"""`k0s-store migrate`: a round trip k0s-store -> real etcd -> fresh k0s-store.

Keys span several pages and batches (1,500 small keys, values of 600 KiB
that cannot share a batch, binary keys, an empty value) and some carry a
lease, which must exist on the target with the same ID. Every hop is
verified by the command itself and again here, key by key.
"""

import subprocess
import sys

import pytest
from harness.processes import etcd_available

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd binary not installed")

SMALL = 1500
BIG = 3


def _fill(channel) -> int:
    kv, lease = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)
    lease_id = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600)).ID
    puts = [rpc_pb2.PutRequest(key=f"/registry/small/{i:05}".encode(), value=f"v{i}".encode())
            for i in range(SMALL)]  # fmt: skip
    puts += [
        rpc_pb2.PutRequest(key=b"\xff\x00binary", value=b"\x00\x01\x02"),
        rpc_pb2.PutRequest(key=b"/empty", value=b""),
        rpc_pb2.PutRequest(key=b"/events/a", value=b"ttl", lease=lease_id),
        rpc_pb2.PutRequest(key=b"/events/b", value=b"ttl", lease=lease_id),
    ]
    for start in range(0, len(puts), 100):
        ops = [rpc_pb2.RequestOp(request_put=p) for p in puts[start : start + 100]]
        kv.Txn(rpc_pb2.TxnRequest(success=ops))
    kv.Put(rpc_pb2.PutRequest(key=b"/registry/small/00007", value=b"updated"))  # a 2nd version
    for i in range(BIG):  # one a request: two would pass the 1.5 MiB request limit
        kv.Put(rpc_pb2.PutRequest(key=f"/big/{i}".encode(), value=bytes([i]) * 600 * 1024))
    return lease_id


def _dump(channel) -> dict[bytes, tuple[bytes, int]]:
    reply = rpc_pb2_grpc.KVStub(channel).Range(
        rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"), timeout=30
    )
    return {kv.key: (kv.value, kv.lease) for kv in reply.kvs}


def _migrate(source: str, target: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "k0s_store", "migrate", f"--from={source}", f"--to={target}",
         *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_round_trip_through_real_etcd(servers):
    ours, etcd, back = servers("ours"), servers("etcd"), servers("ours")
    for server in (ours, etcd, back):
        server.wait_ready()
    with ours.channel() as a, etcd.channel() as b, back.channel() as c:
        lease_id = _fill(a)
        original = _dump(a)
        assert len(original) == SMALL + BIG + 4

        done = _migrate(ours.url, etcd.url)
        assert done.returncode == 0, done.stderr
        total = len(original)
        assert done.stdout.startswith(f"copied and verified {total} keys and 1 leases in ")
        assert f"{ours.url} -> {etcd.url}: {total} keys at revision " in done.stderr
        assert done.stderr.count(f"{total}/{total}") == 2  # both bars reached the end
        assert _dump(b) == original
        ttl = rpc_pb2_grpc.LeaseStub(b).LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id))
        assert 0 < ttl.TTL <= 600

        done = _migrate(etcd.url, back.url, "--quiet")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert _dump(c) == original

        # A non-empty target is refused in one line; --force writes over it.
        refused = _migrate(ours.url, etcd.url)
        assert refused.returncode == 1
        assert refused.stderr == (
            f"k0s-store migrate: error: target {etcd.url} is not empty ({total} keys): "
            "migrate into an empty cluster, or pass --force to write over it\n"
        )
        rpc_pb2_grpc.KVStub(b).Put(rpc_pb2.PutRequest(key=b"/only-on-target", value=b"x"))
        forced = _migrate(ours.url, etcd.url, "--force", "--quiet")
        assert forced.returncode == 0, forced.stderr
        assert "1 keys the target already had" in forced.stdout


def test_unreachable_source_is_one_line():
    done = _migrate("http://127.0.0.1:1", "http://127.0.0.1:2", "--quiet")
    assert done.returncode == 1
    assert done.stderr.startswith("k0s-store migrate: error: http://127.0.0.1:1: ")
    assert done.stderr.count("\n") == 1
