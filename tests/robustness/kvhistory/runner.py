"""One recorded run: client and watcher processes against a server process,
faults injected from this process meanwhile, then the checks.

`run_and_check` returns a `Report` with the figures the tests assert on and
print (operations checked, faults injected, violations).
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kvhistory.history import Operation, read_history
from kvhistory.linearizability import check
from kvhistory.recorder import PREFIX, PREFIX_END, Client
from kvhistory.watches import validate_watches

HERE = Path(__file__).resolve().parent.parent
WATCH_TAIL_S = 1.0  # watchers outlive the clients by this, to see the last writes
AFTER_FAULTS_S = 1.5
START_TIMEOUT_S = 60.0


@dataclass
class Report:
    """What a run did and what the checks found."""

    ops: int = 0
    answered: int = 0
    answered_after_faults: int = 0
    unknown: int = 0
    revisions: int = 0
    watch_events: int = 0
    # Cancels as compacted: a watcher far behind frequent compactions (etcd
    # syncs lagging watchers every 100 ms) may see more of these than events.
    watch_compactions: int = 0
    faults: list[str] = field(default_factory=list)
    violations: list = field(default_factory=list)
    inconclusive: bool = False

    def _faults(self) -> str:
        if len(self.faults) > 4:
            return f"{len(self.faults)} ({self.faults[0]} ... {self.faults[-1]})"
        return ", ".join(self.faults) or "none"

    def summary(self) -> str:
        return (
            f"{self.ops} ops ({self.answered} answered, {self.unknown} unknown), "
            f"{self.revisions} revisions, {self.watch_events} watch events, "
            f"{self.watch_compactions} watch compactions, "
            f"faults: {self._faults()}; {len(self.violations)} violations"
        )


def spawn_recorder(
    role: str, endpoint: str, ident: int, seed: int, stop: Path, out: Path, *flags: str
) -> subprocess.Popen:
    """A recorder process ("client" or "watcher") appending to `out` until `stop` exists."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "kvhistory.recorder", role, endpoint]
    argv += [str(ident), str(seed), str(stop), str(out), *flags]
    return subprocess.Popen(argv, env=env, start_new_session=True)


def final_read(endpoint: str, out: Path) -> Operation:
    """A last range over every key, recorded (client 0): it holds every
    acknowledged write still in place against the model."""
    with open(out, "a") as sink:
        client = Client(endpoint, 0, 0, sink)
        for _ in range(50):  # the server may still be starting
            op = client.call("range", key=PREFIX, range_end=PREFIX_END)
            if op.status == "ok":
                return op
            time.sleep(0.2)
    raise AssertionError(f"the final read never succeeded: {op.describe()}")


def _wait_started(files: list[Path], procs: list[subprocess.Popen]) -> None:
    """Until every recorder has written its first record (they start slowly on
    a loaded machine, and faults must find them running)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all(path.exists() and path.stat().st_size for path in files):
        dead = [proc.args for proc in procs if proc.poll() is not None]
        assert not dead, f"recorders exited early: {dead}"
        assert time.monotonic() < deadline, "recorders did not start"
        time.sleep(0.05)


def _stop(procs: list[subprocess.Popen], stop: Path) -> None:
    stop.touch()
    try:
        for proc in procs:
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_and_check(
    server,
    workdir: Path,
    *,
    clients: int = 4,
    watchers: int = 2,
    seconds: float = 3.0,
    seed: int = 1,
    faults: Callable[[], list[str]] | None = None,
    leases_expire: bool = False,
    progress_requests: bool = True,
    preamble: Callable[[Client], None] | None = None,
) -> Report:
    """Record a run against `server` (a harness ServerProcess, ready), then
    check the history and every watch.

    Clients run for `seconds`, and at least AFTER_FAULTS_S past the return of
    `faults()` (called once they are started; it returns what it injected), so
    the history always shows the server serving again. `progress_requests`:
    watchers may send RequestProgress (etcd 3.4.23 answers it out of order
    with events, its known bug fixed in 3.4.24). `preamble(client)` runs
    first with a recording client (client 99), e.g. to set up a lease. Every
    `*.jsonl` in `workdir` is part of the checked history, so a fault may
    record its own calls there.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if preamble is not None:
        with open(workdir / "preamble.jsonl", "a") as sink:
            preamble(Client(server.endpoint, 99, seed, sink))
    stop_clients, stop_watchers = workdir / "stop-clients", workdir / "stop-watchers"
    flags = () if progress_requests else ("--no-progress",)
    client_files = [workdir / f"client-{i}.jsonl" for i in range(1, clients + 1)]
    watcher_files = [workdir / f"watcher-{i}.jsonl" for i in range(1, watchers + 1)]
    watcher_procs = [
        spawn_recorder(
            "watcher", server.endpoint, i, seed * 1000 + 100 + i, stop_watchers, path, *flags
        )
        for i, path in enumerate(watcher_files, start=1)
    ]
    client_procs = [
        spawn_recorder("client", server.endpoint, i, seed * 1000 + i, stop_clients, path)
        for i, path in enumerate(client_files, start=1)
    ]
    report = Report()
    try:
        _wait_started([*client_files, *watcher_files], [*client_procs, *watcher_procs])
        started = time.monotonic()
        if faults is not None:
            report.faults = faults()
        faults_done = time.monotonic()
        time.sleep(max(started + seconds, faults_done + AFTER_FAULTS_S) - time.monotonic())
        _stop(client_procs, stop_clients)
        time.sleep(WATCH_TAIL_S)
    finally:
        _stop(client_procs, stop_clients)
        _stop(watcher_procs, stop_watchers)
    final_read(server.endpoint, workdir / "final.jsonl")
    # Every history of the run: recorders, preamble, final read, and what
    # faults recorded (e.g. a filler's writes).
    ops, watch_records = read_history(sorted(workdir.glob("*.jsonl")))
    result = check(ops, watch_records, leases_expire=leases_expire)
    report.ops = result.ops_checked
    report.answered = sum(op.status == "ok" for op in ops)
    report.answered_after_faults = sum(op.status == "ok" and op.invoke > faults_done for op in ops)
    report.unknown = sum(op.status == "unknown" for op in ops)
    report.revisions = max(result.events, default=1)
    report.watch_events = sum(len(r.events) for w in watch_records for r in w.responses)
    report.watch_compactions = sum(
        bool(r.compact_revision) for w in watch_records for r in w.responses
    )
    report.inconclusive = result.inconclusive
    report.violations = list(result.violations)
    if not result.violations:
        compacted = max((op.request["revision"] for op in ops if op.kind == "compact"), default=0)
        report.violations += validate_watches(
            watch_records, result.events, report.revisions, compacted
        )
    return report
