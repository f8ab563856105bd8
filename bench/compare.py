"""Real etcd and k0s-store side by side, same machine, same loads.

Starts each server in turn on a fresh data directory and runs:
- `etcdctl check perf --load=m` and `--load=l` (60 s each; throughput and
  slowest request parsed from its output),
- a multi-process gRPC put load and a serializable single-key range load
  (N client processes, bounded duration; throughput and p99 latency),
and prints a table with server CPU seconds per operation (utime+stime deltas
from /proc/<pid>/stat) and the ratio ours/etcd. Bounded: about 5-6 minutes
with the defaults.

Usage: .venv/bin/python bench/compare.py [--clients 4] [--seconds 10] [--skip-perf]
"""

import argparse
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness.processes import ServerProcess

KEYSPACE = 1000
VALUE = b"v" * 256


@dataclass
class Result:
    """One load on one server."""

    ops_per_s: float
    latency_ms: float  # p99 for gRPC loads, slowest request for check perf
    cpu_us_per_op: float
    note: str = ""


def _worker(endpoint: str, op: str, seconds: float, ready, go, queue) -> None:
    import grpc

    from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

    latencies = []
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Range(rpc_pb2.RangeRequest(key=b"warm-up"))
        ready.release()
        go.wait()
        number = 0
        deadline = time.monotonic() + seconds
        while (start := time.monotonic()) < deadline:
            key = b"bench/%06d" % (number % KEYSPACE)
            if op == "put":
                kv.Put(rpc_pb2.PutRequest(key=key, value=VALUE))
            else:
                kv.Range(rpc_pb2.RangeRequest(key=key, serializable=True))
            latencies.append(time.monotonic() - start)
            number += 1
    queue.put(latencies)


def fill_keyspace(server: ServerProcess) -> None:
    """One put per key, so the range load reads real values."""
    from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

    with server.channel() as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for number in range(KEYSPACE):
            kv.Put(rpc_pb2.PutRequest(key=b"bench/%06d" % number, value=VALUE))


def grpc_load(server: ServerProcess, op: str, clients: int, seconds: float) -> Result:
    """`clients` processes doing `op` in a closed loop for `seconds`."""
    context = multiprocessing.get_context("spawn")
    queue, ready, go = context.Queue(), context.Semaphore(0), context.Event()
    workers = [
        context.Process(target=_worker, args=(server.endpoint, op, seconds, ready, go, queue))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:  # all connected: measure from the same instant
        ready.acquire()
    cpu_before = server.cpu_seconds()
    go.set()
    latencies = [latency for _ in workers for latency in queue.get()]
    cpu_after = server.cpu_seconds()
    for worker in workers:
        worker.join()
    latencies.sort()
    count = len(latencies)
    return Result(
        ops_per_s=count / seconds,
        latency_ms=latencies[int(count * 0.99) - 1] * 1000 if count else float("nan"),
        cpu_us_per_op=(cpu_after - cpu_before) / max(count, 1) * 1e6,
        note="p99",
    )


def check_perf(server: ServerProcess, load: str) -> Result:
    """`etcdctl check perf --load=<load>`: 60 s of puts at a target rate."""
    cpu_before = server.cpu_seconds()
    out = subprocess.run(
        ["etcdctl", f"--endpoints={server.url}", "check", "perf", f"--load={load}"],
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        timeout=240,
    ).stdout
    cpu_after = server.cpu_seconds()
    throughput = re.search(r"Throughput (?:is|too low:) (\d+) writes/s", out)
    slowest = re.search(r"Slowest request took (?:too long: )?([\d.]+)s", out)
    ops = float(throughput.group(1)) if throughput else float("nan")
    failures = re.findall(
        r"^(?:FAIL: )?(.*(?:too low|too long|too high|ERROR|errors).*)$", out, re.M
    )
    verdict = "PASS" if re.search(r"^PASS$", out, re.M) else "FAIL " + "; ".join(failures)[:80]
    return Result(
        ops_per_s=ops,
        latency_ms=float(slowest.group(1)) * 1000 if slowest else float("nan"),
        cpu_us_per_op=(cpu_after - cpu_before) / max(ops * 60, 1) * 1e6,
        note=f"slowest, {verdict}",
    )


def run_all(kind: str, workdir: Path, args) -> dict[str, Result]:
    """Every load on `kind`, each on a fresh server (no load inherits a history)."""
    loads = [] if args.skip_perf else [(f"check perf {load}", "perf", load) for load in "ml"]
    loads += [(f"grpc {op} x{args.clients}", "grpc", op) for op in ("put", "range")]
    results: dict[str, Result] = {}
    for index, (name, tool, what) in enumerate(loads):
        print(f"[{kind}] {name} ...", flush=True)
        server = ServerProcess(kind, workdir / f"{kind}-{index}").start().wait_ready()
        try:
            if tool == "perf":
                results[name] = check_perf(server, what)
            else:
                if what == "range":
                    fill_keyspace(server)
                results[name] = grpc_load(server, what, args.clients, args.seconds)
        finally:
            server.stop()
    return results


def print_table(etcd: dict[str, Result], ours: dict[str, Result]) -> None:
    header = (
        f"{'load':<16} {'etcd op/s':>10} {'ours op/s':>10} {'ratio':>6} "
        f"{'etcd ms':>8} {'ours ms':>8} {'etcd cpu us/op':>15} {'ours cpu us/op':>15} "
        f"{'ratio':>6}  note (etcd | ours)"
    )
    print(header)
    print("-" * len(header))
    for name, ref in etcd.items():
        sub = ours[name]
        print(
            f"{name:<16} {ref.ops_per_s:>10.0f} {sub.ops_per_s:>10.0f} "
            f"{sub.ops_per_s / ref.ops_per_s:>6.2f} {ref.latency_ms:>8.1f} {sub.latency_ms:>8.1f} "
            f"{ref.cpu_us_per_op:>15.0f} {sub.cpu_us_per_op:>15.0f} "
            f"{sub.cpu_us_per_op / ref.cpu_us_per_op:>6.2f}  {ref.note} | {sub.note}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="client processes per gRPC load")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of a gRPC load")
    parser.add_argument("--skip-perf", action="store_true", help="skip etcdctl check perf")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k0s-bench-") as tmp:
        etcd = run_all("etcd", Path(tmp), args)
        ours = run_all("ours", Path(tmp), args)
    print_table(etcd, ours)


if __name__ == "__main__":
    main()
