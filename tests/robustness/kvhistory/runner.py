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
WATCH_TAIL_S = 2.0  # watchers outlive the clients by this, to see the last writes


@dataclass
class Report:
    """What a run did and what the checks found."""

    ops: int = 0
    answered: int = 0
    unknown: int = 0
    revisions: int = 0
    watch_events: int = 0
    faults: list[str] = field(default_factory=list)
    violations: list = field(default_factory=list)
    inconclusive: bool = False

    def summary(self) -> str:
        return (
            f"{self.ops} ops ({self.answered} answered, {self.unknown} unknown), "
            f"{self.revisions} revisions, {self.watch_events} watch events, "
            f"faults: {', '.join(self.faults) or 'none'}; {len(self.violations)} violations"
        )


def _spawn(role: str, endpoint: str, ident: int, seed: int, seconds: float, out: Path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "kvhistory.recorder", role, endpoint]
    argv += [str(ident), str(seed), str(seconds), str(out)]
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


def run_and_check(
    server,
    workdir: Path,
    *,
    clients: int = 4,
    watchers: int = 2,
    seconds: float = 6.0,
    seed: int = 1,
    faults: Callable[[float], list[str]] | None = None,
    leases_expire: bool = False,
) -> Report:
    """Record a run against `server` (a harness ServerProcess, ready), with
    `faults(deadline)` called meanwhile (it returns what it injected), then
    check the history and every watch."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = [workdir / f"client-{i}.jsonl" for i in range(1, clients + 1)]
    files += [workdir / f"watcher-{i}.jsonl" for i in range(1, watchers + 1)]
    procs = [
        _spawn("client", server.endpoint, i, seed * 1000 + i, seconds, files[i - 1])
        for i in range(1, clients + 1)
    ]
    procs += [
        _spawn("watcher", server.endpoint, i, seed * 1000 + 100 + i, seconds + WATCH_TAIL_S, path)
        for i, path in enumerate(files[clients:], start=1)
    ]
    report = Report()
    try:
        if faults is not None:
            report.faults = faults(time.monotonic() + seconds)
        for proc in procs:
            proc.wait(timeout=seconds + WATCH_TAIL_S + 30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    final = workdir / "final.jsonl"
    final_read(server.endpoint, final)
    ops, watch_records = read_history([*files, final])
    result = check(ops, watch_records, leases_expire=leases_expire)
    report.ops = result.ops_checked
    report.answered = sum(op.status == "ok" for op in ops)
    report.unknown = sum(op.status == "unknown" for op in ops)
    report.revisions = max(result.events, default=1)
    report.watch_events = sum(len(r.events) for w in watch_records for r in w.responses)
    report.inconclusive = result.inconclusive
    report.violations = list(result.violations)
    if not result.violations:
        report.violations += validate_watches(watch_records, result.events, report.revisions)
    return report
