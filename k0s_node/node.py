"""``k0s-node controller``: PKI, datastore, control plane, supervised.

Order of things:

1. Lock the data directory (a second launcher is refused).
2. PKI: create what is missing, renew leaves within ``spec.pki.renewBefore``.
3. Components, in order, each started once those before it have been
   healthy: the datastore (k0s-store or etcd; none for ``external``), then
   kube-apiserver, kube-controller-manager and kube-scheduler when their
   binaries are found. The etcdctl line is printed when the datastore is
   healthy, the admin kubeconfig path when the API server is; then the
   ``kubeadm:cluster-admins`` binding is created.
4. Supervise: restart a component that exits (backoff, counted); renew
   certificates in the background and restart the components using them.
5. SIGTERM or SIGINT: stop the components in reverse order, exit 0.

The main thread owns the processes; a monitor thread runs health checks and
certificate renewal and asks the main thread for restarts.
"""

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

from k0s_node import pki
from k0s_node.components import (
    apiserver_argv,
    controller_manager_argv,
    datastore_client,
    find_binary,
    scheduler_argv,
    store_argv,
)
from k0s_node.config import ConfigError, NodeConfig
from k0s_node.endpoints import serve_endpoints
from k0s_node.etcd_cluster import (
    EtcdError,
    check_join_pki,
    etcd_argv,
    has_data,
    join,
    new_cluster,
)
from k0s_node.health import DatastoreProbe, apiserver_ready
from k0s_node.lock import lock_data_dir
from k0s_node.paths import NodePaths
from k0s_node.rbac import BINDING_NAME, ensure_cluster_admins
from k0s_node.supervisor import Child, ComponentSpec

log = logging.getLogger("k0s_node")

LOOP_INTERVAL_S = 0.1
HEALTH_INTERVAL_S = 0.5
ALIVE_WITHIN_S = 5.0  # /healthz fails when the main loop has not ticked for this long
EXPIRY_CACHE_S = 10.0

# Leaves each component reads at start, so their renewal restarts it.
_APISERVER_CERTS = frozenset(
    {"apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "front-proxy-client"}
)
_DATASTORE_CERTS = frozenset({"etcd-server", "etcd-peer"})


def _output(line: str) -> None:
    print(line, flush=True)


class Controller:
    """One control-plane node: its components and their supervision.

    Args:
        config: the checked configuration.
        paths: the data directory.
        bin_dir: where to look first for binaries (``--bin-dir``).
        join_url: client URL of a member of the etcd cluster to join
            (``storage.type: etcd`` only; see :mod:`k0s_node.etcd_cluster`).
    """

    def __init__(
        self,
        config: NodeConfig,
        paths: NodePaths,
        bin_dir: Path | None = None,
        join_url: str | None = None,
    ) -> None:
        self.config = config
        self.paths = paths
        self.bin_dir = bin_dir
        self.join_url = join_url
        self.started = time.time()
        self.children: list[Child] = []
        self.datastore = DatastoreProbe(datastore_client(config, paths))
        # stop() runs in signal handlers: it only sets this flag (an Event's lock
        # is not reentrant, and a second signal during Event.set deadlocks).
        self._stop_requested = False
        self._stop = threading.Event()  # set by the main loop, for the other threads
        self._restart_requests: dict[str, str] = {}
        self._lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._expiries: tuple[float, list[pki.CertExpiry]] = (0.0, [])
        self._announced: set[str] = set()
        self._rbac_started = False
        self.missing_binaries: list[str] = []

    # ----- building -----

    def _components(self) -> list[ComponentSpec]:
        paths, config = self.paths, self.config
        specs = []
        storage = config.spec.storage.type
        if storage == "k0s-store":
            specs.append(
                ComponentSpec(
                    "store",
                    store_argv(config, paths),
                    paths.log("store"),
                    self.datastore.check,
                    _DATASTORE_CERTS,
                )
            )
        elif storage == "etcd":
            specs.append(
                ComponentSpec(
                    "etcd",
                    self._etcd_argv(),
                    paths.log("etcd"),
                    self.datastore.check,
                    _DATASTORE_CERTS,
                )
            )
        apiserver = find_binary("kube-apiserver", self.bin_dir, paths)
        if apiserver is None:
            self.missing_binaries = ["kube-apiserver"]
            return specs
        url = f"https://{_host(config.spec.api.address)}:{config.spec.api.port}"
        ca = paths.pki.cert("ca")
        specs.append(
            ComponentSpec(
                "kube-apiserver",
                apiserver_argv(apiserver, config, paths),
                paths.log("kube-apiserver"),
                lambda: apiserver_ready(url, ca),
                _APISERVER_CERTS,
            )
        )
        for name, argv_of, conf in (
            ("kube-controller-manager", controller_manager_argv, "controller-manager.conf"),
            ("kube-scheduler", scheduler_argv, "scheduler.conf"),
        ):
            binary = find_binary(name, self.bin_dir, paths)
            if binary is None:
                self.missing_binaries.append(name)
                continue
            specs.append(
                ComponentSpec(
                    name,
                    argv_of(binary, config, paths),
                    paths.log(name),
                    _process_health,
                    frozenset({conf}),
                )
            )
        return specs

    def _etcd_argv(self) -> list[str]:
        binary = find_binary("etcd", self.bin_dir, self.paths)
        if binary is None:
            raise EtcdError("storage.type etcd: no etcd binary in --bin-dir, D/bin or PATH")
        if self.join_url and not has_data(self.paths):
            initial = join(self.config, self.datastore.client, self.join_url)
        else:
            initial = new_cluster(self.config)
        return etcd_argv(binary, self.config, self.paths, initial)

    # ----- running -----

    def run(self) -> int:
        """Run until :meth:`stop`; returns the exit status."""
        if self.join_url and self.config.spec.storage.type != "etcd":
            raise EtcdError("--join needs spec.storage.type etcd")
        lock = lock_data_dir(self.paths.lock_file)
        http = None
        try:
            if self.join_url and not has_data(self.paths):
                check_join_pki(self.paths)
            for line in pki.ensure_pki(self.paths.pki, self.config):
                log.info("pki: %s", line)
            http = self._serve_endpoints()
            self.children = [Child(spec) for spec in self._components()]
            if self.missing_binaries == ["kube-apiserver"]:
                alone = "running the datastore alone"
                if self.config.spec.storage.type == "external":
                    alone = "only watching the external datastore"
                _output(
                    "store-only: kube-apiserver not found in --bin-dir, "
                    f"{self.paths.bin_dir} or PATH; {alone}"
                )
            elif self.missing_binaries:
                _output(f"not found (skipped): {', '.join(self.missing_binaries)}")
            self._write_state(http.server_address[1])
            threading.Thread(target=self._monitor, name="k0s-node-monitor", daemon=True).start()
            self._supervise()
        finally:
            self._stop.set()
            for child in reversed(self.children):
                child.stop()
            if http is not None:
                http.shutdown()
                http.server_close()
            self.paths.state_file.unlink(missing_ok=True)
            lock.release()
        log.info("all components stopped")
        return 0

    def _serve_endpoints(self) -> ThreadingHTTPServer:
        port = self.config.spec.node.health_port
        try:
            return serve_endpoints(port, self.status, self._alive)
        except OSError as exc:
            raise ConfigError(
                f"spec.node.healthPort: cannot listen on 127.0.0.1:{port}: {exc.strerror}"
            ) from None

    def stop(self) -> None:
        """Ask the launcher to stop (safe from a signal handler, any number of times)."""
        self._stop_requested = True

    def request_restart(self, name: str, why: str) -> None:
        """Ask the main loop to restart component ``name`` (any thread)."""
        with self._lock:
            self._restart_requests[name] = why

    def _supervise(self) -> None:
        while not self._stop_requested:
            now = time.monotonic()
            self._last_tick = now
            for index, child in enumerate(self.children):
                if child.proc is None:
                    if all(c.ever_healthy for c in self.children[:index]):
                        child.start()
                    continue
                child.poll(now)
            with self._lock:
                requests, self._restart_requests = self._restart_requests, {}
            for child in self.children:
                if child.name in requests and child.proc is not None:
                    child.restart(requests[child.name])
            self._announce()
            time.sleep(LOOP_INTERVAL_S)

    def _announce(self) -> None:
        """Say how to reach what became healthy for the first time."""
        storage = self.config.spec.storage.type
        datastore_up = storage == "external" or any(
            c.ever_healthy for c in self.children if c.name in ("store", "etcd")
        )
        if datastore_up and "datastore" not in self._announced:
            self._announced.add("datastore")
            _output(f"{storage} ready; try: {self.datastore.client.etcdctl_line()}")
        apiserver = self._child("kube-apiserver")
        if apiserver is not None and apiserver.ever_healthy and not self._rbac_started:
            self._rbac_started = True
            threading.Thread(target=self._bind_cluster_admins, daemon=True).start()

    def _bind_cluster_admins(self) -> None:
        conf = self.paths.pki.kubeconfig("super-admin.conf")
        while not self._stop.is_set():
            try:
                created = ensure_cluster_admins(conf)
            except OSError as exc:
                log.warning("ClusterRoleBinding %s not created yet: %s", BINDING_NAME, exc)
                self._stop.wait(1.0)
                continue
            log.info("ClusterRoleBinding %s %s", BINDING_NAME, "created" if created else "exists")
            admin = self.paths.pki.kubeconfig("admin.conf")
            _output(f"kube-apiserver ready; try: kubectl --kubeconfig {admin} get namespaces")
            return

    def _monitor(self) -> None:
        """Health checks every HEALTH_INTERVAL_S; certificate renewal every checkInterval."""
        interval = self.config.spec.pki.check_interval.total_seconds()
        next_renewal = time.monotonic() + interval
        while not self._stop.is_set():
            for child in list(self.children):
                if not child.running:
                    continue
                reason = child.spec.health()
                child.healthy = reason is None and child.running
                child.health_reason = "ok" if child.healthy else (reason or "not running")
                child.ever_healthy |= child.healthy
            if self.config.spec.storage.type == "external":
                self.datastore.check()
            if time.monotonic() >= next_renewal:
                next_renewal = time.monotonic() + interval
                self._renew()
            self._stop.wait(HEALTH_INTERVAL_S)

    def _renew(self) -> None:
        try:
            renewed = pki.renewed_names(pki.renew_due(self.paths.pki, self.config))
        except Exception as exc:  # keep supervising: the next check tries again
            log.error("certificate renewal failed: %s", exc)
            return
        if not renewed:
            return
        log.info("renewed certificates: %s", ", ".join(sorted(renewed)))
        self._expiries = (0.0, [])
        for child in self.children:
            used = child.spec.certificates & renewed
            if used:
                self.request_restart(child.name, f"renewed {', '.join(sorted(used))}")

    # ----- reporting -----

    def _alive(self) -> bool:
        return time.monotonic() - self._last_tick < ALIVE_WITHIN_S

    def _child(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    def _cert_expiries(self) -> list[pki.CertExpiry]:
        stamp, cached = self._expiries
        if time.monotonic() - stamp > EXPIRY_CACHE_S:
            cached = pki.expiries(self.paths.pki, self.config)
            self._expiries = (time.monotonic(), cached)
        return cached

    def status(self) -> dict:
        """A snapshot for ``/status``, ``/readyz``, ``/metrics`` and ``k0s-node status``."""
        now = datetime.now(UTC)
        store = self.datastore.last
        external = []
        if self.config.spec.storage.type == "external":
            reason = self.datastore.last_error
            external = [
                {
                    "name": "external-etcd",
                    "pid": None,
                    "state": "external",
                    "uptimeSeconds": 0.0,
                    "restarts": 0,
                    "healthy": reason is None,
                    "health": reason or "ok",
                    "log": None,
                }
            ]
        return {
            "dataDir": str(self.paths.root),
            "pid": os.getpid(),
            "uptimeSeconds": round(time.time() - self.started, 1),
            "storage": self.config.spec.storage.type,
            "missingBinaries": self.missing_binaries,
            "components": external
            + [
                {
                    "name": c.name,
                    "pid": c.pid,
                    "state": c.state(),
                    "uptimeSeconds": round(c.uptime(), 1),
                    "restarts": c.restarts,
                    "healthy": c.healthy and c.running,
                    "health": c.health_reason,
                    "log": str(c.spec.log_path),
                }
                for c in self.children
            ],
            "store": None
            if store is None
            else {
                "endpoint": store.endpoint,
                "revision": store.revision,
                "dbSize": store.db_size,
                "version": store.version,
            },
            "certificates": [
                {
                    "name": e.name,
                    "expires": e.not_after.isoformat(),
                    "residualSeconds": int(e.seconds_left(now)),
                }
                for e in self._cert_expiries()
            ],
        }

    def _write_state(self, port: int) -> None:
        state = {"pid": os.getpid(), "health": f"http://127.0.0.1:{port}"}
        self.paths.state_file.write_text(json.dumps(state) + "\n")


def _process_health() -> str | None:
    return None  # the monitor only calls it while the process runs


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
