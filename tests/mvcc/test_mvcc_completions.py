"""Writes answered through a completion (`then`): once per write, after the
commit, from the store's threads; writes that arrive while a commit runs
share the next one; writes held by their caller (`writes_held`) commit
together at the block's end, in the caller's thread when the writer is idle."""

import threading

import pytest
from conftest import kv

from k0s_store.errors import KeyNotFoundError, StoppedError
from k0s_store.mvcc.types import (
    CMP_MOD,
    EQUAL,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


class Outcomes:
    """Collects (response, error, thread) per completion; `wait(n)` for n of them."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.changed = threading.Condition()

    def __call__(self, response, error) -> None:
        with self.changed:
            self.items.append((response, error, threading.current_thread()))
            self.changed.notify_all()

    def wait(self, count: int) -> list[tuple]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.items) >= count, timeout=30)
            return list(self.items)


def test_put_completion_gets_the_committed_response(store):
    done = Outcomes()
    assert store.put(PutRequest(b"k", b"v", prev_kv=True), then=done) is None
    [(response, error, thread)] = done.wait(1)
    assert error is None and response.revision == 2 and response.result.prev_kv is None
    assert thread is not threading.current_thread()
    assert store.revision == 2  # published before the caller hears of it
    assert kv(store.range(RangeRequest(b"k")).result.kvs[0])[4] == b"v"
    assert store.stats.puts.value == 1


def test_failed_write_goes_to_its_completion_alone(store):
    done = Outcomes()
    store.put(PutRequest(b"missing", b"", ignore_value=True), then=done)
    store.put(PutRequest(b"a", b"1"), then=done)
    outcomes = done.wait(2)
    errors = [e for _, e, _ in outcomes if e is not None]
    assert len(errors) == 1 and isinstance(errors[0], KeyNotFoundError)
    assert [r.revision for r, e, _ in outcomes if e is None] == [2]
    assert store.stats.puts.value == 1  # a failed put is not counted


def test_delete_and_txn_completions(store):
    store.put(PutRequest(b"a", b"1"))
    done = Outcomes()
    store.delete_range(DeleteRangeRequest(b"a", prev_kv=True), then=done)
    [(response, error, _)] = done.wait(1)
    assert error is None and response.result.deleted == 1 and response.revision == 3
    write = TxnRequest(
        compare=(Compare(EQUAL, CMP_MOD, b"a", 0),),
        success=(PutRequest(b"a", b"2"),),
    )
    store.txn(write, then=done)
    response, error, _ = done.wait(2)[1]
    assert error is None and response.result.succeeded and response.revision == 4


def test_read_only_txn_is_answered_before_submit_returns(store):
    done = Outcomes()
    read = TxnRequest(success=(RangeRequest(b"a"),))
    assert store.txn(read, then=done) is None
    [(response, error, thread)] = done.items
    assert error is None and response.revision == 1 and thread is threading.current_thread()


def test_concurrent_writes_share_commits(store):
    """Writes queued while the writer is busy go into the next commit together,
    and are answered from a store thread, not their callers'."""
    done = Outcomes()
    count = 300
    busy, go_on = threading.Event(), threading.Event()
    store._writer.submit(lambda: (busy.set(), go_on.wait(10)), exclusive=True)
    assert busy.wait(10)
    for i in range(count):
        store.put(PutRequest(b"k%03d" % i, b"v"), then=done)
    commits_before = sum(store.stats.commit_seconds.counts)
    go_on.set()
    outcomes = done.wait(count)
    assert sorted(r.revision for r, _, _ in outcomes) == list(range(2, 2 + count))
    assert sum(store.stats.commit_seconds.counts) - commits_before <= 2
    assert threading.current_thread() not in {thread for _, _, thread in outcomes}


def test_held_writes_commit_together_in_the_callers_thread(store):
    done = Outcomes()
    commits = sum(store.stats.commit_seconds.counts)
    with store.writes_held():
        for i in range(5):
            store.put(PutRequest(b"h%d" % i, b"v"), then=done)
        assert done.items == [] and store.revision == 1  # nothing runs before the end
    outcomes = done.wait(5)
    assert [r.revision for r, _, _ in outcomes] == [2, 3, 4, 5, 6]
    assert {thread for _, _, thread in outcomes} == {threading.current_thread()}
    assert sum(store.stats.commit_seconds.counts) == commits + 1


def test_held_writes_go_to_the_writer_when_it_is_busy(store):
    done = Outcomes()
    busy, go_on = threading.Event(), threading.Event()
    store._writer.submit(lambda: (busy.set(), go_on.wait(10)), exclusive=True)
    assert busy.wait(10)
    with store.writes_held():
        store.put(PutRequest(b"a", b"1"), then=done)
    go_on.set()
    [(response, error, thread)] = done.wait(1)
    assert error is None and response.revision == 2
    assert thread is not threading.current_thread()


def test_a_waited_for_job_is_not_held(store):
    """Inside held(), a job its caller waits for (no completion) still runs at
    once: holding it would leave the caller waiting for its own block's end."""
    with store.writes_held():
        assert store.writer_responsive(5)
        assert store.put(PutRequest(b"a", b"1")).revision == 2


def test_writes_from_many_threads_all_land(store):
    """Callers committing their held writes while the writer is idle, others
    queueing meanwhile: every write lands once, with a revision of its own."""
    threads, per_thread = 8, 40
    done = Outcomes()

    def writer(n: int) -> None:
        for i in range(0, per_thread, 4):  # in runs of 4 held writes, as transport workers
            with store.writes_held():
                for j in range(i, i + 4):
                    store.put(PutRequest(b"t%d-%03d" % (n, j), b"v"), then=done)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    outcomes = done.wait(threads * per_thread)
    total = threads * per_thread
    assert sorted(r.revision for r, _, _ in outcomes) == list(range(2, 2 + total))
    assert all(e is None for _, e, _ in outcomes)
    assert len(store.range(RangeRequest(b"t", b"u")).result.kvs) == total


def test_a_raising_completion_does_not_stop_the_writer(store):
    def broken(response, error):
        raise RuntimeError("caller bug")

    store.put(PutRequest(b"a", b"1"), then=broken)
    assert store.put(PutRequest(b"b", b"2")).revision == 3


def test_completion_after_close_gets_stopped(open_store):
    store = open_store()
    store.close()
    done = Outcomes()
    store.put(PutRequest(b"a", b"1"), then=done)
    [(response, error, _)] = done.wait(1)
    assert response is None and isinstance(error, StoppedError)


@pytest.mark.parametrize("durable", [True, False])
def test_queued_completions_run_before_close_returns(open_store, durable):
    store = open_store(fsync=durable)
    done = Outcomes()
    for i in range(50):
        store.put(PutRequest(b"k%d" % i, b"v"), then=done)
    store.close()
    assert len(done.items) == 50 and all(e is None for _, e, _ in done.items)
