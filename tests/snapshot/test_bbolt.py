"""The bbolt writer against our reader and against etcd's own bbolt (etcdctl
snapshot status runs bbolt's Tx.Check and hashes every item), and our reader
on a file etcd wrote."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from harness.etcdctl import Etcdctl
from harness.rpc import Client
from snapshot_history import call
from snapshot_tools import sample_buckets, write_file

from k0s_store.core import crc
from k0s_store.proto import rpc_pb2 as pb
from k0s_store.snapshot import bbolt_format as fmt
from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.snapshot_file import open_snapshot


def etcd_status_hash(buckets: dict) -> tuple[int, int]:
    """What `etcdctl snapshot status` reports: crc32c over every bucket name
    and item, and the number of items."""
    checksum, total = 0, 0
    for name in sorted(buckets):
        checksum = crc.crc32c(name, checksum)
        for key, value in buckets[name]:
            checksum = crc.crc32c(value, crc.crc32c(key, checksum))
            total += 1
    return checksum, total


@pytest.mark.parametrize("page_size", [4096, 1024])
def test_writer_output_reads_back_whole(tmp_path, page_size):
    buckets = sample_buckets()
    path = tmp_path / "out.db"
    write_file(path, buckets, page_size)
    with BoltFile(path) as bolt:
        assert bolt.page_size == page_size
        assert bolt.buckets() == sorted(buckets)
        walked: dict[bytes, list] = {name: [] for name in buckets}
        for name, key, value in bolt.walk():
            walked[name].append((key, value))
    assert walked == buckets


def _root_values(path: Path) -> dict[bytes, bytes]:
    with BoltFile(path) as bolt:
        return dict(bolt._top_level(check=False))


def test_small_buckets_are_inline_and_large_ones_trees(tmp_path):
    path = tmp_path / "out.db"
    write_file(path, sample_buckets(), 4096)
    roots = {
        name: fmt.BUCKET_HEADER.unpack_from(value)[0] for name, value in _root_values(path).items()
    }
    assert roots[b"meta"] == roots[b"empty"] == 0
    assert roots[b"many"] > 3 and roots[b"huge"] > 3 and roots[b"z"] > 3


@pytest.mark.etcd
@pytest.mark.parametrize("page_size", [4096, 1024])
def test_etcds_bbolt_checks_and_hashes_the_writer_output(tmp_path, page_size):
    buckets = sample_buckets()
    path = tmp_path / "out.db"
    write_file(path, buckets, page_size)
    status = subprocess.run(
        ["etcdctl", "snapshot", "status", str(path), "-w", "json"],
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    assert status.returncode == 0, status.stderr
    reported = json.loads(status.stdout)
    checksum, total = etcd_status_hash(buckets)
    assert (reported["hash"], reported["totalKey"]) == (checksum, total)
    assert reported["totalSize"] == path.stat().st_size


@pytest.mark.etcd
def test_reader_walks_a_snapshot_etcd_wrote(etcd_server, tmp_path):
    client = Client(etcd_server.channel())
    for i in range(300):
        call(client, "KV", "Put", pb.PutRequest(key=b"/k/%03d" % i, value=os.urandom(100 + i)))
    call(client, "Lease", "LeaseGrant", pb.LeaseGrantRequest(ID=77, TTL=100))
    etcd_hash = call(client, "Maintenance", "HashKV", pb.HashKVRequest()).hash
    client.close()
    path = tmp_path / "etcd.db"
    Etcdctl(etcd_server).run("snapshot", "save", str(path))
    with open_snapshot(path) as bolt:
        names = bolt.buckets()
        items = list(bolt.walk())  # every page reached once or free
        roots = {n: fmt.BUCKET_HEADER.unpack_from(v)[0] for n, v in bolt._top_level(check=False)}
    assert {b"key", b"meta", b"lease", b"members", b"cluster", b"alarm"} <= set(names)
    assert 0 in roots.values(), "etcd inlines its small buckets"
    checksum = crc.crc32c(b"key")
    for name, key, value in items:
        if name == b"key":
            checksum = crc.crc32c(value, crc.crc32c(key, checksum))
    assert checksum == etcd_hash
    leases = [key for name, key, _ in items if name == b"lease"]
    assert leases == [(77).to_bytes(8, "big")]
