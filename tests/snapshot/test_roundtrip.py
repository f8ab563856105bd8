"""Moves between k0s-store and a real etcd 3.4, both ways, revisions intact.

- ours -> `etcdctl snapshot save` -> `etcdctl snapshot status/restore` -> a
  real etcd on the restored dir: the same keys, history, leases, HashKV.
- etcd -> `k0s-store snapshot save` -> `k0s-store snapshot restore` -> ours,
  and `k0s-store import --etcd-data-dir` of the stopped etcd -> ours: the same.
After each move, the same requests go to the source and to the restored
server, and their answers agree (differential).
"""

import json
import subprocess

import pytest
from harness.differential import Pair
from harness.etcdctl import Etcdctl
from harness.rpc import Client
from snapshot_history import (
    LEASE_WITH_KEYS,
    assert_same_state,
    call,
    write_history,
)
from snapshot_tools import etcdctl_restore, k0s_store

from k0s_store.proto import rpc_pb2 as pb

pytestmark = pytest.mark.etcd


def continue_both(source: Client, restored: Client, compact_rev: int) -> None:
    """Writes, reads, a lease revoke and a compaction answer alike on both."""
    pair = Pair(source, restored)
    pair.same("KV", "Put", pb.PutRequest(key=b"/registry/pods/p01", value=b"after", prev_kv=True))
    create = pb.TxnRequest(
        compare=[pb.Compare(key=b"/txn/a", target=pb.Compare.MOD, result=pb.Compare.EQUAL)],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/a", value=b"x"))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"/txn/a"))],
    )
    pair.same("KV", "Txn", create)
    pair.same(
        "KV",
        "DeleteRange",
        pb.DeleteRangeRequest(key=b"/bulk/1", range_end=b"/bulk/2", prev_kv=True),
    )
    pair.same("KV", "Put", pb.PutRequest(key=b"/leased/c", value=b"c", lease=LEASE_WITH_KEYS))
    pair.same("Lease", "LeaseRevoke", pb.LeaseRevokeRequest(ID=LEASE_WITH_KEYS))
    pair.same("KV", "Range", pb.RangeRequest(key=b"/leased/", range_end=b"/leased0"))
    pair.same(
        "KV",
        "Range",
        pb.RangeRequest(key=b"/registry/", range_end=b"/registry0", revision=compact_rev + 1),
    )
    rev = pair.same("KV", "Range", pb.RangeRequest(key=b"/")).header.revision
    pair.same("KV", "Compact", pb.CompactionRequest(revision=rev - 2, physical=True))
    pair.same("Maintenance", "HashKV", pb.HashKVRequest(revision=0))
    pair.same("KV", "Range", pb.RangeRequest(key=b"\0", range_end=b"\0", revision=rev - 3))


def test_ours_to_etcd(servers, prepared, tmp_path):
    ours = servers("ours").wait_ready()
    source = Client(ours.channel())
    compact_rev = write_history(source)
    snapshot = tmp_path / "ours.db"
    Etcdctl(ours).run("snapshot", "save", str(snapshot))
    status = json.loads(
        subprocess.run(
            ["etcdctl", "snapshot", "status", str(snapshot), "-w", "json"],
            capture_output=True,
            text=True,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            check=True,
        ).stdout
    )
    revision = call(source, "KV", "Range", pb.RangeRequest(key=b"/")).header.revision
    assert status["revision"] == revision
    assert status["totalSize"] == snapshot.stat().st_size - 32
    etcd = prepared("etcd", "restored-etcd")
    etcdctl_restore(snapshot, etcd)
    etcd.start().wait_ready()
    restored = Client(etcd.channel())
    try:
        assert_same_state(source, [restored], compact_rev)
        continue_both(source, restored, compact_rev)
    finally:
        restored.close()
        source.close()


def test_etcd_to_ours_by_snapshot_and_by_data_dir(servers, prepared, tmp_path):
    """One etcd history moved twice: `k0s-store snapshot save` of the running
    etcd then `snapshot restore`, and `import` of its stopped data dir."""
    etcd = servers("etcd").wait_ready()
    source = Client(etcd.channel())
    compact_rev = write_history(source)
    source.close()
    snapshot = tmp_path / "etcd.db"
    saved = k0s_store("snapshot", "save", snapshot, "--endpoints", etcd.url)
    assert saved.returncode == 0, saved.stderr
    etcd.stop()
    from_snapshot, from_dir = prepared("ours", "from-snapshot"), prepared("ours", "from-dir")
    restored_run = k0s_store("snapshot", "restore", snapshot, "--data-dir", from_snapshot.data_dir)
    assert restored_run.returncode == 0, restored_run.stderr
    assert f", compacted at {compact_rev}: " in restored_run.stdout
    assert "note:" not in restored_run.stdout  # nothing of etcd's left behind
    imported = k0s_store(
        "import", "--etcd-data-dir", etcd.data_dir, "--data-dir", from_dir.data_dir
    )
    assert imported.returncode == 0, imported.stderr
    for server in (etcd, from_snapshot, from_dir):
        server.start()
    for server in (etcd, from_snapshot, from_dir):
        server.wait_ready()
    clients = [Client(server.channel()) for server in (etcd, from_snapshot, from_dir)]
    try:
        assert_same_state(clients[0], clients[1:], compact_rev)
        continue_both(clients[0], clients[1], compact_rev)
    finally:
        for client in clients:
            client.close()


def test_import_refuses_a_running_etcd(etcd_server, tmp_path):
    result = k0s_store(
        "import", "--etcd-data-dir", etcd_server.data_dir, "--data-dir", tmp_path / "d"
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "stop the etcd using it first" in result.stderr
    assert not (tmp_path / "d").exists()
