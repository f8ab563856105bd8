"""Compaction: logical at once, physical removal by etcd's keyIndex rules."""

import threading

import pytest
from conftest import kv

from k0s_store.core import codec
from k0s_store.errors import CompactedError, FutureRevisionError
from k0s_store.mvcc import compactor
from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest


def stored_revisions(store) -> list[tuple[int, int, bool]]:
    with store._backend.read() as txn:
        return [codec.parse_rev_key(k) for k, _ in txn.cursor(db=store._backend.dbs.key)]


def example(store):
    """etcd's key_index.go example on key foo (revisions 2..6), plus bar kept live."""
    store.put(PutRequest(b"foo", b"1"))  # 2
    store.put(PutRequest(b"foo", b"2"))  # 3
    store.delete_range(DeleteRangeRequest(b"foo"))  # 4 (t)
    store.put(PutRequest(b"foo", b"3"))  # 5
    store.delete_range(DeleteRangeRequest(b"foo"))  # 6 (t)
    store.put(PutRequest(b"bar", b"1"))  # 7


@pytest.mark.parametrize(
    ("at", "left"),
    [
        (3, [3, 4, 5, 6, 7]),
        (4, [5, 6, 7]),
        (5, [5, 6, 7]),
        (6, [7]),
        (7, [7]),
    ],
)
def test_physical_compaction_follows_key_index_rules(store, at, left):
    example(store)
    assert store.compact(at, physical=True) == 7
    assert [main for main, _, _ in stored_revisions(store)] == left
    assert store.compact_revision == at
    with pytest.raises(CompactedError):
        store.range(RangeRequest(b"foo", revision=at - 1))
    assert store.range(RangeRequest(b"bar", revision=at)).result.count == (at >= 7)
    assert kv(store.range(RangeRequest(b"bar")).result.kvs[0])[4] == b"1"


def test_compact_errors(store):
    assert store.hash_kv(0)[1] == -1  # etcd's compact revision before any compaction
    store.compact(0)  # succeeds once, as in etcd (its compact revision starts at -1)
    with pytest.raises(CompactedError):
        store.compact(0)
    example(store)
    store.compact(3)
    with pytest.raises(CompactedError):
        store.compact(3)
    with pytest.raises(FutureRevisionError):
        store.compact(8)
    assert store.revision == 7  # compaction takes no revision


def test_compaction_in_steps_with_concurrent_writes(store, monkeypatch):
    monkeypatch.setattr(compactor, "STEP_KEYS", 7)
    for i in range(60):
        store.put(PutRequest(b"k%03d" % i, b"a"))
        store.put(PutRequest(b"k%03d" % i, b"b"))
    at = store.revision
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            store.put(PutRequest(b"k%03d" % (n % 60), b"c"))
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    store.compact(at, physical=True)
    stop.set()
    thread.join()
    revs = [main for main, _, _ in stored_revisions(store)]
    assert [m for m in revs if m <= at] == [3 + 2 * i for i in range(60)]  # the b puts
    res = store.range(RangeRequest(b"k", b"l", revision=at)).result
    assert res.count == 60 and {kv(b)[4] for b in res.kvs} == {b"b"}


def test_unfinished_compaction_resumes_after_restart(open_store):
    store = open_store()
    example(store)
    store._compactor.stop()  # logical only: the physical walk never runs
    store.compact(6)
    store.close()
    store = open_store()
    assert store.compact_revision == 6
    store._compactor.wait(6)
    assert [main for main, _, _ in stored_revisions(store)] == [7]


def test_hash_kv_is_the_same_before_and_after_physical_removal(store):
    example(store)
    store._compactor.stop()  # logical compaction only, for now
    store.compact(4)
    logical = store.hash_kv(7)
    assert logical[1:] == (4, 7)
    with pytest.raises(CompactedError):
        store.hash_kv(4)
    with pytest.raises(FutureRevisionError):
        store.hash_kv(8)
    store._writer.call(lambda w: compactor.compact_step(w, 4, b"\0"))
    assert [main for main, _, _ in stored_revisions(store)] == [5, 6, 7]
    assert store.hash_kv(7) == logical


@pytest.mark.etcd
def test_hash_kv_matches_real_etcd(store, etcd_server):
    """The same history gives etcd's own HashKV value."""
    from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

    channel = etcd_server.channel()
    kv_stub = rpc_pb2_grpc.KVStub(channel)
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    empty = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0))
    assert store.hash_kv(0)[:2] == (empty.hash, empty.compact_revision)
    example(store)
    kv_stub.Put(rpc_pb2.PutRequest(key=b"foo", value=b"1"))
    kv_stub.Put(rpc_pb2.PutRequest(key=b"foo", value=b"2"))
    kv_stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"foo"))
    kv_stub.Put(rpc_pb2.PutRequest(key=b"foo", value=b"3"))
    kv_stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"foo"))
    kv_stub.Put(rpc_pb2.PutRequest(key=b"bar", value=b"1"))
    for rev in (0, 3, 7):
        assert store.hash_kv(rev)[0] == maintenance.HashKV(rpc_pb2.HashKVRequest(revision=rev)).hash
    kv_stub.Compact(rpc_pb2.CompactionRequest(revision=4, physical=True))
    store.compact(4, physical=True)
    for rev in (0, 5, 7):
        assert store.hash_kv(rev)[0] == maintenance.HashKV(rpc_pb2.HashKVRequest(revision=rev)).hash
