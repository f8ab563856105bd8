"""What one durable commit costs on this disk: the floor under put at one client.

One thread, one put per commit, on the store called directly (no gRPC):
with fsync on (LMDB's durable commit: its dirty pages written where they
lie, a flush, the meta page written and flushed), and with fsync off (the
same work without the disk). Beside them, the shape of etcd's commit: one
sequential append of `--wal-bytes` to a preallocated log and one flush.
Wall and CPU time per commit, CPU including the kernel's (a VM pays for each
I/O it submits). The difference between the first two is what durability
costs us per commit; the last is what it costs etcd.

Usage: python bench/commit_cost.py [--commits N] [--dir D] [--wal-bytes B]
"""

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest


def timed(commits: int, commit: Callable[[int], object]) -> tuple[float, float]:
    """(wall, CPU) microseconds per call of commit(i)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(commits):
        commit(i)
    return (
        (time.perf_counter() - wall) / commits * 1e6,
        (time.process_time() - cpu) / commits * 1e6,
    )


def store_puts(path: str, commits: int, fsync: bool) -> tuple[float, float]:
    store = Store(os.path.join(path, f"store-{fsync}"), fsync=fsync)
    try:
        for i in range(1000):  # a store of some size, as under load
            store.put(PutRequest(b"key%d" % i, b"v" * 256))
        return timed(commits, lambda i: store.put(PutRequest(b"key%d" % (i % 1000), b"v" * 256)))
    finally:
        store.close()


def wal_appends(path: str, commits: int, record_bytes: int) -> tuple[float, float]:
    fd = os.open(os.path.join(path, "wal"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        size = commits * record_bytes
        # Written, not just allocated: a flush then writes no file metadata.
        os.pwrite(fd, bytes(size), 0)
        os.fsync(fd)
        record = b"r" * record_bytes

        def append(i: int) -> None:
            os.pwrite(fd, record, i * record_bytes)
            os.fdatasync(fd)

        return timed(commits, append)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="where to write (default: the temp dir)")
    parser.add_argument("--wal-bytes", type=int, default=6000, help="etcd's WAL bytes per put")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k0s-commit-", dir=args.dir) as path:
        rows = [
            ("put, fsync on (LMDB durable)", store_puts(path, args.commits, True)),
            ("put, fsync off", store_puts(path, args.commits, False)),
            (f"append {args.wal_bytes} B + flush", wal_appends(path, args.commits, args.wal_bytes)),
        ]
    print(f"{'commit':34} {'wall us':>8} {'cpu us':>8}")
    for name, (wall, cpu) in rows:
        print(f"{name:34} {wall:8.0f} {cpu:8.0f}")
    (sync_wall, sync_cpu), (free_wall, free_cpu), (wal_wall, wal_cpu) = (r for _, r in rows)
    print(
        f"durability per commit: ours {sync_wall - free_wall:.0f} us wall, "
        f"{sync_cpu - free_cpu:.0f} us CPU; a log append {wal_wall:.0f} us wall, "
        f"{wal_cpu:.0f} us CPU"
    )


if __name__ == "__main__":
    main()
