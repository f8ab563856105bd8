"""Client processes that load a server and record what they saw.

    python -m kvhistory.recorder client ENDPOINT ID SEED STOPFILE OUTFILE
    python -m kvhistory.recorder watcher ENDPOINT ID SEED STOPFILE OUTFILE [--no-progress]

A client runs a random mix of etcd calls (put, get, prefix range, delete,
txn with a compare, lease grant/revoke, put with a lease, compaction) over a
few contended keys, one at a time, until STOPFILE exists (at most
MAX_SECONDS), recording each call. A watcher keeps one watch on the key
prefix (random prev_kv, filters and progress notification; progress
requests now and then, unless --no-progress); when the stream
breaks it resumes from the revision after the last one it reported, as
clientv3 does. Every record is flushed as soon as it is known, so a killed
recorder loses nothing it has written.
"""

import queue
import random
import sys
import threading
import time
from pathlib import Path

import grpc

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc
from kvhistory.history import (
    MAYBE_CODES,
    Operation,
    WatchRecord,
    WatchResponse,
    write_operation,
    write_watch_end,
    write_watch_response,
    write_watch_start,
)

PREFIX = "k/"
PREFIX_END = "k0"  # "/" + 1
KEY_COUNT = 8
CALL_TIMEOUT_S = 1.5
MAX_SECONDS = 120.0
LEASE_TTL = 600  # long: a lease ends by a revoke unless a test wants expiry
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]
_EVENT_TYPES = {0: "PUT", 1: "DELETE"}


def _kv(kv) -> tuple:
    return (
        kv.key.decode(),
        kv.value.decode(),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease,
    )


class Client:
    """One recording client: calls one at a time, each recorded."""

    def __init__(self, endpoint: str, client_id: int, seed: int, out) -> None:
        self.channel = grpc.insecure_channel(endpoint, CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.id = client_id
        self.rng = random.Random(seed)
        self.out = out
        self.seq = 0
        self.leases: list[int] = []
        self.mod_revisions: dict[str, int] = {}
        self.last_revision = 0

    def _key(self) -> str:
        return f"{PREFIX}{self.rng.randrange(KEY_COUNT)}"

    def _value(self) -> str:
        return f"{self.id}.{self.seq}"

    def step(self) -> None:
        """One random call, recorded."""
        self.seq += 1
        roll = self.rng.random()
        if roll < 0.22:
            self.call("put", key=self._key(), value=self._value(), lease=0)
        elif roll < 0.40:
            self.call("get", key=self._key())
        elif roll < 0.50:
            self.call("range", key=PREFIX, range_end=PREFIX_END)
        elif roll < 0.58:
            self.call("delete", key=self._key())
        elif roll < 0.80:
            key = self._key()
            expect = self.mod_revisions.get(key, 0) if self.rng.random() < 0.8 else 0
            self.call("txn", key=key, expect=expect, value=self._value())
        elif roll < 0.85:
            self.call("grant", id=self.id * 1_000_000 + self.seq, ttl=LEASE_TTL)
        elif roll < 0.90 and self.leases:
            self.call(
                "put", key=self._key(), value=self._value(), lease=self.rng.choice(self.leases)
            )
        elif roll < 0.94 and self.leases:
            lease = self.leases.pop(self.rng.randrange(len(self.leases)))
            self.call("revoke", id=lease)
        elif roll < 0.96 and self.last_revision > 30:
            self.call("compact", revision=self.last_revision - 25)
        else:
            self.call("get", key=self._key())

    def call(self, kind: str, **request) -> Operation:
        op = Operation(self.id, self.seq, kind, request, time.monotonic())
        try:
            op.response = self._send(kind, request)
            op.status = "ok"
        except grpc.RpcError as error:
            code = error.code().name
            op.status = "unknown" if code in MAYBE_CODES else "fail"
            op.response = {"code": code, "details": error.details() or ""}
        op.ret = time.monotonic()
        write_operation(self.out, op)
        if op.status == "ok":
            self._learn(op)
        elif op.status == "unknown":
            time.sleep(0.05)  # the server is away: do not spin
        return op

    def _learn(self, op: Operation) -> None:
        self.last_revision = max(self.last_revision, op.response["revision"])
        for kv in op.response.get("kvs", []):
            self.mod_revisions[kv[0]] = kv[3]
        if op.kind in ("put", "txn") and op.response.get("succeeded", True):
            self.mod_revisions[op.request["key"]] = op.response["revision"]
        if op.kind == "grant":
            self.leases.append(op.request["id"])

    def _send(self, kind: str, r: dict) -> dict:
        timeout = CALL_TIMEOUT_S
        if kind == "put":
            req = rpc_pb2.PutRequest(
                key=r["key"].encode(), value=r["value"].encode(), lease=r["lease"]
            )
            return {"revision": self.kv.Put(req, timeout=timeout).header.revision}
        if kind in ("get", "range"):
            end = r.get("range_end", "").encode()
            resp = self.kv.Range(
                rpc_pb2.RangeRequest(key=r["key"].encode(), range_end=end), timeout=timeout
            )
            return {"revision": resp.header.revision, "kvs": [_kv(kv) for kv in resp.kvs]}
        if kind == "delete":
            resp = self.kv.DeleteRange(
                rpc_pb2.DeleteRangeRequest(key=r["key"].encode()), timeout=timeout
            )
            return {"revision": resp.header.revision, "deleted": resp.deleted}
        if kind == "txn":
            key = r["key"].encode()
            compare = rpc_pb2.Compare(
                result=rpc_pb2.Compare.EQUAL,
                target=rpc_pb2.Compare.MOD,
                key=key,
                mod_revision=r["expect"],
            )
            put = rpc_pb2.RequestOp(
                request_put=rpc_pb2.PutRequest(key=key, value=r["value"].encode())
            )
            get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
            resp = self.kv.Txn(
                rpc_pb2.TxnRequest(compare=[compare], success=[put], failure=[get]), timeout=timeout
            )
            answer = {"revision": resp.header.revision, "succeeded": resp.succeeded}
            if not resp.succeeded:
                answer["kvs"] = [_kv(kv) for kv in resp.responses[0].response_range.kvs]
            return answer
        if kind == "grant":
            req = rpc_pb2.LeaseGrantRequest(ID=r["id"], TTL=r["ttl"])
            return {"revision": self.lease.LeaseGrant(req, timeout=timeout).header.revision}
        if kind == "revoke":
            req = rpc_pb2.LeaseRevokeRequest(ID=r["id"])
            return {"revision": self.lease.LeaseRevoke(req, timeout=timeout).header.revision}
        if kind == "compact":
            req = rpc_pb2.CompactionRequest(revision=r["revision"])
            return {"revision": self.kv.Compact(req, timeout=timeout).header.revision}
        raise ValueError(kind)


class Watcher:
    """One watch on the key prefix, resumed across broken streams."""

    def __init__(
        self, endpoint: str, watcher_id: int, seed: int, out, progress_requests: bool = True
    ) -> None:
        self.channel = grpc.insecure_channel(endpoint, CHANNEL_OPTIONS)
        self.stub = rpc_pb2_grpc.WatchStub(self.channel)
        self.id = watcher_id
        rng = random.Random(seed)
        self.prev_kv = rng.random() < 0.7
        self.filters = rng.choice([[], [], [], ["NOPUT"], ["NODELETE"]])
        self.progress_notify = rng.random() < 0.5
        self.request_progress = progress_requests and rng.random() < 0.5
        self.out = out
        self.next_revision = 1  # from the beginning: every event of the run
        self.stopping = threading.Event()
        self.call = None

    def run(self, stop: Path) -> None:
        """Watch, resuming after every broken stream, until `stop` exists."""
        threading.Thread(target=self._stop_when, args=(stop,), daemon=True).start()
        segment = 0
        while not self.stopping.is_set():
            segment += 1
            self._segment(segment)
            time.sleep(0.05)

    def _stop_when(self, stop: Path) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not stop.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stopping.set()
        if self.call is not None:
            self.call.cancel()

    def _segment(self, segment: int) -> None:
        record = WatchRecord(
            self.id,
            segment,
            PREFIX,
            PREFIX_END,
            self.next_revision,
            self.prev_kv,
            self.filters,
            self.progress_notify,
        )
        requests: queue.SimpleQueue = queue.SimpleQueue()
        filters = [getattr(rpc_pb2.WatchCreateRequest, name) for name in self.filters]
        create = rpc_pb2.WatchCreateRequest(
            key=PREFIX.encode(),
            range_end=PREFIX_END.encode(),
            start_revision=self.next_revision,
            prev_kv=self.prev_kv,
            filters=filters,
            progress_notify=self.progress_notify,
        )
        requests.put(rpc_pb2.WatchRequest(create_request=create))
        call = self.call = self.stub.Watch(iter(requests.get, None))
        if self.stopping.is_set():
            call.cancel()
        write_watch_start(self.out, record)
        ended = threading.Event()
        if self.request_progress:
            threading.Thread(target=self._ask_progress, args=(requests, ended), daemon=True).start()
        error = ""
        try:
            for resp in call:
                self._record(record, resp)
                if resp.canceled:  # compacted: resume after the compact revision
                    error = "canceled"
                    call.cancel()
                    break
        except grpc.RpcError as exc:
            error = "stopped" if self.stopping.is_set() else exc.code().name
        ended.set()
        requests.put(None)
        write_watch_end(self.out, record, error)

    def _record(self, record: WatchRecord, resp) -> None:
        events = [
            (_EVENT_TYPES[e.type], _kv(e.kv), _kv(e.prev_kv) if e.HasField("prev_kv") else None)
            for e in resp.events
        ]
        response = WatchResponse(
            time.monotonic(),
            resp.header.revision,
            resp.created,
            resp.canceled,
            resp.compact_revision,
            resp.fragment,
            events,
        )
        write_watch_response(self.out, record, response)
        if events:
            self.next_revision = events[-1][1][3] + 1
        elif not resp.created and resp.compact_revision == 0:
            self.next_revision = max(self.next_revision, resp.header.revision + 1)
        if resp.compact_revision:
            # History up to the compact revision is gone (a delete at it too:
            # compaction drops that tombstone): resume after it.
            self.next_revision = resp.compact_revision + 1

    @staticmethod
    def _ask_progress(requests: queue.SimpleQueue, ended: threading.Event) -> None:
        while not ended.wait(0.3):
            requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))


def main(argv: list[str]) -> None:
    role, endpoint, ident, seed, stopfile, outfile = argv[:6]
    stop = Path(stopfile)
    deadline = time.monotonic() + MAX_SECONDS
    with open(outfile, "a") as out:
        if role == "client":
            client = Client(endpoint, int(ident), int(seed), out)
            while not stop.exists() and time.monotonic() < deadline:
                client.step()
        else:
            progress = "--no-progress" not in argv[6:]
            Watcher(endpoint, int(ident), int(seed), out, progress).run(stop)


if __name__ == "__main__":
    main(sys.argv[1:])
