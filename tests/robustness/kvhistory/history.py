"""The recorded history: one `Operation` per client call, one `WatchRecord`
per watch stream, stored as JSON lines so recorder processes append as they go.

Times are CLOCK_MONOTONIC seconds (`time.monotonic()`), one clock for every
process of the machine, so calls of different processes can be ordered.

An operation's `status` says what the client knows:
- "ok": the server answered; `response` holds what it said.
- "fail": the server refused with an etcd error that means "not applied"
  (lease not found, revision compacted...); `response` has code and details.
- "unknown": timeout, connection lost, server stopping: the call may or may
  not have taken effect ("maybe happened"), the case that makes the check hard.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Status codes after which a call may have taken effect.
MAYBE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "INTERNAL"})

# A stored key-value as the checker compares it: key, value, create, mod, version, lease.
KV = tuple[str, str, int, int, int, int]


@dataclass
class Operation:
    """One client call.

    `kind` and `request`:
    - "put": key, value, lease (0: none)
    - "get": key;  "range": key, range_end (every key in [key, range_end))
    - "delete": key
    - "txn": key, expect (mod_revision compared with ==), value; success puts
      value, failure reads the key (the kube-apiserver's update)
    - "grant": id, ttl;  "revoke": id
    - "compact": revision

    `response` (status "ok"): `revision` (header), plus `kvs` (list of KV) for
    get/range and a failed txn, `deleted` for delete, `succeeded` for txn.
    """

    client: int
    seq: int
    kind: str
    request: dict
    invoke: float
    ret: float = 0.0
    status: str = "unknown"
    response: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"c{self.client}#{self.seq}"

    def describe(self) -> str:
        """A one-line account for reports."""
        return (
            f"{self.name} {self.kind}({self.request}) [{self.invoke:.3f}..{self.ret:.3f}] "
            f"{self.status} {self.response}"
        )


@dataclass
class WatchResponse:
    """One WatchResponse as received."""

    time: float
    revision: int
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    fragment: bool = False
    # (type "PUT"/"DELETE", kv as KV, prev kv as KV or None)
    events: list = field(default_factory=list)


@dataclass
class WatchRecord:
    """One watch (one WatchCreateRequest on a stream) and everything it got.

    `error` is how the stream ended when it did not end by a cancel (the
    server went away): a resumed watch is a new record starting after the
    last revision this one reported.
    """

    watcher: int
    segment: int
    key: str
    range_end: str
    start_revision: int
    prev_kv: bool
    filters: list[str]
    progress_notify: bool
    responses: list[WatchResponse] = field(default_factory=list)
    error: str = ""


def _write(out, data: dict) -> None:
    out.write(json.dumps(data) + "\n")
    out.flush()


def write_operation(out, op: Operation) -> None:
    """Append a finished operation to an open JSON-lines file."""
    _write(out, {"type": "op", **asdict(op)})


def write_watch_start(out, record: WatchRecord) -> None:
    """Append the header of a watch (its responses follow, one line each)."""
    data = asdict(record)
    del data["responses"], data["error"]
    _write(out, {"type": "watch", **data})


def write_watch_response(out, record: WatchRecord, response: WatchResponse) -> None:
    """Append one response of a watch, right when it arrived."""
    _write(
        out,
        {"type": "wresp", "watcher": record.watcher, "segment": record.segment, **asdict(response)},
    )


def write_watch_end(out, record: WatchRecord, error: str) -> None:
    """Append how a watch stream ended (the server went away, or a cancel)."""
    _write(
        out, {"type": "wend", "watcher": record.watcher, "segment": record.segment, "error": error}
    )


def _kv(value) -> KV | None:
    return None if value is None else tuple(value)


def read_history(paths: list[Path]) -> tuple[list[Operation], list[WatchRecord]]:
    """Every operation and watch record of the given files; a torn last line
    (its writer was killed) is skipped."""
    ops: list[Operation] = []
    watches: dict[tuple[int, int], WatchRecord] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = data.pop("type")
            if kind == "op":
                response = data["response"]
                if "kvs" in response:
                    response["kvs"] = [tuple(kv) for kv in response["kvs"]]
                ops.append(Operation(**data))
            elif kind == "watch":
                watches[data["watcher"], data["segment"]] = WatchRecord(**data)
            elif kind == "wresp":
                record = watches[data.pop("watcher"), data.pop("segment")]
                data["events"] = [(t, _kv(kv), _kv(prev)) for t, kv, prev in data["events"]]
                record.responses.append(WatchResponse(**data))
            elif kind == "wend":
                watches[data["watcher"], data["segment"]].error = data["error"]
    return ops, list(watches.values())
