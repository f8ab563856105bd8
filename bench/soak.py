"""Soak: N minutes of mixed load on one server, with its resources sampled.

    .venv/bin/python bench/soak.py [--minutes 30] [--kind ours|etcd]
        [--transport native|grpcio] [--workers 3] [--watchers 4] [--interval 10]
        [--png soak.png]

Load (each worker process its own connection, one call at a time): puts of
1 KiB values over 2,000 keys, gets, prefix ranges (limit 100), deletes,
compare-and-swap txns, leases (granted with a 3 s TTL and a key, most left to
expire, some revoked); watcher processes keep prefix watches open and read
every event; the server is compacted every 30 s to 1,000 revisions back (as
the kube-apiserver's compactor, faster).

Every `--interval` seconds a row: RSS, its anonymous part (the heaps, without
LMDB's mapped file pages), open fds, data file size, calls and p99 latency in
the interval. `--transport` picks our server's gRPC transport
(K0S_STORE_TRANSPORT; default: the server's default). At the end: growth
flags (RSS beyond 10% of its level after warm-up, fds growing, data file
growing after compactions settled), and a PNG plot when matplotlib is
importable. Exits 1 when a flag is raised.
"""

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness.processes import ServerProcess  # noqa: E402

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc  # noqa: E402

KEYS = 2000
VALUE = b"v" * 1024
COMPACT_EVERY_S = 30.0
COMPACT_KEEP = 1000
WARMUP_FRACTION = 0.2


def _worker(endpoint: str, seed: int, stop, results) -> None:
    """Mixed calls until `stop`; every second, (now, [latencies]) to `results`."""
    channel = grpc.insecure_channel(endpoint)
    kv, lease = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)
    rng = random.Random(seed)
    latencies: list[float] = []
    flushed = time.monotonic()
    while not stop.is_set():
        key = f"soak/{rng.randrange(KEYS):05d}".encode()
        roll = rng.random()
        began = time.monotonic()
        try:
            if roll < 0.35:
                kv.Put(rpc_pb2.PutRequest(key=key, value=VALUE), timeout=10)
            elif roll < 0.65:
                kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10)
            elif roll < 0.72:
                kv.Range(
                    rpc_pb2.RangeRequest(key=b"soak/", range_end=b"soak0", limit=100), timeout=10
                )
            elif roll < 0.80:
                kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key), timeout=10)
            elif roll < 0.93:
                current = kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10)
                mod = current.kvs[0].mod_revision if current.kvs else 0
                compare = rpc_pb2.Compare(
                    result=rpc_pb2.Compare.EQUAL,
                    target=rpc_pb2.Compare.MOD,
                    key=key,
                    mod_revision=mod,
                )
                put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=VALUE))
                kv.Txn(rpc_pb2.TxnRequest(compare=[compare], success=[put]), timeout=10)
            else:
                granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=3), timeout=10)
                leased = f"soak-lease/{granted.ID:x}".encode()
                kv.Put(rpc_pb2.PutRequest(key=leased, value=b"x", lease=granted.ID), timeout=10)
                if rng.random() < 0.3:
                    lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=granted.ID), timeout=10)
            latencies.append(time.monotonic() - began)
        except grpc.RpcError:
            latencies.append(float("inf"))  # counted as an error
        if time.monotonic() - flushed >= 1.0:
            results.put((time.monotonic(), latencies))
            latencies, flushed = [], time.monotonic()
    results.put((time.monotonic(), latencies))


def _watcher(endpoint: str, stop, results) -> None:
    """A prefix watch with prev_kv, read to the end; reports its event count."""
    channel = grpc.insecure_channel(endpoint)
    create = rpc_pb2.WatchCreateRequest(key=b"soak", range_end=b"soal", prev_kv=True)
    call = rpc_pb2_grpc.WatchStub(channel).Watch(
        iter([rpc_pb2.WatchRequest(create_request=create)])
    )
    events = 0
    try:
        for response in call:
            events += len(response.events)
            if stop.is_set():
                call.cancel()
    except grpc.RpcError:
        pass
    results.put(("events", events))


def _compactor(endpoint: str, stop) -> None:
    kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(endpoint))
    while not stop.wait(COMPACT_EVERY_S):
        revision = kv.Range(rpc_pb2.RangeRequest(key=b"soak/"), timeout=10).header.revision
        if revision > COMPACT_KEEP:
            kv.Compact(rpc_pb2.CompactionRequest(revision=revision - COMPACT_KEEP), timeout=60)


def _status_mib(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS, RssAnon) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _data_file(server: ServerProcess) -> Path:
    if server.kind == "etcd":
        return server.data_dir / "member" / "snap" / "db"
    return server.data_dir / "data.mdb"


def _p99(latencies: list[float]) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def growth_flags(rows: list[dict]) -> list[str]:
    """What grew that should not have, after warm-up."""
    flags = []
    warm = rows[max(1, int(len(rows) * WARMUP_FRACTION)) - 1 :]
    if len(warm) < 2:
        return flags
    base, last = warm[0], warm[-1]
    if last["rss"] > base["rss"] * 1.10:
        flags.append(f"RSS grew {base['rss']:.0f} -> {last['rss']:.0f} MiB after warm-up")
    if last["fds"] > base["fds"] + 10:
        flags.append(f"open fds grew {base['fds']} -> {last['fds']}")
    half = warm[len(warm) // 2]
    if last["db"] > half["db"] * 1.10:
        flags.append(
            f"data file grew {half['db']:.1f} -> {last['db']:.1f} MiB in the second half "
            f"(compaction every {COMPACT_EVERY_S:.0f}s should settle it)"
        )
    errors = sum(r["errors"] for r in rows)
    if errors:
        flags.append(f"{errors} calls failed")
    return flags


def plot(rows: list[dict], path: Path) -> bool:
    """A PNG of the sampled series; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [r["t"] / 60 for r in rows]
    series = [
        ("rss", "RSS (MiB)"),
        ("anon", "RssAnon (MiB)"),
        ("fds", "open fds"),
        ("db", "data file (MiB)"),
        ("p99", "p99 (ms)"),
    ]
    figure, axes = plt.subplots(len(series), 1, figsize=(8, 10), sharex=True)
    for axis, (name, label) in zip(axes, series, strict=True):
        axis.plot(minutes, [r[name] for r in rows])
        axis.set_ylabel(label)
        axis.grid(True)
    axes[-1].set_xlabel("minutes")
    figure.tight_layout()
    figure.savefig(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kind", choices=["ours", "etcd"], default="ours")
    parser.add_argument("--transport", choices=["native", "grpcio"], default=None)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--png", type=Path, default=Path("soak.png"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="k0s-soak-"))
    if args.transport:
        os.environ["K0S_STORE_TRANSPORT"] = args.transport  # inherited by the server
    server = ServerProcess(args.kind, workdir).start().wait_ready()
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(server.endpoint, i, stop, results))
        for i in range(args.workers)
    ]
    procs += [
        ctx.Process(target=_watcher, args=(server.endpoint, stop, results))
        for _ in range(args.watchers)
    ]
    procs.append(ctx.Process(target=_compactor, args=(server.endpoint, stop)))
    for proc in procs:
        proc.start()
    rows: list[dict] = []
    pending: list[float] = list(results.get(timeout=300)[1])  # the load has started
    began = time.monotonic()
    end = began + args.minutes * 60
    events = 0
    if args.kind == "ours":
        print(f"transport: {args.transport or 'default'}")
    print(
        f"{'t(s)':>6} {'RSS MiB':>8} {'anon MiB':>8} {'fds':>5} {'db MiB':>8} "
        f"{'calls':>7} {'p99 ms':>8}"
    )
    try:
        next_sample = began + args.interval
        while time.monotonic() < end:
            while time.monotonic() < next_sample:
                try:
                    item = results.get(timeout=max(0.01, next_sample - time.monotonic()))
                except Exception:  # queue.Empty from a multiprocessing queue
                    continue
                if item[0] != "events":
                    pending += item[1]
            next_sample += args.interval
            failed = sum(1 for x in pending if x == float("inf"))
            row = {
                "t": time.monotonic() - began,
                "rss": _status_mib(server.proc.pid, "VmRSS"),
                "anon": _status_mib(server.proc.pid, "RssAnon"),
                "fds": len(os.listdir(f"/proc/{server.proc.pid}/fd")),
                "db": _data_file(server).stat().st_size / 2**20,
                "calls": len(pending),
                "errors": failed,
                "p99": _p99([x for x in pending if x != float("inf")]) * 1000,
            }
            rows.append(row)
            pending = []
            print(
                f"{row['t']:6.0f} {row['rss']:8.1f} {row['anon']:8.1f} {row['fds']:5d} "
                f"{row['db']:8.1f} "
                f"{row['calls']:7d} {row['p99']:8.1f}",
                flush=True,
            )
    finally:
        stop.set()
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
        while not results.empty():
            item = results.get()
            if item[0] == "events":
                events += item[1]
        server.stop()
    flags = growth_flags(rows)
    print(f"watch events read: {events}")
    if plot(rows, args.png):
        print(f"plot: {args.png}")
    for flag in flags:
        print(f"FLAG: {flag}")
    print("no growth flagged" if not flags else f"{len(flags)} flags")
    return 1 if flags else 0


if __name__ == "__main__":
    sys.exit(main())
