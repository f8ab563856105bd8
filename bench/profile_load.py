"""Profile our server under one of bench/compare.py's gRPC loads.

Starts a fresh server, runs the load (puts or serializable single-key
ranges from N client processes) and, while it runs, py-spy records the
server (native frames, GIL holders only with --gil). Prints the load's
result and writes a flame graph (SVG) or speedscope/raw profile.

Usage: .venv/bin/python bench/profile_load.py put|range [--clients 4]
       [--seconds 10] [--out /tmp/put.svg] [--format flamegraph|raw] [--gil]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from compare import fill_keyspace, grpc_load
from harness.processes import ServerProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=("put", "range"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default="/tmp/k0s-profile.svg")
    parser.add_argument("--format", default="flamegraph", choices=("flamegraph", "raw"))
    parser.add_argument("--gil", action="store_true", help="sample GIL holders only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k0s-profile-") as tmp:
        server = ServerProcess("ours", Path(tmp)).start().wait_ready()
        try:
            if args.op == "range":
                fill_keyspace(server)
            spy = [
                Path(sys.executable).parent / "py-spy",
                "record",
                "--native",
                *(["--gil"] if args.gil else []),
                f"--pid={server.proc.pid}",
                f"--duration={int(args.seconds)}",
                f"--format={args.format}",
                f"--output={args.out}",
            ]
            recorder = subprocess.Popen([str(part) for part in spy])
            result = grpc_load(server, args.op, args.clients, args.seconds)
            recorder.wait()
        finally:
            server.stop()
    print(result)


if __name__ == "__main__":
    main()
