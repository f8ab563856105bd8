"""Throughput of the MVCC store called directly (no gRPC): puts and ranges.

Usage: python bench/store_bench.py [--threads N] [--seconds S] [--value-size B]

Runs puts with fsync on, then off, then single-key ranges; prints ops/s.
"""

import argparse
import os
import tempfile
import threading
import time

from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest, RangeRequest


def run(threads: int, seconds: float, op) -> float:
    counts = [0] * threads
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            op(n, i)
            i += 1
        counts[n] = i

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--value-size", type=int, default=256)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    value = os.urandom(args.value_size)
    for fsync in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp, fsync=fsync)

            def put(n: int, i: int, store=store) -> None:
                store.put(PutRequest(b"key%08d" % ((n * 7919 + i) % args.keys), value))

            def get(n: int, i: int, store=store) -> None:
                store.range(RangeRequest(b"key%08d" % ((n * 7919 + i) % args.keys)))

            puts = run(args.threads, args.seconds, put)
            print(f"put   fsync={fsync!s:5} threads={args.threads}: {puts:9.0f} ops/s")
            if not fsync:
                ranges = run(args.threads, args.seconds, get)
                print(f"range single key      threads={args.threads}: {ranges:9.0f} ops/s")
                list_all = run(
                    1, args.seconds, lambda n, i, s=store: s.range(RangeRequest(b"key", b"kez"))
                )
                print(f"range {args.keys} keys (1 thread): {list_all:9.1f} ops/s")
            store.close()


if __name__ == "__main__":
    main()
