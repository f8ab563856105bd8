"""A snapshot of a large store streams with bounded memory (not part of the suite).

Fills a fresh store with --size-mb of values (in-process, no fsync), starts
`k0s-store serve` on it, saves a snapshot through etcd's Snapshot stream
(`k0s-store snapshot save`), and samples the server's memory meanwhile:
peak anonymous RSS (heap: what the snapshot costs) and peak total RSS (which
also counts the LMDB file pages the kernel maps in, shared and reclaimable).
Then checks the file with `etcdctl snapshot status` when etcdctl is present.

    .venv/bin/python bench/snapshot_bench.py --size-mb 1024 [--value-kb 8] [--workdir DIR]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest

READY_TIMEOUT_S = 60.0
SAVE_TIMEOUT_S = 1800.0


def fill(data_dir: Path, size_mb: int, value_kb: int) -> int:
    """Write size_mb MiB of values; returns the number of keys."""
    store = Store(data_dir, fsync=False, quota_bytes=4 * size_mb * 1024**2)
    count = size_mb * 1024 // value_kb
    value = os.urandom(value_kb * 1024)
    try:
        for i in range(count):
            store.put(PutRequest(key=b"/bench/%08d" % i, value=value))
    finally:
        store.close()
    return count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "RssAnon", "VmRSS"):
            fields[name] = int(value.split()[0])
    return fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--value-kb", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="snapshot-bench-"))
    data_dir, snapshot = workdir / "data", workdir / "bench.db"
    try:
        started = time.monotonic()
        keys = fill(data_dir, args.size_mb, args.value_kb)
        print(f"filled {keys} keys of {args.value_kb} KiB in {time.monotonic() - started:.1f}s")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "k0s_store", "serve", f"--data-dir={data_dir}"),
                f"--listen-client-urls={url}",
            ],
            stderr=open(workdir / "server.log", "wb"),  # noqa: SIM115 - the child holds it
        )
        try:
            _wait_listening(port)
            baseline = memory_kb(server.pid)
            peak = {"RssAnon": 0, "VmRSS": 0}
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.05):
                    now = memory_kb(server.pid)
                    for name in peak:
                        peak[name] = max(peak[name], now[name])

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            save = [sys.executable, "-m", "k0s_store", "snapshot", "save", str(snapshot)]
            subprocess.run([*save, "--endpoints", url], check=True, timeout=SAVE_TIMEOUT_S)
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(30)
        mib = snapshot.stat().st_size / 1024**2
        print(f"snapshot: {mib:.0f} MiB in {elapsed:.1f}s ({mib / elapsed:.0f} MiB/s)")
        print(
            f"server RssAnon: {baseline['RssAnon'] / 1024:.0f} MiB before,"
            f" peak {peak['RssAnon'] / 1024:.0f} MiB while streaming"
            f" (+{(peak['RssAnon'] - baseline['RssAnon']) / 1024:.0f} MiB)"
        )
        print(f"server VmRSS peak (LMDB file pages included): {peak['VmRSS'] / 1024:.0f} MiB")
        if shutil.which("etcdctl"):
            status = subprocess.run(
                ["etcdctl", "snapshot", "status", str(snapshot), "-w", "table"],
                env={**os.environ, "ETCDCTL_API": "3"},
                capture_output=True,
                text=True,
            )
            print(status.stdout or status.stderr)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not listening on port {port} after {READY_TIMEOUT_S}s (server.log)")


if __name__ == "__main__":
    sys.exit(main())
