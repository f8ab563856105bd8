"""Child processes kept running: start, notice exits, restart with backoff, stop.

A :class:`Child` is one component's process. The launcher's main thread owns
every child and calls :meth:`Child.poll` in its loop; nothing else starts or
reaps processes, so a restart never races a stop. Children are put in their
own session (a Ctrl-C in the launcher's terminal reaches only the launcher,
which stops them in order) and get SIGTERM from the kernel should the
launcher die without stopping them (``PR_SET_PDEATHSIG``).
"""

import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("k0s_node")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long before exiting starts over at FIRST_BACKOFF_S
STOP_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM us when the launcher's thread exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class ComponentSpec:
    """How to run one component.

    Attributes:
        name: ``store``, ``etcd``, ``kube-apiserver``...
        argv: the command line.
        log_path: its output, appended across restarts.
        health: returns None when healthy, else a short reason; called from
            the health monitor's thread.
        certificates: leaf names whose renewal requires a restart.
    """

    name: str
    argv: list[str]
    log_path: Path
    health: Callable[[], str | None]
    certificates: frozenset[str] = frozenset()


@dataclass
class Child:
    """The live state of one component's process."""

    spec: ComponentSpec
    proc: subprocess.Popen | None = None
    started_at: float = 0.0  # time.monotonic() of the last start
    restarts: int = 0
    backoff: float = FIRST_BACKOFF_S
    restart_at: float | None = None  # when a crashed child starts again
    healthy: bool = False
    ever_healthy: bool = False
    health_reason: str = "not started"
    last_exit: int | None = None
    _started_once: bool = field(default=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def uptime(self) -> float:
        """Seconds since the current process started (0 when not running)."""
        return time.monotonic() - self.started_at if self.running else 0.0

    def state(self) -> str:
        """``running``, ``backoff`` (crashed, waiting to restart) or ``stopped``."""
        if self.running:
            return "running"
        return "backoff" if self.restart_at is not None else "stopped"

    def start(self) -> None:
        """Spawn the process, its output appended to its log file."""
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spec.log_path, "ab") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out.write(f"==> {stamp} k0s-node starts: {' '.join(self.spec.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # spawned from the main thread only
            )
        if self._started_once:
            self.restarts += 1
        self._started_once = True
        self.started_at = time.monotonic()
        self.restart_at = None
        self.healthy = False
        self.health_reason = "starting"
        log.info("%s started (pid %d)", self.name, self.proc.pid)

    def poll(self, now: float) -> None:
        """Notice an exit and schedule the restart; restart when its time has come."""
        if self.proc is not None and self.restart_at is None and self.proc.poll() is not None:
            self.last_exit = self.proc.returncode
            ran = now - self.started_at
            if ran >= STABLE_AFTER_S:
                self.backoff = FIRST_BACKOFF_S
            self.restart_at = now + self.backoff
            log.warning(
                "%s exited (%s) after %.1fs; restarting in %.1fs (see %s)",
                self.name,
                _describe_exit(self.last_exit),
                ran,
                self.backoff,
                self.spec.log_path,
            )
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)
            self.healthy = False
            self.health_reason = "exited"
        if self.restart_at is not None and now >= self.restart_at:
            self.start()

    def restart(self, why: str) -> None:
        """Stop the process and start it again now (e.g. new certificates)."""
        log.info("restarting %s: %s", self.name, why)
        self.stop()
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`; no restart follows."""
        self.restart_at = None
        self.healthy = False
        self.health_reason = "stopped"
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: killing it", self.name, STOP_TIMEOUT_S)
            self.proc.kill()
            self.proc.wait()
        self.last_exit = self.proc.returncode
        log.info("%s stopped (%s)", self.name, _describe_exit(self.last_exit))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"
