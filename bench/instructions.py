"""Instructions per write request on the service path, counted by callgrind.

    .venv/bin/python bench/instructions.py [--requests 2000] [--only put txn-put ...]

Each shape runs its requests through `KVService.submit_*` as the native
transport's workers do (raw request bytes in, turns of 8 under `held()`,
response bytes out), over a store with fsync off, under `valgrind
--tool=callgrind`, once with no request and once with `--requests`: the
difference over the count is the figure. Instruction counts do not move with
the machine's load (a timed run moves by a quarter on a shared VM), so they
show what a change to the Python path saves. Shapes:

  put         etcd-benchmark's put: one key, 256-byte value
  txn-put     etcd-benchmark's txn-put: a txn of one put, no compare
  txn-update  kube-apiserver's update: mod_revision > 0 -> put / else range

Run with and without K0S_STORE_PURE=1 (the compiled core vs its twin).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SHAPES = ("put", "txn-put", "txn-update")
TURN = 8  # the native transport's EVENTS_PER_TURN


def drive(shape: str, count: int) -> None:
    """Run `count` requests of `shape` (the process callgrind counts)."""
    from k0s_store.api.caller import ANONYMOUS
    from k0s_store.api.methods import build_services
    from k0s_store.api.settings import Settings
    from k0s_store.mvcc import Store
    from k0s_store.mvcc.types import PutRequest
    from k0s_store.proto import rpc_pb2

    value = b"v" * 256
    keys = [b"/registry/configmaps/default/cm-%05d" % i for i in range(1000)]
    with tempfile.TemporaryDirectory() as data_dir:
        store = Store(os.path.join(data_dir, "data"), fsync=False)
        kv = build_services(store, Settings()).kv
        for key in keys:
            store.put(PutRequest(key, value))

        def put(key: bytes) -> rpc_pb2.RequestOp:
            return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))

        def update(key: bytes) -> rpc_pb2.TxnRequest:
            newer = rpc_pb2.Compare(
                key=key, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.GREATER, mod_revision=0
            )
            read = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
            return rpc_pb2.TxnRequest(compare=[newer], success=[put(key)], failure=[read])

        make, submit = {
            "put": (lambda k: rpc_pb2.PutRequest(key=k, value=value), kv.submit_put),
            "txn-put": (lambda k: rpc_pb2.TxnRequest(success=[put(k)]), kv.submit_txn),
            "txn-update": (update, kv.submit_txn),
        }[shape]
        bodies = [make(keys[i % len(keys)]).SerializeToString() for i in range(count)]
        answered = []

        def reply(body: bytes | None, error: BaseException | None) -> None:
            if error is not None:
                raise error
            answered.append(body)

        for start in range(0, count, TURN):
            with store.writes_held():
                for body in bodies[start : start + TURN]:
                    submit(body, ANONYMOUS, reply)
        store.close()
    if len(answered) != count:
        sys.exit(f"{shape}: {len(answered)} of {count} requests answered")


def counted(shape: str, count: int) -> int:
    """Instructions callgrind counts for a run of `count` requests of `shape`."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}/callgrind.out",
            sys.executable,
            __file__,
            "--drive",
            shape,
            str(count),
        ]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        sys.exit(f"callgrind printed no count:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--drive", nargs=2, metavar=("SHAPE", "COUNT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.drive:
        drive(options.drive[0], int(options.drive[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (Debian's valgrind package)")
    core = "pure" if os.environ.get("K0S_STORE_PURE") == "1" else "compiled"
    print(f"core={core} requests={options.requests}")
    for shape in options.only:
        per_request = (counted(shape, options.requests) - counted(shape, 0)) / options.requests
        print(f"{shape:<11} {per_request / 1000:8.1f}k instructions per request", flush=True)


if __name__ == "__main__":
    main()
