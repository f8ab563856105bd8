"""Recorded histories against real etcd and ours: linearizable, watches valid.

etcd 3.4.23 (Debian's) answers RequestProgress out of order with events (its
bug fixed in 3.4.24; the kube-apiserver uses RequestProgress only from
3.4.31): our bookmarkable validator reports it, so etcd's runs send no
progress requests.
"""

import os
import shutil
import subprocess
import time

import pytest
from harness.processes import ServerProcess
from harness.rpc import Client
from kvhistory.faults import (
    abuse_fault,
    full_disk_fault,
    open_fds,
    pause_fault,
    restarts_fault,
)
from kvhistory.runner import run_and_check, spawn_recorder

from k0s_store.proto import rpc_pb2

LEASE_ID = 7_777
# The reference run of a fault that proves the checker on etcd once more; not
# in the pure-twin pass (it does not involve our code).
ETCD_AGAIN = pytest.param("etcd", marks=pytest.mark.slow)


@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_history_without_faults(servers, tmp_path, kind):
    server = servers(kind).wait_ready()
    report = run_and_check(server, tmp_path / "run", progress_requests=kind == "ours")
    print(f"\n{kind}: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert report.answered > 100 and report.watch_events > 0
    assert report.watch_events + report.watch_compactions > 50, report.summary()


@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_history_across_sigterm_and_kill9_restarts(servers, tmp_path, kind):
    """Every acknowledged write survives (the final read is checked too),
    answers stay linearizable, watches resume without a gap."""
    server = servers(kind).wait_ready()
    fault = restarts_fault(server, [(1.0, "sigterm"), (2.0, "kill9")])
    report = run_and_check(
        server, tmp_path / "run", seed=2, faults=fault, progress_requests=kind == "ours"
    )
    print(f"\n{kind}: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert len(report.faults) == 2 and report.answered_after_faults > 20


@pytest.mark.parametrize("kind", [ETCD_AGAIN, "ours"])
def test_history_with_misbehaving_clients(servers, tmp_path, kind):
    """A watcher that never reads, one killed mid-stream and 2,000 dropped
    connections leave the others served correctly, and no descriptor behind."""
    server = servers(kind).wait_ready()
    abuse = tmp_path / "abuse"
    abuse.mkdir()

    def spawn_watcher(ident: int):
        out = abuse / f"watcher-{ident}.jsonl"
        return spawn_recorder("watcher", server.endpoint, ident, ident, abuse / "stop", out)

    fds_before = open_fds(server.proc.pid)
    fault = abuse_fault(server, spawn_watcher, churn=2000, hold=4.0)
    report = run_and_check(
        server, tmp_path / "run", seed=3, faults=fault, progress_requests=kind == "ours"
    )
    print(f"\n{kind}: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert report.answered > 100
    deadline = time.monotonic() + 10
    while open_fds(server.proc.pid) > fds_before + 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert open_fds(server.proc.pid) <= fds_before + 10, (fds_before, open_fds(server.proc.pid))


@pytest.mark.parametrize("kind", [ETCD_AGAIN, "ours"])
def test_history_across_a_pause_longer_than_a_lease_ttl(servers, tmp_path, kind):
    """SIGSTOP for 3 s, then SIGCONT: calls in flight may land after the
    pause, the 2 s lease expires then (its key with it), the rest holds."""
    server = servers(kind).wait_ready()

    def lease_with_a_key(client) -> None:
        assert client.call("grant", id=LEASE_ID, ttl=2).status == "ok"
        assert client.call("put", key="k/leased", value="0", lease=LEASE_ID).status == "ok"

    fault = pause_fault(server, at=0.5, seconds=3.0)
    report = run_and_check(
        server,
        tmp_path / "run",
        seed=4,
        faults=fault,
        leases_expire=True,
        progress_requests=kind == "ours",
        preamble=lease_with_a_key,
    )
    print(f"\n{kind}: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert report.answered_after_faults > 20
    client = Client(server.channel())
    try:
        ttl = client.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE_ID))
        assert ttl.TTL == -1, f"the lease outlived a {kind} pause longer than its TTL: {ttl}"
        assert client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"k/leased")).count == 0
    finally:
        client.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only, as in CI), unmounted at teardown; grown by calling it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_history_across_a_full_disk(small_disk, tmp_path):
    """Our server on a disk that fills up mid-run, then grows: failed writes
    are not half-applied, nothing acknowledged is lost, it serves on."""
    server = ServerProcess("ours", small_disk / "server").start().wait_ready()

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)

    try:
        fault = full_disk_fault(server, tmp_path / "run" / "filler.jsonl", grow)
        report = run_and_check(server, tmp_path / "run", seed=5, faults=fault, watchers=1)
    finally:
        server.stop()
    print(f"\nours: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert report.answered_after_faults > 20
