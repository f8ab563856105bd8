"""Memory and disk of real etcd and k0s-store after the same put load.

Each server starts on a fresh data directory and takes etcd's own load tool
(`etcd-benchmark put`, 100 clients over 10 connections; by default 200k
puts of 1 KiB values over 100k keys of 16 bytes, as issue 8 specifies).
Then, with the server still running, it reports from /proc/<pid>:

- RssAnon: private memory (heap, stacks): what the goal compares;
- the resident pages of the mapped data file (LMDB's data.mdb, bbolt's db),
  apart: page cache the kernel may reclaim;
- total RSS; and the bytes the data directory takes on disk.

Usage: .venv/bin/python bench/memory_disk.py [--total 200000] [--keys 100000]
           [--value-size 1024] [--only etcd|ours]
The load tool is $K0S_BENCHMARK_BIN, else <repo>/../shared/bin/etcd-benchmark.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from etcd_compare import benchmark_bin
from harness.processes import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = ("data.mdb", "db")  # LMDB's, bbolt's (member/snap/db)


def status_kib(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, RssAnon, RssFile...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0])
    return fields


def data_file_rss_kib(pid: int) -> int:
    """Resident kB of the mappings of the data file (from /proc/<pid>/smaps)."""
    total, in_data_file = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            in_data_file = len(head) >= 6 and Path(head[-1]).name in DATA_FILES
        elif in_data_file and line.startswith("Rss:"):
            total += int(head[1])
    return total


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under `path` (sparse files count what they use)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def measure(kind: str, workdir: Path, args) -> dict[str, float]:
    server = ServerProcess(kind, workdir / kind).start().wait_ready()
    try:
        load = [
            benchmark_bin(),
            f"--endpoints={server.endpoint}",
            "--conns=10",
            "--clients=100",
            "put",
            "--key-size=16",
            "--sequential-keys",
            f"--key-space-size={args.keys}",
            f"--total={args.total}",
            f"--val-size={args.value_size}",
        ]
        start = time.monotonic()
        subprocess.run(load, check=True, capture_output=True, timeout=args.timeout)
        elapsed = time.monotonic() - start
        assert server.proc is not None
        status = status_kib(server.proc.pid)
        return {
            "puts/s": args.total / elapsed,
            "RssAnon MB": status["RssAnon"] / 1024,
            "data file RSS MB": data_file_rss_kib(server.proc.pid) / 1024,
            "total RSS MB": status["VmRSS"] / 1024,
            "disk MB": disk_bytes(server.data_dir) / 1e6,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per load, at most")
    parser.add_argument("--only", choices=["etcd", "ours"])
    args = parser.parse_args()
    if not Path(benchmark_bin()).exists():
        sys.exit(f"etcd-benchmark not found at {benchmark_bin()} (set K0S_BENCHMARK_BIN)")
    kinds = [args.only] if args.only else ["etcd", "ours"]
    with tempfile.TemporaryDirectory(prefix="k0s-memdisk-") as tmp:
        results = {kind: measure(kind, Path(tmp), args) for kind in kinds}
    print(f"{args.total} puts of {args.value_size} B over {args.keys} keys")
    print(f"{'':18}" + "".join(f"{kind:>10}" for kind in kinds) + ("     ratio" * (len(kinds) > 1)))
    for name in results[kinds[0]]:
        row = [results[kind][name] for kind in kinds]
        ratio = f"{row[1] / row[0]:>10.2f}" if len(row) > 1 and row[0] else ""
        print(f"{name:18}" + "".join(f"{value:>10.1f}" for value in row) + ratio)


if __name__ == "__main__":
    main()
