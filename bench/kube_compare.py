"""The client that matters most: a real kube-apiserver on k0s-store and on etcd.

Runs `k0s-node controller` twice on this machine, each on a fresh data
directory with its own PKI: once with `storage.type: k0s-store`, once with
`storage.type: etcd` (the launcher runs the real etcd 3.4, mutual TLS, as a
node would). Against each kube-apiserver (../shared/bin/kube-apiserver, or
K0S_KUBE_APISERVER) the python `kubernetes` client, from `--clients`
threads, creates `--objects` configmaps, replaces each once, lists them
`--lists` times (pages of 500, resourceVersion ""), and deletes them.
Prints objects per second of each phase and the datastore's CPU per object
(utime+stime of its process), with ours/etcd ratios. The python client and
the apiserver share the two cores with the datastore, so a phase's rate
moves less than the datastore's CPU does; and kube-apiserver 1.34 serves a
LIST from its watch cache once the datastore has told it the current
revision, so the LIST phase weighs the datastore little.

With `--repeat N` the pair runs N times, etcd and ours in alternating order
(a shared machine moves one run's ratio by a fifth): each figure is the median
of N, each ratio the median of the N paired ratios, with their spread.

Usage: .venv/bin/python bench/kube_compare.py [--objects 2000] [--clients 4] [--lists 10]
       [--repeat 1]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "node"))

from harness.processes import process_cpu_seconds as cpu_seconds  # noqa: E402
from kubernetes import client, config  # noqa: E402 - after the path set-up above
from launcher import KUBE_APISERVER, Launcher  # noqa: E402

NAMESPACE = "bench"
DATA = {"payload": "x" * 512}
PHASES = ("create", "replace", "list", "delete")


def datastore_pid(launcher: Launcher, storage: str) -> int:
    """The datastore process the launcher started (k0s-store or etcd)."""
    pattern = "k0s_store" if storage == "k0s-store" else "etcd --"
    found = subprocess.run(["pgrep", "-P", str(launcher.proc.pid), "-f", pattern],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    if len(found) != 1:
        raise RuntimeError(f"expected one {storage} process under the launcher, found {found}")
    return int(found[0])


def in_threads(clients: int, count: int, work: Callable[[client.CoreV1Api, int], None],
               api: client.ApiClient) -> None:  # fmt: skip
    """Run work(core, i) for i in range(count), spread over `clients` threads."""
    core = client.CoreV1Api(api)
    errors: list[BaseException] = []

    def run(start: int) -> None:
        try:
            for i in range(start, count, clients):
                work(core, i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def configmap(i: int) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i:06d}"), data=DATA)


def list_all(core: client.CoreV1Api) -> int:
    """Every configmap of the namespace, 500 per page, asking the datastore."""
    seen, token = 0, None
    while True:
        page = core.list_namespaced_config_map(NAMESPACE, limit=500, _continue=token,
                                               resource_version="")  # fmt: skip
        seen += len(page.items)
        token = page.metadata._continue
        if not token:
            return seen


def run_storage(storage: str, workdir: Path, args: argparse.Namespace) -> dict[str, tuple]:
    """{phase: (objects per second, datastore CPU µs per object)} on one storage."""
    launcher = Launcher(workdir, {"storage": {"type": storage}})
    (launcher.bin_dir / "kube-apiserver").symlink_to(KUBE_APISERVER)
    launcher.start()
    try:
        launcher.wait_line("kube-apiserver ready", timeout=120)
        pid = datastore_pid(launcher, storage)
        api = config.new_client_from_config(config_file=str(launcher.data_dir / "admin.conf"))
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = args.clients
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        n = args.objects

        def create(c: client.CoreV1Api, i: int) -> None:
            c.create_namespaced_config_map(NAMESPACE, configmap(i))

        def replace(c: client.CoreV1Api, i: int) -> None:
            body = configmap(i)
            body.data = {"payload": "y" * 512}
            c.replace_namespaced_config_map(f"cm-{i:06d}", NAMESPACE, body)

        def lists(c: client.CoreV1Api, i: int) -> None:
            if list_all(c) != n:
                raise RuntimeError("a LIST did not see every configmap")

        def delete(c: client.CoreV1Api, i: int) -> None:
            c.delete_namespaced_config_map(f"cm-{i:06d}", NAMESPACE)

        results = {}
        for phase, work, count, objects in (
            ("create", create, n, n),
            ("replace", replace, n, n),
            ("list", lists, args.lists, args.lists * n),
            ("delete", delete, n, n),
        ):
            cpu, started = cpu_seconds(pid), time.perf_counter()
            in_threads(args.clients, count, work, api)
            elapsed, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
            results[phase] = (objects / elapsed, used / objects * 1e6)
        return results
    finally:
        launcher.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--lists", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if not os.access(KUBE_APISERVER, os.X_OK):
        sys.exit(f"kube-apiserver not found at {KUBE_APISERVER} (set K0S_KUBE_APISERVER)")
    runs = []  # one {storage: {phase: (rate, cpu)}} per pair
    with tempfile.TemporaryDirectory(prefix="kube-compare-") as tmp:
        for n in range(args.repeat):
            order = ("etcd", "k0s-store") if n % 2 == 0 else ("k0s-store", "etcd")
            results = {}
            for storage in order:
                workdir = Path(tmp) / f"{storage}-{n}"
                workdir.mkdir()
                results[storage] = run_storage(storage, workdir, args)
            runs.append(results)
    print(f"kube-apiserver, {args.objects} configmaps, {args.clients} client threads, "
          f"{args.repeat} paired run(s); objects/s and datastore CPU µs per object")  # fmt: skip
    header = ("phase", "etcd obj/s", "ours obj/s", "ratio", "spread", "etcd cpu us",
              "ours cpu us", "ratio")  # fmt: skip
    print("{:<9}{:>12}{:>12}{:>8}{:>11}{:>13}{:>13}{:>8}".format(*header))
    for phase in PHASES:
        etcd = [run["etcd"][phase] for run in runs]
        ours = [run["k0s-store"][phase] for run in runs]
        rates = [o[0] / e[0] for e, o in zip(etcd, ours, strict=True)]
        cpus = [o[1] / e[1] if e[1] else float("nan") for e, o in zip(etcd, ours, strict=True)]
        med = statistics.median
        print(f"{phase:<9}{med(e[0] for e in etcd):>12.0f}{med(o[0] for o in ours):>12.0f}"
              f"{med(rates):>8.2f}{f'{min(rates):.2f}-{max(rates):.2f}':>11}"
              f"{med(e[1] for e in etcd):>13.0f}{med(o[1] for o in ours):>13.0f}"
              f"{med(cpus):>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
