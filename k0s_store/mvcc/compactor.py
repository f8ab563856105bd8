"""Physical compaction: drop old revisions from `key` and `index` in bounded steps.

Compaction is logical at once (apply.schedule_compaction raises the
compact revision, so reads below it fail); the `Compactor` thread then walks
the index in steps of STEP_KEYS index entries, each step one writer job (so
it joins a group commit and never holds writers up for long), applying
etcd's keyIndex.compact rules (key_index.compact) and deleting the dropped
revisions' KeyValues. When the walk ends, FINISHED_COMPACT is written; a
store reopened with FINISHED_COMPACT < COMPACT_REV walks again (steps are
idempotent). Freed pages are reused by LMDB; defragment shrinks the file.
"""

import threading
import time
from collections.abc import Callable

from k0s_store.core import codec
from k0s_store.counters import Histogram
from k0s_store.mvcc import index, key_index, meta
from k0s_store.mvcc.kv_write import WriteTxn

STEP_KEYS = 1000


def compact_step(w: WriteTxn, at_rev: int, start: bytes) -> bytes | None:
    """Compact up to STEP_KEYS index entries from DB key `start`; returns
    where the next step starts, or None once the walk is done (and recorded)."""
    txn, dbs = w.txn, w.dbs
    cursor = txn.cursor(db=dbs.index)
    entries = []
    if cursor.set_range(start):
        for item in cursor.iternext():
            entries.append(item)
            if len(entries) == STEP_KEYS:
                break
    for db_key, value in entries:
        if len(db_key) <= index.SHORT_KEY_MAX:
            records = index.full(txn, dbs, db_key, value)
            kept = _compact_records(w, records, at_rev)
            if kept != records:
                index.put(txn, dbs, db_key, kept)
            continue
        group = [(k, _compact_records(w, r, at_rev)) for k, r in index.decode_group(value)]
        group = [(k, r) for k, r in group if r]
        if group:
            txn.put(db_key, index.encode_group(group), db=dbs.index)
        else:
            txn.delete(db_key, db=dbs.index)
    if len(entries) == STEP_KEYS:
        return entries[-1][0] + b"\0"
    meta.put_int(txn, dbs.meta, meta.FINISHED_COMPACT, at_rev)
    return None


def _compact_records(w: WriteTxn, records: bytes, at_rev: int) -> bytes:
    kept, dropped = key_index.compact(records, at_rev)
    for main, sub, tombstone in dropped:
        w.txn.delete(codec.rev_key(main, sub, tombstone), db=w.dbs.key)
    return kept


class Compactor:
    """The thread that runs physical compactions, one step per writer job.

    Args:
        submit: runs a function of the batch's WriteTxn on the writer and
            returns its result.
        finished: the last physically finished compaction at start.
        pause_ms: gets each step's time in the writer, in milliseconds.
        total_ms: gets each whole walk's time, in milliseconds.
    """

    def __init__(
        self,
        submit: Callable[[Callable[[WriteTxn], object]], object],
        finished: int,
        pause_ms: Histogram,
        total_ms: Histogram,
    ) -> None:
        self._submit = submit
        self._pause_ms = pause_ms
        self._total_ms = total_ms
        self._cond = threading.Condition(threading.Lock())
        self._target = finished
        self._finished = finished
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="k0s-store-compactor", daemon=True)
        self._thread.start()

    def schedule(self, rev: int) -> None:
        """Ask for physical compaction up to `rev`."""
        with self._cond:
            self._target = max(self._target, rev)
            self._cond.notify_all()

    def wait(self, rev: int) -> None:
        """Return once compaction at `rev` (or later) is physically done and durable."""
        with self._cond:
            while self._finished < rev and not self._stopping:
                self._cond.wait()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._target <= self._finished and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                at_rev = self._target
            start: bytes | None = b"\0"
            began = time.perf_counter()
            try:
                while start is not None:
                    start = self._submit(lambda w, s=start, r=at_rev: self._step(w, r, s))
                    if self._stopping:
                        return
            except Exception:  # the store is closing under us; the walk resumes at reopen
                return
            self._total_ms.observe((time.perf_counter() - began) * 1000)
            with self._cond:
                self._finished = at_rev
                self._cond.notify_all()

    def _step(self, w: WriteTxn, at_rev: int, start: bytes) -> bytes | None:
        """compact_step, timed (writer thread)."""
        began = time.perf_counter()
        try:
            return compact_step(w, at_rev, start)
        finally:
            self._pause_ms.observe((time.perf_counter() - began) * 1000)
