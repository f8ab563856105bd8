"""What the metrics cost on the hot path: the counting one request does, against
the CPU the request costs.

    .venv/bin/python bench/metrics_cost.py [--calls 200000] [--seconds 3]

Every served request bumps the gRPC counters (`MethodStats.started/finished`,
`RpcStats.received/sent`) and the store's (`StoreStats.put/range`); a commit
also observes its duration. Nothing else is counted per request: the
Prometheus families are built when /metrics is scraped. This times that
counting alone (µs per request, best of 5 runs) and puts it beside the CPU of a
put and a get through the store itself (bench/store_bench.py's measure), so
the share is the figure to read: under a few percent is below what a
benchmark run can see.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_bench import key, run

from k0s_store.api.methods import build_services, method_table
from k0s_store.api.rpc_stats import RpcStats
from k0s_store.api.settings import Settings
from k0s_store.mvcc import Store
from k0s_store.mvcc.stats import StoreStats
from k0s_store.mvcc.types import PutRequest, RangeRequest

PUT_PATH = "/etcdserverpb.KV/Put"
RANGE_PATH = "/etcdserverpb.KV/Range"


def per_call_us(calls: int, body) -> float:
    """Best of 5 runs of `calls` calls of body(), in µs per call."""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(calls):
            body()
        best = min(best, time.perf_counter() - began)
    return best * 1e6 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        store = Store(os.path.join(data_dir, "data"), fsync=False)
        table = method_table(build_services(store, Settings()))
        rpc_stats = RpcStats()
        methods = rpc_stats.serve(table)
        put_stats, range_stats = methods[PUT_PATH], methods[RANGE_PATH]
        store_stats = StoreStats()
        put_request = PutRequest(b"k", b"v")

        def count_put() -> None:
            started = put_stats.started()
            rpc_stats.received(40)
            store_stats.put(put_request)
            store_stats.commit_seconds.observe(0.002)
            rpc_stats.sent(20)
            put_stats.finished(0, started)

        def count_range() -> None:
            started = range_stats.started()
            rpc_stats.received(20)
            store_stats.range()
            rpc_stats.sent(300)
            range_stats.finished(0, started)

        counting = {"put": per_call_us(args.calls, count_put)}
        counting["get"] = per_call_us(args.calls, count_range)
        value = b"v" * 256
        _, put_cpu = run(1, args.seconds, lambda n, i: store.put(PutRequest(key(i % 1000), value)))
        _, get_cpu = run(1, args.seconds, lambda n, i: store.range(RangeRequest(key(i % 1000))))
        store.close()

    print(f"{'request':8} {'counting µs':>12} {'store CPU µs':>13} {'share':>7}")
    for name, cpu in (("put", put_cpu), ("get", get_cpu)):
        print(f"{name:8} {counting[name]:12.2f} {cpu:13.1f} {counting[name] / cpu:7.1%}")
    print("(store CPU: the request through the MVCC store alone, fsync off, no transport)")


if __name__ == "__main__":
    main()
