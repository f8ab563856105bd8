"""Throughput of the MVCC store called directly (no gRPC), one line per operation.

Usage: python bench/store_bench.py [--threads N] [--seconds S] [--value-size B]
                                   [--keys K] [--watchers W] [--only NAME ...]

Operations (NAME), each on a fresh store (fsync off unless said):
  put-fsync   puts with fsync on (group commit)
  put         puts of `--keys` keys
  put-then    the same puts answered through a completion (the native
              transport's way): one thread submits, `--threads` in flight
  get         single-key ranges (kube-apiserver's Get)
  list        one range over all `--keys` keys (1 thread; a List page)
  create      kube-apiserver's Create: Txn mod_revision(key) == 0 -> [Put] / []
  update      kube-apiserver's Update: Txn mod_revision(key) == R -> [Put] / [Range]
  fanout      puts while `--watchers` prefix watchers (prev_kv) receive every event

Compare runs with and without K0S_STORE_PURE=1 (the compiled core vs its twin).
"""

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable

from k0s_store.core import PURE, codec
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import (
    CMP_MOD,
    EQUAL,
    Compare,
    PutRequest,
    RangeRequest,
    TxnRequest,
    WatchBatch,
)


def run(threads: int, seconds: float, op: Callable[[int, int], object]) -> tuple[float, float]:
    """Calls op(thread, i) from `threads` threads for `seconds`; returns (calls/s,
    process CPU µs per call: the steadier number on a busy machine)."""
    counts = [0] * threads
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            op(n, i)
            i += 1
        counts[n] = i

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    start, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    calls = sum(counts)
    return calls / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / max(calls, 1)


def run_then(in_flight: int, seconds: float, submit: Callable[[int, Callable], object]):
    """Calls submit(i, then) from one thread with at most `in_flight` calls not
    yet answered (their `then` not yet run) for `seconds`; returns what `run` does."""
    slots = threading.BoundedSemaphore(in_flight)

    def then(response, error) -> None:
        slots.release()

    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        slots.acquire()
        submit(calls, then)
        calls += 1
    for _ in range(in_flight):  # every call answered
        slots.acquire()
    return calls / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / max(calls, 1)


def key(i: int) -> bytes:
    return b"/registry/pods/default/pod-%08d" % i


def update_op(store: Store, keys: int, value: bytes) -> Callable[[int, int], object]:
    """Update with the revision of the key's last write (the failure branch when stale)."""
    last: dict[bytes, int] = {}

    def update(n: int, i: int) -> None:
        k = key((n * 7919 + i) % keys)
        rev = last.get(k, 0)
        txn = TxnRequest(
            (Compare(EQUAL, CMP_MOD, k, rev),), (PutRequest(k, value),), (RangeRequest(k),)
        )
        resp = store.txn(txn)
        last[k] = (
            resp.revision
            if resp.result.succeeded
            else codec.decode_kv(resp.result.responses[0].kvs[0])[2]
        )

    return update


def bench(name: str, args: argparse.Namespace, tmp: str) -> str:
    """Runs one operation on a fresh store in `tmp`; returns its result line."""
    value = os.urandom(args.value_size)
    threads, seconds, keys = args.threads, args.seconds, args.keys
    store = Store(tmp, fsync=name == "put-fsync")
    delivered = [0]
    watchers = []
    try:
        if name in ("get", "list", "update"):
            for i in range(keys):
                store.put(PutRequest(key(i), value))
        if name == "fanout":
            lock = threading.Lock()

            def sink(batch: WatchBatch) -> None:
                with lock:
                    delivered[0] += len(batch.events)

            watchers = [
                store.watch(
                    b"/registry/", b"/registry0", 0, prev_kv=True, filters=frozenset(), sink=sink
                )
                for _ in range(args.watchers)
            ]
        if name in ("put", "put-fsync", "fanout"):
            rate = run(
                threads,
                seconds,
                lambda n, i: store.put(PutRequest(key((n * 7919 + i) % keys), value)),
            )
        elif name == "put-then":
            rate = run_then(
                threads, seconds, lambda i, then: store.put(PutRequest(key(i % keys), value), then)
            )
        elif name == "get":
            rate = run(
                threads, seconds, lambda n, i: store.range(RangeRequest(key((n * 7919 + i) % keys)))
            )
        elif name == "list":
            whole = RangeRequest(key(0), key(keys))
            rate = run(1, seconds, lambda n, i: store.range(whole))
        elif name == "create":
            rate = run(threads, seconds, lambda n, i: store.txn(create(key(n * 10**7 + i), value)))
        else:
            rate = run(threads, seconds, update_op(store, keys, value))
    finally:
        for watcher in watchers:
            watcher.cancel()
        store.close()
    if name == "fanout":
        events = delivered[0] / seconds
        line = f"{name:9} {rate[0]:10.1f} puts/s {rate[1]:9.1f} CPU µs/put"
        return f"{line}, {events:.0f} events/s to {args.watchers} watchers"
    return f"{name:9} {rate[0]:10.1f} ops/s  {rate[1]:9.1f} CPU µs/op"


def create(k: bytes, value: bytes) -> TxnRequest:
    return TxnRequest((Compare(EQUAL, CMP_MOD, k, 0),), (PutRequest(k, value),), ())


OPERATIONS = ["put-fsync", "put", "put-then", "get", "list", "create", "update", "fanout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--value-size", type=int, default=256)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--only", nargs="+", choices=OPERATIONS, default=OPERATIONS)
    args = parser.parse_args()
    print(f"core={'pure' if PURE else 'compiled'} threads={args.threads} keys={args.keys}")
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            print(bench(name, args, tmp), flush=True)


if __name__ == "__main__":
    main()
