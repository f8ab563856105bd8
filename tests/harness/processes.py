"""Server processes under test: the real etcd 3.4 and our k0s-store.

Both are started with etcd's flag names on a fresh data directory and free
loopback ports, and are ready once a gRPC Range answers. Output goes to a log
file that fixtures print when a test fails. `K0S_DIFF_AGAINST=etcd` makes the
"subject" a second real etcd, to check the harness itself.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

from .certs import TLSFiles
from .ports import free_port

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Ports come from free_port(): free a moment before the server binds them, so
# another process may take one meanwhile. A first start that loses its port
# this way starts again on new ones, up to this many times.
PORT_ATTEMPTS = 3


class _PortTaken(Exception):
    """The server exited because its port was taken before it could bind."""


def subject_is_etcd() -> bool:
    """True when the harness self-check mode replaces our server by etcd."""
    return os.environ.get("K0S_DIFF_AGAINST", "") == "etcd"


def subject_kind() -> str:
    """Kind of the server under test: ours, or etcd in self-check mode."""
    return "etcd" if subject_is_etcd() else "ours"


def etcd_available() -> bool:
    """True when both `etcd` and `etcdctl` are on PATH."""
    return shutil.which("etcd") is not None and shutil.which("etcdctl") is not None


def channel_credentials(tls: TLSFiles) -> grpc.ChannelCredentials:
    """Client credentials (CA + client certificate) for a TLS server."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid`, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """One etcd-compatible server subprocess on its own data directory.

    Args:
        kind: "etcd" or "ours".
        workdir: a directory owned by this server (data dir and log inside).
        tls: certificates to serve TLS with client-cert auth, or None.
        extra_args: more command-line flags (etcd's names), e.g.
            ["--experimental-watch-progress-notify-interval=500ms"].
    """

    def __init__(
        self,
        kind: str,
        workdir: Path,
        *,
        tls: TLSFiles | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> None:
        if kind not in ("etcd", "ours"):
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.tls = tls
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._log_start = 0  # where this start's output begins in the log
        self._served = False  # ready at least once (its port is then its own)

    @property
    def endpoint(self) -> str:
        """host:port of the client listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Client URL with its scheme."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.endpoint}"

    def argv(self) -> list[str]:
        """The command line that starts this server."""
        if self.kind == "etcd":
            peer = f"http://127.0.0.1:{self.peer_port}"
            argv = [
                "etcd",
                "--name=default",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--initial-election-tick-advance=true",
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "k0s_store",
                "serve",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.url}",
            ]
        if self.tls:
            argv += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        return argv + self.extra_args

    def start(self) -> "ServerProcess":
        """Spawn the server (no waiting); the environment is passed through."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log_start = self._log.tell()
        self._log.write(f"==> {' '.join(self.argv())}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            cwd=self.workdir,
            start_new_session=True,
        )
        return self

    def channel(self) -> grpc.Channel:
        """A new gRPC channel to this server (TLS when it serves TLS)."""
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self.tls:
            return grpc.secure_channel(self.endpoint, channel_credentials(self.tls), options)
        return grpc.insecure_channel(self.endpoint, options)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> "ServerProcess":
        """Block until a Range answers; raise with the log tail if it never does.
        A first start whose port was taken meanwhile starts again on new ports."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._wait_ready(timeout, may_move=attempt < PORT_ATTEMPTS)
                self._served = True
                return self
            except _PortTaken:
                self._reap()
                self.port, self.peer_port = free_port(), free_port()
                self.start()
        raise AssertionError("unreachable: the last attempt raises")

    def _wait_ready(self, timeout: float, may_move: bool) -> None:
        deadline = time.monotonic() + timeout
        with self.channel() as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    if may_move and not self._served and self._lost_port():
                        raise _PortTaken()
                    raise RuntimeError(f"{self.kind} exited early:\n{self.log_tail()}")
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1.0)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{self.kind} not ready after {timeout}s:\n{self.log_tail()}"
                        ) from None
                    time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reap()

    def kill9(self) -> None:
        """SIGKILL: the crash the durability test simulates."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reap()

    def restart(self) -> "ServerProcess":
        """Stop, start again on the same data directory and port, and wait."""
        self.stop()
        return self.start().wait_ready()

    def cpu_seconds(self) -> float:
        """utime + stime of the server process."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def _lost_port(self) -> bool:
        """True if this start's output says a port was in use (ours, etcd)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return b"address already in use" in log.read().lower()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's output."""
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
