"""A model of etcd's KV store with revisions and leases (etcd 3.4 semantics).

`State` is one point of the store's history: the live keys, the leases with
their attached keys, and the revision. `apply` runs one operation on it and
says what etcd would answer and which events the revision it made carries.
Rules the model follows, as etcd does:
- a put always makes a revision; a delete only when it deleted something; a
  txn only when its executed branch wrote; a revoke (or an expiry) only when
  the lease had keys, deleting them (sorted) in one revision;
- grants and compactions make no revision;
- a put with a lease that does not exist fails (nothing changes).
"""

from dataclasses import dataclass, field

from kvhistory.history import KV, Operation

# An event as watch validators compare it: (type, kv, prev kv or None).
Event = tuple[str, KV, KV | None]


@dataclass
class Outcome:
    """What applying an operation did: `wrote` (a revision was made), the
    events of that revision, and the answer etcd would give (`ok` False: the
    request is refused, e.g. lease not found)."""

    ok: bool
    wrote: bool = False
    events: list[Event] = field(default_factory=list)
    kvs: list[KV] | None = None
    deleted: int = 0
    succeeded: bool | None = None


class State:
    """Keys (key -> KV), leases (id -> attached keys), revision."""

    def __init__(self) -> None:
        self.kvs: dict[str, KV] = {}
        self.leases: dict[int, set[str]] = {}
        self.revision = 1  # etcd starts at revision 1 with nothing in it

    def copy(self) -> "State":
        other = State()
        other.kvs = dict(self.kvs)
        other.leases = {lease: set(keys) for lease, keys in self.leases.items()}
        other.revision = self.revision
        return other

    def read(self, key: str, range_end: str | None = None) -> list[KV]:
        """Live keys in [key, range_end) (just `key` when range_end is None), sorted."""
        if range_end is None:
            kv = self.kvs.get(key)
            return [] if kv is None else [kv]
        return [self.kvs[k] for k in sorted(self.kvs) if key <= k < range_end]

    # -- writes -------------------------------------------------------------------

    def _put(self, key: str, value: str, lease: int, rev: int) -> Event:
        prev = self.kvs.get(key)
        if prev is not None and prev[5]:
            self.leases.get(prev[5], set()).discard(key)
        kv = (key, value, prev[2] if prev else rev, rev, prev[4] + 1 if prev else 1, lease)
        self.kvs[key] = kv
        if lease:
            self.leases[lease].add(key)
        return ("PUT", kv, prev)

    def _delete(self, key: str, rev: int) -> Event:
        prev = self.kvs.pop(key)
        if prev[5]:
            self.leases.get(prev[5], set()).discard(key)
        return ("DELETE", (key, "", 0, rev, 0, 0), prev)

    def _revoke(self, lease: int) -> Outcome:
        keys = sorted(self.leases.pop(lease))
        if not keys:
            return Outcome(True)
        rev = self.revision + 1
        self.revision = rev
        return Outcome(True, True, [self._delete(key, rev) for key in keys])

    def apply(self, op: Operation) -> Outcome:
        """Run `op` (a write, read or lease call) on this state, in place."""
        req = op.request
        rev = self.revision + 1
        if op.kind == "put":
            if req["lease"] and req["lease"] not in self.leases:
                return Outcome(False)
            self.revision = rev
            return Outcome(True, True, [self._put(req["key"], req["value"], req["lease"], rev)])
        if op.kind == "delete":
            if req["key"] not in self.kvs:
                return Outcome(True, deleted=0)
            self.revision = rev
            return Outcome(True, True, [self._delete(req["key"], rev)], deleted=1)
        if op.kind == "txn":
            current = self.kvs.get(req["key"])
            if (current[3] if current else 0) != req["expect"]:
                return Outcome(True, kvs=self.read(req["key"]), succeeded=False)
            self.revision = rev
            event = self._put(req["key"], req["value"], 0, rev)
            return Outcome(True, True, [event], succeeded=True)
        if op.kind in ("get", "range"):
            return Outcome(True, kvs=self.read(req["key"], req.get("range_end")))
        if op.kind == "grant":
            if req["id"] in self.leases:
                return Outcome(False)
            self.leases[req["id"]] = set()
            return Outcome(True)
        if op.kind == "revoke":
            if req["id"] not in self.leases:
                return Outcome(False)
            return self._revoke(req["id"])
        if op.kind == "compact":
            return Outcome(True)
        raise ValueError(f"unknown operation kind {op.kind!r}")

    def expire(self, lease: int) -> Outcome:
        """The server revoking a lease on its own (expiry)."""
        return self._revoke(lease)
