"""The checker finds bugs seeded into a real recorded history: a stale read, a
lost write, a reused revision, and a watch that skips or repeats an event;
each is reported with the operations involved."""

import copy

import pytest
from harness.processes import ServerProcess, subject_kind
from kvhistory.history import Operation, read_history
from kvhistory.linearizability import check
from kvhistory.runner import run_and_check
from kvhistory.watches import validate_watches


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(operations, watch records, check result) of a short clean run."""
    workdir = tmp_path_factory.mktemp("seeded")
    server = ServerProcess(subject_kind(), workdir / "server").start().wait_ready()
    try:
        report = run_and_check(server, workdir / "run", clients=3, watchers=1, seconds=2.5)
        assert not report.violations, report.violations
    finally:
        server.stop()
    ops, watches = read_history(sorted((workdir / "run").glob("*.jsonl")))
    result = check(ops, watches)
    assert not result.violations, result.violations
    return ops, watches, result


def _acked_puts(ops: list[Operation]) -> list[Operation]:
    return [o for o in ops if o.kind == "put" and o.status == "ok"]


def test_stale_read_is_reported(recorded):
    ops, watches, result = copy.deepcopy(recorded)
    for write in _acked_puts(ops):
        rev = write.response["revision"]
        prev = result.events[rev][0][2]
        later = [
            o
            for o in ops
            if o.kind == "get"
            and o.status == "ok"
            and o.request["key"] == write.request["key"]
            and o.invoke > write.ret
        ]
        if later:
            stale = later[0]
            break
    else:
        pytest.fail("no put followed by a get of its key in the recording")
    stale.response = {"revision": rev - 1, "kvs": [prev] if prev else []}
    violations = check(ops, watches).violations
    assert [v.kind for v in violations] == ["stale read"], violations
    assert stale in violations[0].ops and len(violations[0].ops) == 2
    assert violations[0].ops[0].response["revision"] >= rev


def test_lost_write_is_reported(recorded):
    ops, watches, result = copy.deepcopy(recorded)
    last = max((o for o in ops if o.client == 0), key=lambda o: o.seq)
    puts = {o.response["revision"]: o for o in _acked_puts(ops)}
    lost = next(puts[kv[3]] for kv in last.response["kvs"] if kv[3] in puts)
    rev = lost.response["revision"]
    prev = result.events[rev][0][2]
    kvs = [kv for kv in last.response["kvs"] if kv[3] != rev]
    last.response["kvs"] = sorted(kvs + ([prev] if prev else []))
    violations = check(ops, watches).violations
    assert [v.kind for v in violations] == ["lost write"], violations
    assert violations[0].ops[0] is last and lost in violations[0].ops


def test_reused_revision_is_reported(recorded):
    ops, watches, _ = copy.deepcopy(recorded)
    first, second = _acked_puts(ops)[3:5]
    second.response["revision"] = first.response["revision"]
    violations = check(ops, watches).violations
    assert violations and violations[0].kind == "reused revision", violations
    assert violations[0].ops == [first, second]


def test_watch_that_skips_or_repeats_an_event_is_reported(recorded):
    _, watches, result = copy.deepcopy(recorded)
    record = next(w for w in watches if sum(len(r.events) for r in w.responses) > 3)
    response = next(r for r in record.responses if r.events)
    last = max(result.events)
    dropped = response.events.pop(0)
    problems = validate_watches([record], result.events, last)
    assert any(p.guarantee == "reliable" for p in problems), problems
    response.events.insert(0, dropped)
    response.events.insert(0, dropped)
    problems = validate_watches([record], result.events, last)
    assert {p.guarantee for p in problems} >= {"unique", "reliable"}, problems
