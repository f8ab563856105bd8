"""The MVCC store: etcd 3.4's KV, lease, watch and maintenance semantics over LMDB.

Threads: callers (any number) read directly from LMDB snapshots and queue
writes; the writer applies queued writes in group commits (writer.py) and
runs the completions of the writes queued with one; the compactor walks
physical compactions; the watch syncer replays history to catching-up
watchers; the lease thread revokes expired leases.

In-memory state, written by the writer thread only, after each commit:
`_rev` then `_compact_rev` are read by everyone. A reader reads `_rev`
before opening its LMDB snapshot (so the snapshot holds that revision) and
`_compact_rev` after (so it cannot miss a compaction that removed data from
its snapshot).
"""

# Hints stay unevaluated: closures made per request would build them every call.
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from k0s_store.backend import Backend
from k0s_store.errors import (
    CompactedError,
    EtcdError,
    FutureRevisionError,
    LeaseNotFoundError,
)
from k0s_store.mvcc import apply, auth_store, meta
from k0s_store.mvcc.auth_store import DEFAULT_BCRYPT_COST, AuthStore
from k0s_store.mvcc.auth_tokens import DEFAULT_TOKEN_TTL
from k0s_store.mvcc.compactor import Compactor
from k0s_store.mvcc.hash import hash_by_rev
from k0s_store.mvcc.kv_read import ReadView, end_of
from k0s_store.mvcc.kv_write import ALARM_NOSPACE, WriteTxn
from k0s_store.mvcc.lessor import PROMOTE_EXTENSION_SECONDS, LeaseTable, attached_keys
from k0s_store.mvcc.stats import StoreStats
from k0s_store.mvcc.types import (
    DeleteRangeRequest,
    LeaseGrant,
    LeaseTimeToLive,
    PutRequest,
    RangeRequest,
    Response,
    StoreStatus,
    TxnRequest,
)
from k0s_store.mvcc.watch_hub import Sink, Watcher, WatchHub
from k0s_store.mvcc.writer import Then, Writer

_MIN_MAP_SIZE = 8 * 1024**3
_EVERY_KEY_COUNT = RangeRequest(b"\0", b"\0", count_only=True)


class Store:
    """An etcd-v3-compatible MVCC key-value store in `data_dir`.

    Args:
        data_dir: directory of the LMDB environment (created if missing).
        quota_bytes: writes that add data fail with NOSPACE past this db size.
        fsync: make every acknowledged write durable (False for benchmarks only).
        min_lease_ttl: shorter lease TTLs are raised to this.
        lease_check_interval: seconds between expiry checks.
        lease_promote_extension: seconds added to every lease's TTL when the
            store opens (etcd's Promote extension, its election timeout).
        auth_token_ttl: seconds an auth token lives after its last use.
        bcrypt_cost: bcrypt's cost for new password hashes.

    Attributes:
        auth: users, roles, permissions and tokens (`AuthStore`).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        quota_bytes: int = 2 * 1024**3,
        fsync: bool = True,
        min_lease_ttl: int = 2,
        lease_check_interval: float = 0.5,
        auth_token_ttl: float = DEFAULT_TOKEN_TTL,
        bcrypt_cost: int = DEFAULT_BCRYPT_COST,
        lease_promote_extension: float = PROMOTE_EXTENSION_SECONDS,
    ) -> None:
        self._quota_bytes = quota_bytes
        self._min_lease_ttl = min_lease_ttl
        self._backend = Backend(data_dir, map_size=max(2 * quota_bytes, _MIN_MAP_SIZE), sync=fsync)
        self._leases = LeaseTable()
        dbs = self._backend.dbs
        with self._backend.env.begin(write=True) as txn:
            meta.initialize(txn, dbs.meta)
            auth_store.initialize(txn, dbs)
            self._rev = meta.get_int(txn, dbs.meta, meta.CURRENT_REV)
            # As in etcd, -1 until the first compaction (so Compact(0) succeeds once).
            self._compact_rev = meta.get_int(txn, dbs.meta, meta.COMPACT_REV, -1)
            finished = meta.get_int(txn, dbs.meta, meta.FINISHED_COMPACT, -1)
            self.cluster_id = meta.get_int(txn, dbs.meta, meta.CLUSTER_ID)
            self.member_id = meta.get_int(txn, dbs.meta, meta.MEMBER_ID)
            self._leases.load_promoted(txn, dbs.lease, lease_promote_extension, min_lease_ttl)
        self.stats = StoreStats()
        self._key_count = (-1, 0)  # (revision, live keys) of the last count
        self._writer = Writer(
            self._backend,
            self._begin,
            self._before_commit,
            self._after_commit,
            self.stats.commit_seconds,
        )
        self.auth = AuthStore(
            self._backend, self._writer.call, token_ttl=auth_token_ttl, bcrypt_cost=bcrypt_cost
        )
        self._hub = WatchHub(self._backend, self._rev, lambda: self._compact_rev)
        self._compactor = Compactor(
            self._writer.call,
            finished,
            self.stats.compaction_pause_ms,
            self.stats.compaction_total_ms,
        )
        self._compactor.schedule(self._compact_rev)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._lease_interval = lease_check_interval
        self._lease_thread = threading.Thread(
            target=self._expire_leases, name="k0s-store-leases", daemon=True
        )
        self._lease_thread.start()

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Stop every thread (queued writes finish first) and close the environment."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._lease_thread.join()
            self._compactor.stop()
            self._writer.stop()
            self._hub.stop()
            self._backend.close()

    @property
    def revision(self) -> int:
        """The current committed revision."""
        return self._rev

    @property
    def compact_revision(self) -> int:
        """The last compacted revision (0 if none)."""
        return max(self._compact_rev, 0)

    # -- writer plumbing ---------------------------------------------------

    def _begin(self, txn) -> WriteTxn:
        return WriteTxn(
            txn,
            self._backend.dbs,
            self._rev,
            self._compact_rev,
            quota_bytes=self._quota_bytes,
            file_size=self._backend.file_size(),
        )

    def _before_commit(self, w: WriteTxn) -> None:
        if w.rev != self._rev:
            meta.put_int(w.txn, w.dbs.meta, meta.CURRENT_REV, w.rev)

    def _after_commit(self, w: WriteTxn) -> None:
        self._compact_rev = w.compact_rev
        self._rev = w.rev
        for action in w.after_commit:
            action()
        self._hub.publish(w.events, w.rev)

    def _write(
        self,
        fn: Callable[[WriteTxn], object],
        count: Callable[[Response], None],
        then: Then | None,
    ) -> Response | None:
        """Run `fn` as one request of a batch: its Response (or, with `then`,
        None at once and the outcome to `then` once durable). `count` records
        a success in the stats."""

        def job(w: WriteTxn) -> Response:
            result = fn(w)
            return Response(w.end(), result)

        if then is None:
            response = self._writer.call(job)
            count(response)
            return response

        def done(response: Response | None, error: BaseException | None) -> None:
            if error is None:
                count(response)
            then(response, error)

        self._writer.submit(job, then=done)
        return None

    # -- KV ----------------------------------------------------------------

    def _read(self, fn: Callable[[ReadView], object]) -> Response:
        rev = self._rev
        with self._backend.read() as txn:
            view = ReadView(txn, self._backend.dbs, rev, self._compact_rev)
            return Response(rev, fn(view))

    def range(self, req: RangeRequest) -> Response:
        """etcd's Range; result RangeResult."""
        self.stats.range()  # counted even when it fails (future, compacted), as in etcd
        return self._read(lambda view: view.range(req))

    def range_response(self, req: RangeRequest, header: Callable[[int], bytes]) -> bytes:
        """etcd's Range as a marshalled RangeResponse whose header is `header(revision)`
        (a ResponseHeader body): what `range` gives, without its objects."""
        self.stats.range()  # as in `range`
        return self._read(lambda view: view.range_response(req, header(view.rev))).result

    def put(self, req: PutRequest, then: Then | None = None) -> Response | None:
        """etcd's Put; result PutResult.

        Writes return their Response once it is durable or, given `then`, None
        at once: `then(response, None)` or `then(None, error)` runs on the
        thread that committed the batch once it is durable, so one thread
        answers a whole group commit. An error found before queueing is raised either way.
        """
        return self._write(lambda w: apply.put(w, req), lambda _: self.stats.put(req), then)

    def delete_range(self, req: DeleteRangeRequest, then: Then | None = None) -> Response | None:
        """etcd's DeleteRange; result DeleteRangeResult (`then`: as for put)."""
        return self._write(
            lambda w: apply.delete_range(w, req), lambda _: self.stats.delete_range(req), then
        )

    def txn(self, req: TxnRequest, then: Then | None = None) -> Response | None:
        """etcd's Txn; result TxnResult (`then`: as for put). Read-only txns never
        queue behind writes: they are answered before this returns."""
        if apply.is_read_only(req):
            response = self._read(lambda view: apply.txn(view, req))
            self.stats.txn(req, response.result, wrote=False)
            if then is None:
                return response
            then(response, None)
            return None
        return self._write(
            lambda w: apply.txn(w, req),
            lambda response: self.stats.txn(req, response.result, wrote=True),
            then,
        )

    def compact(self, revision: int, physical: bool = False) -> int:
        """Compact history up to `revision`; returns the header revision.

        With physical=True, returns once old revisions are removed for good.
        """
        header = self._writer.call(lambda w: (apply.schedule_compaction(w, revision), w.end())[1])
        self._compactor.schedule(revision)
        if physical:
            self._compactor.wait(revision)
        return header

    # -- leases ------------------------------------------------------------

    def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        """etcd's LeaseGrant (id 0: a random unused id)."""
        return self._writer.call(
            lambda w: apply.lease_grant(w, self._leases, ttl, lease_id, self._min_lease_ttl)
        )

    def lease_revoke(self, lease_id: int) -> int:
        """Revoke a lease and delete its keys (one revision); returns the header revision."""
        return self._writer.call(
            lambda w: (apply.lease_revoke(w, self._leases, lease_id), w.end())[1]
        )

    def lease_renew(self, lease_id: int) -> int:
        """A keep-alive: reset the lease's deadline; returns its TTL."""
        ttl = self._leases.renew(lease_id)
        if ttl is None:
            raise LeaseNotFoundError()
        return ttl

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTimeToLive:
        """Remaining seconds (truncated, as etcd) and attached keys; TTL -1 if missing."""
        rev = self._rev
        lease = self._leases.get(lease_id)
        if lease is None:
            return LeaseTimeToLive(rev, lease_id, -1, 0, [])
        ttl, deadline = lease
        remaining = max(0, int(deadline - time.monotonic()))
        attached: list[bytes] = []
        if keys:
            with self._backend.read() as txn:
                attached = attached_keys(txn, self._backend.dbs.lease_keys, lease_id)
        return LeaseTimeToLive(rev, lease_id, remaining, ttl, attached)

    def lease_list(self) -> tuple[int, list[int]]:
        """(header revision, ids of every lease)."""
        return self._rev, sorted(self._leases.ids())

    def _expire_leases(self) -> None:
        while not self._closed.wait(self._lease_interval):
            revokes = [
                self._writer.submit(
                    lambda w, i=lease_id: (apply.lease_revoke(w, self._leases, i), w.end())
                )
                for lease_id in self._leases.expired(time.monotonic())
            ]
            for job in revokes:
                with contextlib.suppress(EtcdError):  # revoked meanwhile, or closing
                    job.wait()
                    self.stats.leases_expired.inc()

    # -- watch -------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        *,
        prev_kv: bool,
        filters: frozenset[int],
        sink: Sink,
    ) -> Watcher:
        """Watch [key, range_end) from start_revision (0: from the next revision).

        `sink` gets WatchBatch objects in revision order from store threads and
        must not block. It may refuse a batch (return False) when its consumer
        is behind: the watcher then pauses until `Watcher.resume()` and catches
        up from history, as etcd's victim watchers do. A compacted start
        revision (or one compacted while paused) gets one batch with
        compact_revision set, and the watcher is dead.
        """
        return self._hub.watch(key, end_of(range_end), start_revision, prev_kv, filters, sink)

    # -- maintenance -------------------------------------------------------

    def status(self) -> StoreStatus:
        """Revision, db file size, bytes in use, raised alarms."""
        return StoreStatus(
            self._rev,
            os.path.getsize(os.path.join(self._backend.path, "data.mdb")),
            self._backend.size_in_use(),
            self.alarms(),
        )

    def key_count(self) -> int:
        """Live keys at the current revision (etcd_debugging_mvcc_keys_total): one
        scan of the index, reused while no write happens (scrapes are periodic)."""
        revision, count = self._key_count
        if revision != self._rev:
            response = self._read(lambda view: view.range(_EVERY_KEY_COUNT))
            revision, count = self._key_count = (response.revision, response.result.count)
        return count

    def watcher_counts(self) -> tuple[int, int]:
        """(live watchers, unsynced watchers)."""
        return self._hub.watcher_counts()

    @property
    def quota_bytes(self) -> int:
        """The backend quota: writes that add data fail with NOSPACE past it."""
        return self._quota_bytes

    def writes_held(self) -> contextlib.AbstractContextManager:
        """Within the block, writes this thread submits with `then` wait for its
        end and then commit together, in this thread when the writer is idle."""
        return self._writer.held()

    def writer_jobs(self) -> tuple[int, int]:
        """(write jobs taken by the writer so far, jobs waiting): etcd's proposals."""
        return self._writer.jobs_run, self._writer.queued()

    def writer_responsive(self, timeout: float) -> bool:
        """True if the writer runs a no-op job within `timeout` seconds."""
        return self._writer.is_responsive(timeout)

    def alarms(self) -> list[int]:
        """Raised alarm types (etcd's AlarmType values)."""
        with self._backend.read() as txn:
            return meta.get_alarms(txn, self._backend.dbs.meta)

    def disarm_nospace(self) -> None:
        """Clear the NOSPACE alarm (writes that add data are accepted again)."""

        def disarm(w: WriteTxn) -> None:
            w.set_alarms([a for a in w.alarms() if a != ALARM_NOSPACE])

        self._writer.call(disarm)

    def defragment(self) -> None:
        """Rewrite the data file compactly (writes wait; reads go on)."""
        self._writer.call(self._backend.defragment, exclusive=True)

    @contextlib.contextmanager
    def read_view(self) -> Iterator[ReadView]:
        """A read transaction on the last committed state, held for a long read
        (a snapshot): writes go on; map growth and defragmentation wait for it."""
        rev = self._rev
        with self._backend.read() as txn:
            yield ReadView(txn, self._backend.dbs, rev, self._compact_rev)

    def hash_kv(self, revision: int) -> tuple[int, int, int]:
        """etcd's HashKV at `revision` (0: current): (hash, compact revision, header
        revision); the compact revision is -1 before the first compaction, as in etcd."""
        rev = self._rev
        with self._backend.read() as txn:
            view = ReadView(txn, self._backend.dbs, rev, self._compact_rev)
            if 0 < revision <= view.compact_rev:
                raise CompactedError()
            if revision > rev:
                raise FutureRevisionError()
            return hash_by_rev(view, revision or rev), view.compact_rev, rev
