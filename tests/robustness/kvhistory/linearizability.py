"""Is a recorded history linearizable against etcd's KV model?

etcd's revision does most of the work: every write that changed something
has its own revision, and every answer carries the revision it saw, so the
answered operations are totally ordered already (a write at revision R,
then the reads that saw R). What is left is what no answer tells:
- operations whose outcome is unknown (timeout, lost connection) may have
  made a revision nobody was told about; a revision no answer claims (a
  gap) is filled by one of them, or by a lease expiring;
- which one, when several fit, is a search (Wing & Gong: try a candidate,
  go on, undo on contradiction), pruned by what readers and watchers saw
  (every value is unique, so a value seen at a revision names its writer)
  and by real time (a call cannot take effect before it was made or after
  a later revision was seen).

Checks, each reported with the operations involved:
- unique revisions: two answered writes never share one ("reused revision");
- real time: an operation that started after another returned sees at
  least its revision, and a later revision if it writes ("stale read");
  nothing sees a revision whose write started after it returned;
- the model: at its revision every answer equals the model's (a read that
  misses an acknowledged write is a "lost write"), and every revision up to
  the last one seen is explained.
"""

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from kvhistory.history import Operation, WatchRecord
from kvhistory.model import Outcome, State

WRITE_KINDS = ("put", "delete", "txn", "revoke")
SEARCH_LIMIT = 200_000


@dataclass
class Violation:
    """One way the history breaks etcd's guarantees."""

    # "reused revision", "stale read", "stale write", "future read", "lost write",
    # "model" (another wrong answer), "unexplained" (a revision nothing made)
    kind: str
    message: str
    ops: list[Operation] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.kind}: {self.message}"]
        lines += [f"  {op.describe()}" for op in self.ops]
        return "\n".join(lines)


@dataclass
class Result:
    """The verdict: `violations` is empty when the history is linearizable.
    `writers` maps each revision to the operation (or "expire <lease>") that
    made it, for the watch validators; `events` maps it to its events."""

    ops_checked: int
    violations: list[Violation]
    writers: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    inconclusive: bool = False


def _claims_revision(op: Operation) -> bool:
    """An answered write that certainly made the revision of its answer."""
    if op.status != "ok":
        return False
    if op.kind == "put":
        return True
    if op.kind == "delete":
        return op.response.get("deleted", 0) > 0
    if op.kind == "txn":
        return bool(op.response.get("succeeded"))
    return False


def _answer_matches(op: Operation, outcome: Outcome) -> str:
    """'' when `op`'s answer is what the model says, else what differs."""
    if not outcome.ok:
        return "the model refuses it"
    if op.kind in ("get", "range") or (op.kind == "txn" and outcome.succeeded is False):
        got = [tuple(kv) for kv in op.response.get("kvs", [])]
        want = outcome.kvs or []
        if got != want:
            return f"read {got}, the model has {want}"
    if op.kind == "txn" and bool(op.response.get("succeeded")) != outcome.succeeded:
        return f"succeeded={op.response.get('succeeded')}, the model says {outcome.succeeded}"
    if op.kind == "delete" and op.response.get("deleted", 0) != outcome.deleted:
        return f"deleted {op.response.get('deleted')}, the model deletes {outcome.deleted}"
    return ""


class _Search:
    """The replay of revisions 1..last, branching at gaps."""

    def __init__(self, ops: list[Operation], watches: list[WatchRecord], expiry: bool) -> None:
        self.expiry = expiry
        self.violations: list[Violation] = []
        self.claims: dict[int, Operation] = {}
        self.reads: dict[int, list[Operation]] = defaultdict(list)
        self.revokes: dict[int, list[Operation]] = defaultdict(list)
        self.unknown = [o for o in ops if o.status == "unknown" and o.kind in WRITE_KINDS]
        answered = [o for o in ops if o.status == "ok"]
        for op in answered:
            rev = op.response["revision"]
            if _claims_revision(op):
                if rev in self.claims:
                    self.violations.append(
                        Violation(
                            "reused revision",
                            f"two acknowledged writes at revision {rev}",
                            [self.claims[rev], op],
                        )
                    )
                    continue
                self.claims[rev] = op
            elif op.kind == "revoke":
                self.revokes[rev].append(op)
            elif op.kind != "compact":
                self.reads[rev].append(op)
        for group in self.reads.values():
            group.sort(key=lambda o: o.invoke)
        self.seen_values, self.seen_deletes = self._observations(answered, watches)
        seen = [o.response["revision"] for o in answered] + list(self.seen_values)
        self.last = max(seen, default=1)
        # For real time: the earliest return among answers at or after each revision.
        by_rev = sorted(answered, key=lambda o: o.response["revision"])
        self.min_return_from: dict[int, float] = {}
        earliest = float("inf")
        for op in reversed(by_rev):
            earliest = min(earliest, op.ret)
            self.min_return_from[op.response["revision"]] = earliest
        self._revs = sorted(self.min_return_from)
        returns = sorted(answered, key=lambda o: o.ret)
        self._return_times = [o.ret for o in returns]
        running, self._max_rev_returned = 0, []
        for op in returns:
            running = max(running, op.response["revision"])
            self._max_rev_returned.append(running)
        self.steps = 0
        self.deepest: tuple[int, Violation] | None = None
        self.writers: dict = {}
        self.events: dict = {}

    @staticmethod
    def _observations(answered, watches):
        """Revision -> (key, value) put there, and revision -> keys deleted
        there, as readers and watchers saw them."""
        values: dict[int, tuple[str, str]] = {}
        deletes: dict[int, set[str]] = defaultdict(set)
        for op in answered:
            for kv in op.response.get("kvs", []):
                values[kv[3]] = (kv[0], kv[1])
        for watch in watches:
            for response in watch.responses:
                for kind, kv, _ in response.events:
                    if kind == "PUT":
                        values[kv[3]] = (kv[0], kv[1])
                    else:
                        deletes[kv[3]].add(kv[0])
        return values, deletes

    def _deadline(self, rev: int) -> float:
        """Revision `rev` existed by then: the earliest answer seeing it returned."""
        index = bisect.bisect_left(self._revs, rev)
        return self.min_return_from[self._revs[index]] if index < len(self._revs) else float("inf")

    def _floor(self, when: float) -> int:
        """The highest revision answered before `when`."""
        index = bisect.bisect_left(self._return_times, when)
        return self._max_rev_returned[index - 1] if index else 0

    def _fail(self, rev: int, violation: Violation) -> bool:
        if self.deepest is None or rev >= self.deepest[0]:
            self.deepest = (rev, violation)
        return False

    def _candidates(self, state: State, rev: int, used: set[int]) -> list:
        deadline = self._deadline(rev)
        fits = [
            o
            for o in self.unknown
            if id(o) not in used and o.invoke < deadline and self._floor(o.invoke) < rev
        ]
        if rev in self.seen_values:
            key, value = self.seen_values[rev]
            return [
                o
                for o in fits
                if o.kind in ("put", "txn")
                and o.request["key"] == key
                and o.request["value"] == value
            ]
        revokes = [o for o in self.revokes.get(rev, []) if id(o) not in used]
        expiries = [
            f"expire {lease}" for lease, keys in state.leases.items() if keys and self.expiry
        ]
        candidates = revokes + fits
        deleted = self.seen_deletes.get(rev)
        if deleted:
            candidates = [
                o
                for o in candidates
                if (o.kind == "delete" and {o.request["key"]} == deleted)
                or (o.kind == "revoke" and state.leases.get(o.request["id"]) == deleted)
            ]
            expiries = [e for e in expiries if state.leases[int(e.split()[1])] == deleted]
        return candidates + expiries

    def _apply_reads(self, state: State, rev: int, used: set[int]) -> bool:
        """Answers at `rev` after its write: reads, grants, revokes that wrote nothing."""
        for op in self.reads.get(rev, []):
            outcome = state.apply(op)
            problem = _answer_matches(op, outcome)
            if problem:
                return self._fail(rev, self._model_violation(op, problem, state))
        for op in self.revokes.get(rev, []):
            if id(op) in used:
                continue
            outcome = state.apply(op)
            if not outcome.ok or outcome.wrote:
                detail = "it revokes a lease the model lacks or deletes keys without a revision"
                return self._fail(rev, Violation("model", detail, [op]))
        return True

    def _model_violation(self, op: Operation, problem: str, state: State) -> Violation:
        """A wrong answer, with the writers of the revisions it disagrees on."""
        involved = [op]
        mod_revs = {kv[3] for kv in op.response.get("kvs", [])}
        if op.kind in ("get", "range", "txn", "delete"):
            end = op.request.get("range_end")
            mod_revs |= {kv[3] for kv in state.read(op.request["key"], end)}
        for mod_rev in sorted(mod_revs):
            writer = self.writers.get(mod_rev)
            if isinstance(writer, Operation) and writer is not op:
                involved.append(writer)
        kind = "lost write" if op.kind in ("get", "range") else "model"
        return Violation(kind, f"at revision {op.response['revision']}: {problem}", involved)

    def run(self, state: State, used: set[int]) -> bool:
        """Replay from `state` (its revision's answers not yet applied) to the end."""
        while True:
            rev = state.revision
            if not self._apply_reads(state, rev, used):
                return False
            if rev >= self.last:
                return True
            nxt = rev + 1
            claimed = self.claims.get(nxt)
            if claimed is not None:
                outcome = state.apply(claimed)
                problem = _answer_matches(claimed, outcome)
                if not problem and not outcome.wrote:
                    problem = "the model makes no revision for it"
                if problem:
                    return self._fail(nxt, self._model_violation(claimed, problem, state))
                self.writers[nxt], self.events[nxt] = claimed, outcome.events
                continue
            return self._branch(state, nxt, used)

    def _branch(self, state: State, rev: int, used: set[int]) -> bool:
        candidates = self._candidates(state, rev, used)
        for candidate in candidates:
            self.steps += 1
            if self.steps > SEARCH_LIMIT:
                return False
            trial = state.copy()
            if isinstance(candidate, str):
                outcome = trial.expire(int(candidate.split()[1]))
            else:
                outcome = trial.apply(candidate)
            if not outcome.ok or not outcome.wrote:
                continue
            answered = not isinstance(candidate, str) and candidate.status == "ok"
            if answered and _answer_matches(candidate, outcome):
                continue
            self.writers[rev], self.events[rev] = candidate, outcome.events
            if self.run(
                trial, used | ({id(candidate)} if not isinstance(candidate, str) else set())
            ):
                return True
        return self._fail(
            rev,
            Violation(
                "unexplained",
                f"revision {rev} was seen but no operation can have made it "
                f"({len(candidates)} candidates tried)",
                [o for o in self.unknown if o.invoke < self._deadline(rev)][-5:],
            ),
        )


def _real_time_violations(ops: list[Operation], writers: dict) -> list[Violation]:
    """An answer older than one returned before the call started (stale), or
    newer than any write started before it returned (future)."""
    answered = sorted((o for o in ops if o.status == "ok"), key=lambda o: o.invoke)
    by_return = sorted(answered, key=lambda o: o.ret)
    violations = []
    best: Operation | None = None
    index = 0
    for op in answered:
        while index < len(by_return) and by_return[index].ret < op.invoke:
            done = by_return[index]
            if best is None or done.response["revision"] > best.response["revision"]:
                best = done
            index += 1
        if best is None:
            continue
        floor = best.response["revision"]
        rev = op.response["revision"]
        if rev < floor or (rev == floor and _claims_revision(op)):
            what = "stale read" if not _claims_revision(op) else "stale write"
            violations.append(
                Violation(
                    what,
                    f"revision {rev} answered to a call made after revision {floor} was answered",
                    [best, op],
                )
            )
    latest_invoke: list[tuple[int, float, object]] = []
    newest = (0.0, None)
    for rev in sorted(writers):
        writer = writers[rev]
        if isinstance(writer, Operation) and writer.invoke > newest[0]:
            newest = (writer.invoke, writer)
        latest_invoke.append((rev, *newest))
    revs = [entry[0] for entry in latest_invoke]
    for op in answered:
        index = bisect.bisect_right(revs, op.response["revision"]) - 1
        if index >= 0 and latest_invoke[index][1] > op.ret:
            writer = latest_invoke[index][2]
            violations.append(
                Violation(
                    "future read",
                    f"revision {op.response['revision']} seen before its write "
                    f"(at or below it) was made",
                    [writer, op],
                )
            )
    return violations


def check(
    ops: list[Operation], watches: list[WatchRecord] = (), *, leases_expire: bool = False
) -> Result:
    """Check a history (operations of every client, watch records to name the
    writers of revisions nobody was told about). `leases_expire`: leases may
    have run out during the run, so a revision may be an expiry."""
    search = _Search(ops, list(watches), leases_expire)
    violations = list(search.violations)
    inconclusive = False
    if not search.run(State(), set()):
        inconclusive = search.steps > SEARCH_LIMIT
        if search.deepest is not None:
            violations.append(search.deepest[1])
    violations += _real_time_violations(ops, search.writers)
    return Result(
        ops_checked=len(ops),
        violations=violations,
        writers=search.writers,
        events=search.events,
        inconclusive=inconclusive,
    )
