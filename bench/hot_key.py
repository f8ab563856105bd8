"""One key written over and over with no compaction: the put rate as the key's
history grows, real etcd and k0s-store side by side (etcd's load tool).

etcd keeps a key's revisions in memory (its keyIndex) and appends to them.
k0s-store keeps them in the key's `index` entry (k0s_store/mvcc/index.py),
17 bytes a revision, which every commit that writes the key rewrites whole;
past ~1,000 revisions the older ones move to history chunks, so a put's cost
does not grow with the key's history. This checks it: the rates should stay
flat round after round.

Each round writes `--per-round` revisions of the key at 100 clients, then
times `--probe` puts of it at 1 client; prints both rates per round with
ours/etcd ratios, and the bytes on disk.

Usage: .venv/bin/python bench/hot_key.py [--rounds 4] [--per-round 50000] [--probe 1000]
"""

import argparse

# etcd_compare puts tests/ (the harness) on the path.
from etcd_compare import etcd_and_ours, ratio, run_load, settle, shown
from memory_disk import disk_bytes

# etcd-benchmark's put with --sequential-keys and no key space: always one key.
HOT_PUT = ["put", "--key-size=8", "--sequential-keys", "--val-size=256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=50_000, help="revisions added a round")
    parser.add_argument("--probe", type=int, default=1000, help="puts timed at 1 client a round")
    options = parser.parse_args()
    with etcd_and_ours("k0s-hot-key-") as servers:
        print(
            f"{'revisions':>9} {'etcd put@100/s':>14} {'ours put@100/s':>14} {'ratio':>6} "
            f"{'etcd put@1/s':>12} {'ours put@1/s':>12} {'ratio':>6} {'etcd MB':>8} {'ours MB':>8}"
        )
        revisions = 0
        for _ in range(options.rounds):
            bulk, probe = {}, {}
            for kind, server in servers.items():
                settle(servers.values())
                bulk[kind] = run_load(server, [*HOT_PUT, f"--total={options.per_round}"], 100)
                settle(servers.values())
                probe[kind] = run_load(server, [*HOT_PUT, f"--total={options.probe}"], 1)
            revisions += options.per_round + options.probe
            sizes = {kind: disk_bytes(s.data_dir) / 1e6 for kind, s in servers.items()}
            etcd_bulk, ours_bulk = bulk["etcd"].ops_per_s, bulk["ours"].ops_per_s
            etcd_probe, ours_probe = probe["etcd"].ops_per_s, probe["ours"].ops_per_s
            print(
                f"{revisions:>9} {etcd_bulk:>14.0f} {ours_bulk:>14.0f} "
                f"{shown(ratio(ours_bulk, etcd_bulk)):>6} {etcd_probe:>12.0f} "
                f"{ours_probe:>12.0f} {shown(ratio(ours_probe, etcd_probe)):>6} "
                f"{sizes['etcd']:>8.1f} {sizes['ours']:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
