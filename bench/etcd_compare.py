"""Real etcd and k0s-store under etcd's own load tool, same machine, one run.

Starts a real etcd 3.4 and a k0s-store (the transport K0S_STORE_TRANSPORT
names; native by default here), each on a fresh data directory, and runs
against both, load by load (etcd first, then ours, so both see the same
machine): `etcd-benchmark` put, single-key range (serializable and
linearizable), txn-put, and a LIST of 10k keys, at 1, 16 and 100 clients
(over min(clients, 10) connections), then `etcdctl check perf --load=l`.
Prints throughput, p99 latency and server CPU per operation
(utime+stime from /proc/<pid>/stat around each load), with ours/etcd ratios,
and the load tool's own CPU per operation (it shares the machine's cores):
`ceiling` is the throughput ratio ours would reach with a server costing no
CPU at all, where the cores are the limit (many clients): etcd's server and
tool CPU per operation over the tool's alone on ours.

The load tool is found through K0S_BENCHMARK_BIN (default
../shared/bin/etcd-benchmark beside the repository). Loads are short
(bounded request counts, `--scale` multiplies them); on a shared machine
the ratios are what counts.

With `--repeat N` every cell runs N times, etcd and ours in turns whose
order alternates (etcd first, then ours first, ...), so a machine that
drifts during a cell weighs on both: each column is the median of its N
measures, each ratio the median of the N paired ratios, and `spread` the
lowest and highest paired throughput ratio.

Usage: .venv/bin/python bench/etcd_compare.py [--clients 1,16,100] [--scale 1] [--skip-perf]
       [--loads put,txn-put] [--repeat 3]
"""

import argparse
import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from compare import check_perf  # noqa: E402 - after the path set-up above
from harness.processes import ServerProcess  # noqa: E402

LIST_KEYS = 10_000
# Requests per load at 1 / 16 / 100 clients (times --scale).
TOTALS = {
    "put": (500, 4000, 10000),
    "range-s": (1000, 8000, 20000),
    "range-l": (1000, 8000, 20000),
    "txn-put": (500, 4000, 10000),
    "list-10k": (20, 64, 200),
}


def benchmark_bin() -> str:
    return os.environ.get("K0S_BENCHMARK_BIN", str(ROOT.parent / "shared/bin/etcd-benchmark"))


@dataclass
class Result:
    ops_per_s: float
    p99_ms: float
    cpu_us_per_op: float
    tool_us_per_op: float  # the load tool's own CPU


@contextlib.contextmanager
def etcd_and_ours(prefix: str) -> Iterator[dict[str, ServerProcess]]:
    """Real etcd and our server (native transport unless set), each on a fresh
    data directory, ready; stopped on exit. Exits if etcd's load tool is missing."""
    if not Path(benchmark_bin()).exists():
        sys.exit(f"etcd-benchmark not found at {benchmark_bin()} (set K0S_BENCHMARK_BIN)")
    os.environ.setdefault("K0S_STORE_TRANSPORT", "native")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        servers = {kind: ServerProcess(kind, Path(tmp) / kind).start() for kind in ("etcd", "ours")}
        try:
            for server in servers.values():
                server.wait_ready()
            yield servers
        finally:
            for server in servers.values():
                server.stop()


def total_for(load: str, clients: int, scale: float) -> int:
    """Requests of `load` at `clients` clients: TOTALS by the nearest of 1/16/100."""
    column = 0 if clients <= 1 else 1 if clients <= 16 else 2
    return max(1, int(TOTALS[load][column] * scale))


def load_args(load: str, total: int) -> list[str]:
    """etcd-benchmark's sub-command for `load`."""
    if load == "put":
        return ["put", "--key-size=8", "--sequential-keys", f"--total={total}", "--val-size=256"]
    if load in ("range-s", "range-l"):
        return ["range", "bench/key", f"--consistency={load[-1]}", f"--total={total}"]
    if load == "txn-put":
        return ["txn-put", "--key-size=8", "--val-size=256", "--key-space-size=10000",
                f"--total={total}"]  # fmt: skip
    return ["range", "\x01", "\xff", "--consistency=s", f"--total={total}"]


def run_load(server: ServerProcess, args: list[str], clients: int) -> Result:
    command = [
        benchmark_bin(),
        f"--endpoints={server.endpoint}",
        f"--conns={min(clients, 10)}",
        f"--clients={clients}",
        *args,
    ]
    cpu_before, tool_before = server.cpu_seconds(), _children_cpu()
    out = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout
    cpu, tool = server.cpu_seconds() - cpu_before, _children_cpu() - tool_before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    total = int(next(a for a in args if a.startswith("--total=")).split("=")[1])
    return Result(
        ops_per_s=float(rate.group(1)) if rate else float("nan"),
        p99_ms=float(p99.group(1)) * 1000 if p99 else float("nan"),
        cpu_us_per_op=cpu / total * 1e6,
        tool_us_per_op=tool / total * 1e6,
    )


def _children_cpu() -> float:
    """CPU seconds of the children waited for (the servers run until the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle(servers, quiet: float = 0.05, wait_s: float = 5.0) -> None:
    """Wait (up to `wait_s`) until every server uses under `quiet` of a core:
    what one server does after its load (Go's GC, a commit) must not run
    during the other's."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        before = [s.cpu_seconds() for s in servers]
        time.sleep(0.2)
        if all(s.cpu_seconds() - b < quiet * 0.2 for s, b in zip(servers, before, strict=True)):
            return


def prepare(server: ServerProcess) -> None:
    """The key single-key ranges read, and the 10k keys the LIST reads."""
    run_load(server, ["put", "--key-size=8", "--sequential-keys", "--key-space-size=10000",
                      f"--total={LIST_KEYS}", "--val-size=256"], 16)  # fmt: skip
    subprocess.run(
        ["etcdctl", f"--endpoints={server.url}", "put", "bench/key", "v" * 256],
        capture_output=True,
        check=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )


def ratio(ours: float, etcd: float) -> float:
    return ours / etcd if etcd and etcd == etcd and ours == ours else float("nan")


def shown(value: float) -> str:
    return f"{value:.2f}" if value == value else "-"


def median_result(results: list[Result]) -> Result:
    """Field by field, the median of repeated measures."""
    columns = zip(*map(astuple, results), strict=True)
    return Result(*(statistics.median(column) for column in columns))


def measure_cell(servers, load: str, clients: int, total: int, repeat: int):
    """`repeat` paired runs of one cell, the order alternating: the medians of
    etcd's and ours, and the paired ratios (throughput, CPU, ceiling)."""
    etcd_runs, ours_runs, pairs = [], [], []
    for turn in range(repeat):
        order = ("etcd", "ours") if turn % 2 == 0 else ("ours", "etcd")
        run = {}
        for kind in order:
            settle(servers.values())
            run[kind] = run_load(servers[kind], load_args(load, total), clients)
        etcd, ours = run["etcd"], run["ours"]
        etcd_runs.append(etcd)
        ours_runs.append(ours)
        pairs.append(
            (
                ratio(ours.ops_per_s, etcd.ops_per_s),
                ratio(ours.cpu_us_per_op, etcd.cpu_us_per_op),
                ratio(etcd.cpu_us_per_op + etcd.tool_us_per_op, ours.tool_us_per_op),
            )
        )
    return median_result(etcd_runs), median_result(ours_runs), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16,100", help="comma-separated client counts")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies request counts")
    parser.add_argument("--skip-perf", action="store_true", help="skip etcdctl check perf")
    parser.add_argument(
        "--loads", default=",".join(TOTALS), help=f"comma-separated, of {', '.join(TOTALS)}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="paired runs per cell (medians)")
    options = parser.parse_args()
    clients = [int(c) for c in options.clients.split(",")]
    with etcd_and_ours("k0s-bench-") as servers:
        for server in servers.values():
            prepare(server)
        header = (
            f"{'load':<10} {'clients':>7} {'etcd op/s':>10} {'ours op/s':>10} {'ratio':>6} "
            f"{'spread':>9} {'etcd p99 ms':>11} {'ours p99 ms':>11} {'etcd cpu us/op':>14} "
            f"{'ours cpu us/op':>14} {'ratio':>6} {'tool us/op e/o':>14} {'ceiling':>7}"
        )
        print(
            f"k0s-store transport: {os.environ['K0S_STORE_TRANSPORT']}; "
            f"{options.repeat} paired run(s) per cell"
        )
        print(header)
        print("-" * len(header))
        for load in options.loads.split(","):
            for count in clients:
                total = total_for(load, count, options.scale)
                etcd, ours, pairs = measure_cell(servers, load, count, total, options.repeat)
                by_ratio = zip(*pairs, strict=True)
                throughput, cpu, ceiling = (statistics.median(p) for p in by_ratio)
                spread = f"{min(p[0] for p in pairs):.2f}-{max(p[0] for p in pairs):.2f}"
                print(
                    f"{load:<10} {count:>7} {etcd.ops_per_s:>10.0f} {ours.ops_per_s:>10.0f} "
                    f"{shown(throughput):>6} {spread:>9} {etcd.p99_ms:>11.1f} "
                    f"{ours.p99_ms:>11.1f} {etcd.cpu_us_per_op:>14.0f} "
                    f"{ours.cpu_us_per_op:>14.0f} {shown(cpu):>6} "
                    f"{f'{etcd.tool_us_per_op:.0f}/{ours.tool_us_per_op:.0f}':>14} "
                    f"{shown(ceiling):>7}",
                    flush=True,
                )
        if not options.skip_perf:
            for kind, server in servers.items():
                result = check_perf(server, "l")
                print(
                    f"check perf --load=l on {kind}: {result.ops_per_s:.0f} writes/s, "
                    f"slowest {result.latency_ms:.0f} ms, {result.note}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
