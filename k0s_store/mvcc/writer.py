"""Group commit: one thread applies every queued write in one LMDB transaction.

Callers queue a job (a function of the batch's `WriteTxn`) and wait, or
give a completion (`then`) and go on. The writer takes everything queued,
applies each job in turn (each gets its own main revision if it changes
something), commits once (one fsync), then publishes and answers every
caller of the batch: it wakes the waiting ones and runs the completions
itself, so a batch of N writes costs no N thread switches. (A thread of
their own for the completions, to start the next batch sooner, cost more
than it saved: both need the GIL, and it took a wake-up per batch.)

When the writer is idle (nothing queued, no batch running), a caller that
waits for its job (`call`) runs it itself, as a batch of one, and a caller
that submits a run of writes inside `held()` commits them together at its
end, itself: no thread switch either way. Jobs that arrive meanwhile queue
for the writer thread as usual, so group commit is unchanged under load.
A job that raises an `EtcdError` before
changing anything fails alone. Anything else (a bug, a partial change)
aborts the batch, which is then re-run one job per transaction so that only
the culprit fails. A full map is grown and the batch retried.

Exclusive jobs (defragmentation) run between batches, with no write
transaction open.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from k0s_store.backend import Backend
from k0s_store.core import lmdb
from k0s_store.counters import Histogram
from k0s_store.errors import EtcdError, StoppedError
from k0s_store.mvcc.kv_write import WriteTxn

log = logging.getLogger("k0s_store.writer")

# A job's completion: (result, None) or (None, error), run by the thread that
# committed its batch (the writer, or a caller running it, see `call` and `held`).
Then = Callable[[Any, BaseException | None], None]


class Job:
    """A queued write. Its outcome goes to `then(result, error)` when one was given
    (by the thread that committed it, once the batch is durable); otherwise `wait()`
    (by one thread) returns its result or raises its error."""

    __slots__ = ("_pending", "error", "exclusive", "fn", "result", "then")

    def __init__(self, fn: Callable, exclusive: bool, then: Then | None = None) -> None:
        self.fn = fn
        self.exclusive = exclusive
        self.then = then
        self.result: Any = None
        self.error: BaseException | None = None
        # Held until the job is done: a bare lock is several times cheaper to
        # make, release and wait on than a threading.Event.
        self._pending = None
        if then is None:
            self._pending = threading.Lock()
            self._pending.acquire()

    def finish(self) -> None:
        if self.then is None:
            self._pending.release()
            return
        try:
            self.then(self.result, self.error)
        except Exception:  # the caller's bug must not stop the writer
            log.exception("a write's completion failed")

    def wait(self, timeout: float = -1) -> Any:
        """The job's result (or its error raised); TimeoutError after `timeout` seconds."""
        if not self._pending.acquire(timeout=timeout):
            raise TimeoutError("the writer did not run the job in time")
        if self.error is not None:
            raise self.error
        return self.result


class Writer:
    """The writer thread.

    Args:
        backend: the LMDB environment.
        begin: makes the batch's WriteTxn from a fresh write transaction.
        before_commit: last writes of a batch (revision, renewed leases).
        after_commit: runs once the batch is durable, before callers wake.
        commit_seconds: gets the duration of every commit (fsync included).
    """

    def __init__(
        self,
        backend: Backend,
        begin: Callable[[lmdb.Transaction], WriteTxn],
        before_commit: Callable[[WriteTxn], None],
        after_commit: Callable[[WriteTxn], None],
        commit_seconds: Histogram,
    ) -> None:
        self._backend = backend
        self._begin = begin
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._commit_seconds = commit_seconds
        # Lock order: _lock, then nothing. `_busy`: a batch is running (on the
        # writer thread or in a caller, see `call` and `held`); whoever set it alone
        # writes jobs_run and the store's in-memory state until `_release`.
        self._busy = False
        self.jobs_run = 0  # every job taken, failed ones included
        self._queue: deque[Job] = deque()
        # Blocks take the condition's lock itself: Condition's __enter__ and
        # __exit__ are Python calls, on every write.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = False
        # "count": inside held(), the jobs this thread has held (None outside).
        self._held = threading.local()
        self._held_writes = _HeldWrites(self)
        self._thread = threading.Thread(target=self._run, name="k0s-store-writer", daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[[WriteTxn], Any], exclusive: bool = False, then: Then | None = None
    ) -> Job:
        """Queue a job; exclusive jobs get fn() with no transaction open. With
        `then`, its outcome goes there: from a store thread, or from this call if
        the writer is stopped; inside `held()`, such a job waits for its end (a
        job without `then` never waits: its caller will)."""
        job = Job(fn, exclusive, then)
        held = then is not None and not exclusive and getattr(self._held, "count", None) is not None
        with self._lock:
            stopped = self._stopping
            if not stopped:
                self._queue.append(job)
                if not held:
                    self._cond.notify_all()
        if held and not stopped:
            self._held.count += 1
        if stopped:
            job.error = StoppedError()
            job.finish()
        return job

    def call(self, fn: Callable[[WriteTxn], Any], exclusive: bool = False) -> Any:
        """Run a job and wait for its result: here, as a batch of its own, when
        the writer is idle (no thread switch), else through the queue."""
        job = Job(fn, exclusive)
        with self._lock:
            stopped = self._stopping
            here = not (stopped or exclusive or self._busy or self._queue)
            if here:
                self._busy = True
            elif not stopped:
                self._queue.append(job)
                self._cond.notify_all()
        if stopped:
            job.error = StoppedError()
            job.finish()
        elif here:
            self._run_here([job])
        return job.wait()

    def held(self) -> "_HeldWrites":
        """Hold the jobs this thread submits until the block ends, then commit
        them together: here when the writer is idle (no thread switch; their
        completions run here), else on the writer thread. For a caller that
        submits a run of writes (a transport worker's turn)."""
        return self._held_writes

    def _commit_held(self) -> None:
        """Run what is queued here if the writer is idle, else wake the writer thread."""
        with self._lock:
            jobs = [] if self._busy else self._next_batch()
            if jobs:
                self._busy = True
            elif self._queue:
                self._cond.notify_all()
        if jobs:
            self._run_here(jobs)

    def _run_here(self, jobs: list[Job]) -> None:
        """Run a batch in the calling thread and answer its callers from here."""
        self._execute(jobs)
        for job in jobs:
            job.finish()

    def _execute(self, jobs: list[Job]) -> None:
        """Run a batch taken by this thread (which marked the writer busy)."""
        self.jobs_run += len(jobs)
        try:
            if jobs[0].exclusive:
                self._run_exclusive(jobs[0])
            else:
                self._run_batch(jobs)
        finally:
            self._release()

    def _release(self) -> None:
        """End a batch: the writer thread (or stop) may go on."""
        with self._lock:
            self._busy = False
            if self._queue or self._stopping:
                self._cond.notify_all()

    def queued(self) -> int:
        """Jobs waiting for the writer."""
        return len(self._queue)

    def is_responsive(self, timeout: float) -> bool:
        """True if a no-op job runs within `timeout` seconds (the writer is not stalled)."""
        try:
            self.submit(lambda w: None).wait(timeout)
        except TimeoutError:
            return False
        except EtcdError:  # stopping
            return False
        return True

    def stop(self) -> None:
        """Finish the queued jobs (and a batch run by a caller), then stop the thread."""
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
            with self._lock:
                self._cond.wait_for(lambda: not self._busy)

    def _take(self) -> list[Job]:
        """The next batch (marking the writer busy), or [] once stopping and drained."""
        with self._lock:
            while self._busy or not self._queue:
                if self._stopping and not self._queue:
                    return []
                self._cond.wait()
            self._busy = True
            return self._next_batch()

    def _next_batch(self) -> list[Job]:
        """Pop the queued jobs up to the first exclusive one (or that one alone)."""
        jobs: list[Job] = []
        while self._queue:
            if self._queue[0].exclusive:
                if not jobs:
                    jobs.append(self._queue.popleft())
                break
            jobs.append(self._queue.popleft())
        return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return
            self._execute(jobs)
            for job in jobs:
                job.finish()

    def _run_exclusive(self, job: Job) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:
            job.error = exc

    def _run_batch(self, jobs: list[Job]) -> None:
        while True:
            try:
                w = self._commit(jobs)
                break
            except lmdb.MapFullError:
                self._backend.grow()
            except BaseException as exc:
                if len(jobs) == 1:
                    jobs[0].result, jobs[0].error = None, exc
                    return
                for job in jobs:
                    self._run_batch([job])
                return
        self._after_commit(w)

    def _commit(self, jobs: list[Job]) -> WriteTxn:
        txn = self._backend.begin_write()
        try:
            w = self._begin(txn)
            for job in jobs:
                job.result = job.error = None
                try:
                    job.result = job.fn(w)
                except EtcdError as exc:
                    if w.changes:
                        raise
                    job.error = exc
            self._before_commit(w)
            started = time.perf_counter()
            txn.commit()
            self._commit_seconds.observe(time.perf_counter() - started)
        except BaseException:
            txn.abort()
            raise
        return w


class _HeldWrites:
    """The block of `Writer.held()`. A plain class: a transport worker enters
    one every turn, and a generator-based context manager costs ~7x more."""

    __slots__ = ("_writer",)

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def __enter__(self) -> None:
        self._writer._held.count = 0

    def __exit__(self, *exc_info) -> None:
        writer = self._writer
        count, writer._held.count = writer._held.count, None
        if count:  # nothing held (a turn of reads): no lock to take
            writer._commit_held()
