"""A `k0s-node controller` process under test: config, output, endpoints."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from harness.ports import free_port

REPO = Path(__file__).resolve().parents[2]
KUBE_APISERVER = Path(
    os.environ.get("K0S_KUBE_APISERVER", REPO.parent / "shared" / "bin" / "kube-apiserver")
)


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, nested mappings key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out


class Launcher:
    """One launcher on its own data directory, free loopback ports and a bin dir.

    Args:
        workdir: holds ``data/``, ``bin/`` (empty unless the test fills it), the config.
        spec: merged into ``spec`` of the generated config.
        extra_argv: more `k0s-node controller` arguments (e.g. --join URL).
    """

    def __init__(
        self, workdir: Path, spec: dict | None = None, extra_argv: tuple[str, ...] = ()
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.bin_dir = workdir / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.store_port = free_port()
        self.health_port = free_port()
        self.api_port = free_port()
        self.peer_port = free_port()
        self.extra_argv = list(extra_argv)
        base = {
            "storage": {
                "store": {"clientPort": self.store_port},
                "etcd": {"clientPort": self.store_port, "peerPort": self.peer_port},
            },
            "api": {"port": self.api_port},
            "node": {"name": "node1", "healthPort": self.health_port},
        }
        self.config = {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig"}
        self.config["spec"] = merge(base, spec or {})
        self.config_path = workdir / "k0s.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "k0s_node",
            "controller",
            f"--data-dir={self.data_dir}",
            f"--config={self.config_path}",
            f"--bin-dir={self.bin_dir}",
            *self.extra_argv,
        ]

    def start(self) -> "Launcher":
        """Spawn it with a PATH that holds no kube binary (only the test's bin dir counts)."""
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin")
        self.stderr_path = self.workdir / "launcher.err"
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=open(self.stderr_path, "ab"),  # noqa: SIM115 - the child keeps it
            text=True,
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, contains: str, timeout: float = 60.0) -> str:
        """The first output line (from now on) that contains ``contains``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if contains in line:
                return line
        raise AssertionError(f"no line with {contains!r}; stderr:\n{self.stderr_tail()}")

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of ``GET http://127.0.0.1:<health port><path>``."""
        url = f"http://127.0.0.1:{self.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def component(self, name: str) -> dict:
        return next(c for c in self.status()["components"] if c["name"] == name)

    def wait_for(self, predicate, what: str, timeout: float = 60.0):
        """Poll ``predicate()`` until truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; stderr:\n{self.stderr_tail()}")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Cleanup: SIGKILL the launcher's whole group if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stderr_tail(self, lines: int = 40) -> str:
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.store_port}"

    def etcdctl(self, *args: str, endpoints: str = "") -> subprocess.CompletedProcess:
        """etcdctl against the node's datastore with the apiserver's etcd client cert."""
        pki = self.data_dir / "pki"
        return subprocess.run(
            [
                "etcdctl",
                f"--endpoints={endpoints or self.client_url}",
                f"--cacert={pki}/etcd/ca.crt",
                f"--cert={pki}/apiserver-etcd-client.crt",
                f"--key={pki}/apiserver-etcd-client.key",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
