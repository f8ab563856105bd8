"""Validators of recorded watch streams against the checked history.

Each watch record (one WatchCreateRequest until its stream broke) is held to
etcd's watch guarantees, using the events the linearizability check found
for every revision (`Result.events`):
- ordered: event revisions never go back;
- unique: no (revision, key) twice;
- atomic: the events of one revision come in one response (unless fragmented);
- reliable: from its start to the last revision it reported (by an event or
  a progress notification), the watch got exactly the model's events that
  match its key range and filters, with prev_kv when asked (prevKV correct)
  and create_revision == mod_revision exactly for creations (isCreate);
- resumable: a watch resumed after a broken stream starts right after the
  last revision the previous one reported (so, with reliability, nothing
  is lost or repeated across the break);
- bookmarkable: a progress notification at revision P comes after every
  event up to P and before any event after P.
A compacted start cancels the watch (compact_revision set): that record
must carry no events.
"""

import itertools
from dataclasses import dataclass

from kvhistory.history import WatchRecord


@dataclass
class WatchViolation:
    """One broken watch guarantee."""

    guarantee: str
    watch: str
    message: str

    def __str__(self) -> str:
        return f"{self.guarantee} ({self.watch}): {self.message}"


def _expected(record: WatchRecord, events: dict, first: int, last: int) -> list:
    """The model's events of revisions [first, last] this watch should get."""
    wanted = []
    for rev in range(first, last + 1):
        for kind, kv, prev in events.get(rev, []):
            if not record.key <= kv[0] < record.range_end:
                continue
            if (kind == "PUT" and "NOPUT" in record.filters) or (
                kind == "DELETE" and "NODELETE" in record.filters
            ):
                continue
            wanted.append((kind, tuple(kv), tuple(prev) if prev and record.prev_kv else None))
    return wanted


def validate_watch(
    record: WatchRecord, events: dict, last_revision: int, compacted: int = 0
) -> list[WatchViolation]:
    """Every guarantee for one watch record; `last_revision` is the last
    revision the history explains; `compacted` the highest compaction asked
    for (a prev_kv at or below it may be gone: etcd then sends none)."""
    name = f"watcher {record.watcher} segment {record.segment} from {record.start_revision}"
    problems: list[WatchViolation] = []

    def fail(guarantee: str, message: str) -> None:
        problems.append(WatchViolation(guarantee, name, message))

    if any(r.compact_revision for r in record.responses):
        if any(r.events for r in record.responses):
            fail("compaction", "a watch cancelled as compacted delivered events")
        return problems
    got: list = []
    seen: set = set()
    previous = 0
    reported = record.start_revision - 1
    for response in record.responses:
        revisions = [kv[3] for _, kv, _ in response.events]
        for kind, kv, prev in response.events:
            rev = kv[3]
            if rev < previous:
                fail("ordered", f"revision {rev} after {previous}")
            if (rev, kv[0]) in seen:
                fail("unique", f"{kind} {kv[0]} at revision {rev} twice")
            seen.add((rev, kv[0]))
            if kind == "PUT" and (kv[2] == kv[3]) != (kv[4] == 1):
                fail("isCreate", f"{kv} with prev {prev}")
            previous = rev
            got.append((kind, tuple(kv), tuple(prev) if prev else None))
        if not response.fragment:
            for rev in set(revisions):
                wanted = len(_expected(record, events, rev, rev))
                if revisions.count(rev) < wanted:
                    fail("atomic", f"revision {rev} split: {revisions.count(rev)} of {wanted}")
        if response.events:
            reported = max(reported, revisions[-1])
        elif not response.created and not response.canceled:
            if response.revision < reported:
                fail(
                    "bookmarkable", f"progress at {response.revision} after an event at {reported}"
                )
            reported = max(reported, response.revision)
            if got != _expected(record, events, record.start_revision, response.revision):
                fail("bookmarkable", f"progress at {response.revision} before its events")
    if reported > last_revision:
        fail("reliable", f"reported revision {reported}, past the history's last {last_revision}")
        return problems
    want = _compacted_prevs(
        got, _expected(record, events, record.start_revision, reported), compacted
    )
    if got != want:
        index = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        fail(
            "reliable",
            f"events differ from the model at #{index}: got {got[index : index + 2]}, "
            f"want {want[index : index + 2]} ({len(got)} got, {len(want)} wanted)",
        )
    return problems


def _compacted_prevs(got: list, want: list, compacted: int) -> list:
    """`want` with the prev_kv a watch got as None where that prev's revision may
    have been compacted when the event was sent (etcd then has none to send)."""
    return [
        (kind, kv, None)
        if prev is not None and prev[3] <= compacted and i < len(got) and got[i][2] is None
        else (kind, kv, prev)
        for i, (kind, kv, prev) in enumerate(want)
    ]


def validate_watches(
    records: list[WatchRecord], events: dict, last_revision: int, compacted: int = 0
) -> list:
    """Every record, plus resumability across each watcher's segments."""
    problems: list[WatchViolation] = []
    by_watcher: dict[int, list[WatchRecord]] = {}
    for record in records:
        by_watcher.setdefault(record.watcher, []).append(record)
        problems += validate_watch(record, events, last_revision, compacted)
    for watcher, segments in by_watcher.items():
        segments.sort(key=lambda r: r.segment)
        for before, after in itertools.pairwise(segments):
            last = _last_reported(before)
            if last is not None and after.start_revision != last + 1:
                problems.append(
                    WatchViolation(
                        "resumable",
                        f"watcher {watcher}",
                        f"segment {after.segment} starts at {after.start_revision}, "
                        f"the previous one reported up to {last}",
                    )
                )
    return problems


def _last_reported(record: WatchRecord) -> int | None:
    """The last revision a record reported (None if cancelled as compacted)."""
    last = record.start_revision - 1
    for response in record.responses:
        if response.compact_revision:
            return None
        if response.events:
            last = max(last, response.events[-1][1][3])
        elif not response.created and not response.canceled:
            last = max(last, response.revision)
    return last
