"""Crash cycles: `kill -9` the server again and again under recorded load,
then check the whole history (linearizability, every watch, every
acknowledged write still there at the end).

    .venv/bin/python bench/kill9_cycles.py [--cycles 100] [--kind ours|etcd]
        [--clients 4] [--watchers 2] [--workdir DIR]

Each cycle lets the clients run 0.3-1.2 s (random, seeded), kills the server
with SIGKILL, starts it again on the same data directory and waits until it
answers. Prints the figures and exits 1 on any violation.
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "robustness")]

from harness.processes import ServerProcess  # noqa: E402
from kvhistory.runner import run_and_check  # noqa: E402


def kill9_cycles(server: ServerProcess, cycles: int, seed: int, log):
    """The fault: `cycles` kill -9 restarts at random moments."""
    rng = random.Random(seed)

    def inject() -> list[str]:
        done = []
        for cycle in range(1, cycles + 1):
            time.sleep(rng.uniform(0.3, 1.2))
            killed = time.monotonic()
            server.kill9()
            server.start().wait_ready()
            down = time.monotonic() - killed
            done.append(f"kill9 #{cycle} ({down:.2f}s down)")
            print(f"cycle {cycle}/{cycles}: down {down:.2f}s", file=log, flush=True)
        return done

    return inject


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--kind", choices=["ours", "etcd"], default="ours")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep histories here (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="k0s-kill9-"))
    server = ServerProcess(args.kind, workdir / "server").start().wait_ready()
    started = time.monotonic()
    try:
        report = run_and_check(
            server,
            workdir / "run",
            clients=args.clients,
            watchers=args.watchers,
            seed=args.seed,
            faults=kill9_cycles(server, args.cycles, args.seed, sys.stderr),
            progress_requests=args.kind == "ours",  # etcd 3.4.23: see test_histories.py
        )
    finally:
        server.stop()
    acknowledged = report.answered
    print(
        f"{args.kind}: {args.cycles} kill -9 cycles in {time.monotonic() - started:.0f}s; "
        f"{report.summary()}; {acknowledged} acknowledged calls checked; histories in {workdir}"
    )
    for violation in report.violations[:20]:
        print(violation)
    return 1 if report.violations or report.inconclusive else 0


if __name__ == "__main__":
    sys.exit(main())
