"""etcdctl against the subject alone: leases, lock, elect, endpoint, TLS, and
`check perf` (whose outputs carry random lease ids or timings)."""

import json
import re
import signal
import subprocess

import pytest
from harness.etcdctl import Etcdctl, LineReader

pytestmark = pytest.mark.etcd


@pytest.fixture
def ctl(subject_server) -> Etcdctl:
    return Etcdctl(subject_server)


def _grant(ctl: Etcdctl, ttl: int) -> str:
    out = ctl.out("lease", "grant", str(ttl))
    match = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\((\d+)s\)\n", out)
    assert match, out
    assert int(match.group(2)) == max(ttl, 2)
    return match.group(1)


def test_lease_grant_put_timetolive_list_revoke(ctl):
    lease = _grant(ctl, 60)
    ctl.out("put", "k1", "v", f"--lease={lease}")
    ctl.out("put", "k2", "v", f"--lease={lease}")
    ttl = ctl.out("lease", "timetolive", lease, "--keys")
    match = re.fullmatch(
        rf"lease {lease} granted with TTL\(60s\), remaining\((\d+)s\), attached keys\((.*)\)\n", ttl
    )
    assert match and 57 <= int(match.group(1)) <= 60, ttl
    assert sorted(match.group(2).strip("[]").split()) == ["k1", "k2"]
    assert lease in ctl.out("lease", "list")
    record = ctl.json("get", "k1")["kvs"][0]
    assert record["lease"] == int(lease, 16)
    assert ctl.out("lease", "revoke", lease) == f"lease {lease} revoked\n"
    assert ctl.out("get", "k", "--prefix") == ""
    assert "already expired" in ctl.out("lease", "timetolive", lease)
    failed = ctl.run("lease", "revoke", lease, check=False)
    assert failed.returncode != 0 and "requested lease not found" in failed.stderr


def test_lease_keep_alive(ctl):
    lease = _grant(ctl, 2)
    once = ctl.out("lease", "keep-alive", "--once", lease)
    assert once == f"lease {lease} keepalived with TTL(2)\n"
    keeper = ctl.spawn("lease", "keep-alive", lease)
    reader = LineReader(keeper.stdout)
    ctl.out("put", "kept", "v", f"--lease={lease}")
    lines = reader.read_lines(3, timeout=5)  # renewed about every TTL/3
    keeper.send_signal(signal.SIGINT)
    keeper.wait(10)
    assert all(line == f"lease {lease} keepalived with TTL(2)" for line in lines), lines
    assert ctl.out("get", "kept", "--print-value-only") == "v\n"


def _first_line(process: subprocess.Popen, timeout: float) -> tuple[LineReader, str | None]:
    reader = LineReader(process.stdout)
    return reader, reader.readline(timeout)


def test_lock_second_contender_waits(ctl):
    first = ctl.spawn("lock", "mutex")
    _, first_key = _first_line(first, 10)
    assert first_key and first_key.startswith("mutex/"), first.stderr
    second = ctl.spawn("lock", "mutex")
    second_reader, second_key = _first_line(second, 2)
    assert second_key is None, "second contender got the lock while the first held it"
    first.send_signal(signal.SIGINT)
    first.wait(10)
    second_key = second_reader.readline(10)
    assert second_key and second_key.startswith("mutex/") and second_key != first_key
    second.send_signal(signal.SIGINT)
    second.wait(10)
    assert ctl.out("lock", "mutex", "echo", "held") == "held\n"


def test_elect_second_candidate_waits(ctl):
    leader = ctl.spawn("elect", "election", "alpha")
    leader_reader = LineReader(leader.stdout)
    assert leader_reader.read_lines(2, 10)[1] == "alpha"
    observer = ctl.spawn("elect", "-l", "election")
    observer_reader = LineReader(observer.stdout)
    assert observer_reader.read_lines(2, 10)[1] == "alpha"
    candidate = ctl.spawn("elect", "election", "beta")
    candidate_reader = LineReader(candidate.stdout)
    assert candidate_reader.readline(2) is None, "beta elected while alpha leads"
    leader.send_signal(signal.SIGINT)
    leader.wait(10)
    assert candidate_reader.read_lines(2, 10)[1] == "beta"
    assert observer_reader.read_lines(2, 10)[1] == "beta"
    for process in (candidate, observer):
        process.send_signal(signal.SIGINT)
        process.wait(10)


def test_endpoint_status_and_health(ctl, subject_server):
    health = ctl.run("endpoint", "health")
    assert "is healthy" in health.stdout + health.stderr
    status = json.loads(ctl.out("endpoint", "status", "-w", "json"))[0]
    assert status["Endpoint"] == subject_server.url
    assert status["Status"]["header"]["revision"] >= 1
    assert status["Status"]["dbSize"] > 0
    assert status["Status"]["leader"] == status["Status"]["header"]["member_id"]
    assert re.fullmatch(r"3\.\d+\.\d+", status["Status"]["version"])


def test_tls_with_client_certificates(servers, tls_files):
    from harness.processes import subject_kind

    server = servers(subject_kind(), tls=tls_files).wait_ready()
    ctl = Etcdctl(server)
    ctl.out("put", "secure", "yes")
    assert ctl.out("get", "secure", "--print-value-only") == "yes\n"
    ctl.out("put", "secure", "again")
    watcher = ctl.spawn("watch", "secure", "--rev=2")  # replay: no race with the puts
    reader = LineReader(watcher.stdout)
    assert reader.read_lines(6, 10) == ["PUT", "secure", "yes", "PUT", "secure", "again"]
    watcher.send_signal(signal.SIGINT)
    watcher.wait(10)
    no_client_cert = subprocess.run(
        ["etcdctl", f"--endpoints={server.url}", f"--cacert={tls_files.ca}",
         "--dial-timeout=2s", "--command-timeout=3s", "get", "secure"],
        capture_output=True, text=True, env=ctl.env(), timeout=30,
    )  # fmt: skip
    assert no_client_cert.returncode != 0


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_check_perf_load_m(ctl):
    """`check perf --load=m` passes: throughput, slowest request, deviation.

    One retry: on this shared 2-core machine a single stalled fsync has once
    (in about six runs) pushed the slowest of ~60k requests past 0.5 s while
    throughput and deviation passed. Two failing runs in a row fail the test.
    """
    for _ in range(2):
        result = ctl.run("check", "perf", "--load=m", check=False, timeout=150)
        if result.returncode == 0 and "PASS" in result.stdout and "FAIL" not in result.stdout:
            return
    pytest.fail(result.stdout + result.stderr[-2000:])
