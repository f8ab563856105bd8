"""Durability, group commit, map growth, quota and alarms, defragmentation."""

import threading

import pytest
from conftest import kv

from k0s_store.errors import NoSpaceError
from k0s_store.mvcc import store as store_module
from k0s_store.mvcc.kv_write import ALARM_NOSPACE
from k0s_store.mvcc.types import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


def test_state_survives_reopen(open_store):
    store = open_store(fsync=True)
    ids = store.cluster_id, store.member_id
    store.put(PutRequest(b"a", b"1"))
    store.put(PutRequest(b"b", b"2"))
    store.delete_range(DeleteRangeRequest(b"b"))
    store.close()
    store.close()  # idempotent
    store = open_store()
    assert (store.cluster_id, store.member_id) == ids
    assert store.revision == 4
    assert kv(store.range(RangeRequest(b"a")).result.kvs[0])[4] == b"1"
    assert store.put(PutRequest(b"c", b"3")).revision == 5


def test_group_commit_gives_each_request_its_own_revision(store):
    results, errors = [], []

    def client(n):
        for i in range(50):
            results.append(store.put(PutRequest(b"c%d-%d" % (n, i), b"v")).revision)
            try:
                store.put(PutRequest(b"x", b"", lease=424242))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(2, 402))  # failures took no revision
    assert len(errors) == 400 and store.revision == 401


def test_a_broken_request_fails_alone(store):
    """A request that breaks inside the batch is isolated; its neighbours commit."""
    jobs = [store._writer.submit(lambda w: (w.put(b"ok1", b"", 0), w.end())[1])]
    jobs.append(store._writer.submit(lambda w: (w.put(b"bad", b"", 0), 1 / 0)))
    jobs.append(store._writer.submit(lambda w: (w.put(b"ok2", b"", 0), w.end())[1]))
    assert jobs[0].wait() == 2
    with pytest.raises(ZeroDivisionError):
        jobs[1].wait()
    assert jobs[2].wait() == 3
    assert store.range(RangeRequest(b"bad")).result.count == 0


def test_full_map_grows(open_store, monkeypatch):
    monkeypatch.setattr(store_module, "_MIN_MAP_SIZE", 1 << 20)
    store = open_store(quota_bytes=1 << 19)
    big = b"v" * 100_000
    store._quota_bytes = 1 << 40  # let the map, not the quota, run out
    for i in range(30):
        store.put(PutRequest(b"k%d" % i, big))
    assert store._backend.env.info()["map_size"] > 1 << 20
    assert store.range(RangeRequest(b"k", b"l", count_only=True)).result.count == 30


def test_quota_raises_nospace_and_disarm(open_store):
    store = open_store(quota_bytes=256 * 1024)
    with pytest.raises(NoSpaceError):
        for i in range(1000):
            store.put(PutRequest(b"q%04d" % i, b"v" * 1000))
    assert store.alarms() == [ALARM_NOSPACE]
    rev = store.revision
    with pytest.raises(NoSpaceError):
        store.put(PutRequest(b"small", b""))
    with pytest.raises(NoSpaceError):
        store.txn(TxnRequest(success=(PutRequest(b"small", b""),)))
    with pytest.raises(NoSpaceError):
        store.lease_grant(60)
    # reads, deletes and compaction still work
    assert store.range(RangeRequest(b"q0000")).result.count == 1
    store.delete_range(DeleteRangeRequest(b"q", b"r"))
    store.compact(store.revision, physical=True)
    assert store.revision == rev + 1
    store.close()
    store = open_store(quota_bytes=256 * 1024)
    assert store.alarms() == [ALARM_NOSPACE]  # persisted
    store.defragment()
    store.disarm_nospace()
    assert store.alarms() == []
    store.put(PutRequest(b"small", b""))


def test_defragment_shrinks_the_file_and_keeps_data(store):
    for i in range(300):
        store.put(PutRequest(b"d%03d" % i, b"v" * 2000))
    store.delete_range(DeleteRangeRequest(b"d", b"e"))
    store.put(PutRequest(b"keep", b"me"))
    store.compact(store.revision, physical=True)
    before = store.status()
    stop = threading.Event()
    reads = []

    def reader():
        while not stop.is_set():
            reads.append(store.range(RangeRequest(b"keep")).result.count)

    thread = threading.Thread(target=reader)
    thread.start()
    store.defragment()
    stop.set()
    thread.join()
    after = store.status()
    assert after.db_size < before.db_size / 4
    assert after.db_size_in_use <= after.db_size
    assert after.revision == before.revision and set(reads) == {1}
    assert kv(store.range(RangeRequest(b"keep")).result.kvs[0])[4] == b"me"
    store.put(PutRequest(b"after", b"defrag"))
    assert store.range(RangeRequest(b"after")).result.count == 1
