"""One key written many times in one group commit: the compiled path keeps
its index entry in the transaction's cache (lmdb_kv.IndexCache) until
something else uses the transaction. Every read inside the batch, the
history after it and a reopened store must see exactly what one write per
commit would have left (the pure twin runs the same test without a cache)."""

import threading

from conftest import kv

from k0s_store.core import revindex
from k0s_store.mvcc.types import (
    CMP_VERSION,
    EQUAL,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


def _answers(store, writes) -> list:
    """Submit `writes` (functions of a completion) held, as one commit; their responses."""
    got: dict[int, object] = {}
    all_done = threading.Event()

    def then_for(n: int):
        def then(response, error) -> None:
            got[n] = error if error is not None else response
            if len(got) == len(writes):
                all_done.set()

        return then

    commits = sum(store.stats.commit_seconds.counts)
    with store.writes_held():
        for n, write in enumerate(writes):
            write(then_for(n))
    assert all_done.wait(30)
    assert sum(store.stats.commit_seconds.counts) == commits + 1
    return [got[n] for n in range(len(writes))]


def _value_at(store, key: bytes, revision: int) -> bytes | None:
    kvs = store.range(RangeRequest(key, revision=revision)).result.kvs
    return kv(kvs[0])[4] if kvs else None


def test_a_hot_key_in_one_commit_reads_and_persists_as_single_writes(open_store):
    store = open_store()
    store.put(PutRequest(b"hot", b"before"))  # revision 2: records already in the DB
    writes = [
        (lambda then, i=i: store.put(PutRequest(b"hot", b"v%d" % i, prev_kv=True), then=then))
        for i in range(200)
    ]
    read_in_batch = TxnRequest(
        compare=(Compare(EQUAL, CMP_VERSION, b"hot", 201),),
        success=(RangeRequest(b"hot"), PutRequest(b"hot", b"from-txn")),
    )
    writes += [
        lambda then: store.txn(read_in_batch, then=then),
        lambda then: store.delete_range(DeleteRangeRequest(b"hot", prev_kv=True), then=then),
        lambda then: store.put(PutRequest(b"hot", b"again"), then=then),
        lambda then: store.put(PutRequest(b"other", b"x"), then=then),
    ]
    answers = _answers(store, writes)
    assert kv(answers[0].result.prev_kv)[4] == b"before"
    assert kv(answers[199].result.prev_kv)[4] == b"v198"
    txn = answers[200]
    assert txn.result.succeeded and txn.revision == 203
    [ranged, _] = txn.result.responses
    assert kv(ranged.kvs[0])[3:5] == (201, b"v199")  # the batch's own writes, read in it
    deleted = answers[201].result
    assert deleted.deleted == 1 and kv(deleted.prev_kvs[0])[4] == b"from-txn"
    assert answers[202].revision == 205 and answers[203].revision == 206

    def check(s) -> None:
        assert kv(s.range(RangeRequest(b"hot")).result.kvs[0])[1:5] == (205, 205, 1, b"again")
        assert _value_at(s, b"hot", 2) == b"before"
        assert _value_at(s, b"hot", 3) == b"v0"
        assert _value_at(s, b"hot", 202) == b"v199"
        assert _value_at(s, b"hot", 203) == b"from-txn"
        assert _value_at(s, b"hot", 204) is None  # deleted then
        assert s.range(RangeRequest(b"a", b"z", count_only=True)).result.count == 2

    check(store)
    hash_before = store.hash_kv(0)
    store.close()
    reopened = open_store()
    check(reopened)
    assert reopened.hash_kv(0) == hash_before


def test_a_hot_key_compacted_then_written_again(store):
    writes = [
        (lambda then, i=i: store.put(PutRequest(b"hot", b"v%d" % i), then=then)) for i in range(50)
    ]
    _answers(store, writes)
    store.compact(40, physical=True)
    assert _value_at(store, b"hot", 40) == b"v38"
    assert _value_at(store, b"hot", 51) == b"v49"
    _answers(store, writes[:10])
    assert kv(store.range(RangeRequest(b"hot")).result.kvs[0])[3:5] == (60, b"v9")


def test_a_long_history_moves_to_chunks_and_reads_as_before(open_store):
    """Past SPLIT_RECORDS revisions the key's older records go to history chunks
    (k0s_store/mvcc/index.py): every old revision still reads back, a deletion
    and re-creation among them included, through compaction and a reopen."""
    store = open_store()
    total = 2 * revindex.SPLIT_RECORDS + 300
    for i in range(total):
        if i == 500:
            store.delete_range(DeleteRangeRequest(b"hot"))
        else:
            store.put(PutRequest(b"hot", b"v%d" % i))
    store.put(PutRequest(b"other", b"x"))
    # revision r holds write r - 2: a put of v(r - 2), or at 502 the deletion
    expected = {rev: None if rev == 502 else b"v%d" % (rev - 2) for rev in range(2, total + 2)}
    with store._backend.read() as txn:  # the entry stays short; chunks hold the rest
        entry = txn.get(b"hot", db=store._backend.dbs.index)
        chunks = list(txn.cursor(db=store._backend.dbs.index_history))
    assert len(entry) <= revindex.SPLIT_RECORDS * revindex.RECORD_SIZE
    assert entry[16] & revindex.HISTORY_MARK and len(chunks) >= 2

    def check(s, first: int) -> None:
        """Reads at every revision from `first` (the compacted ones refused)."""
        for rev in [*range(first, total + 2, 37), 501, 502, 503, total + 1]:
            if rev >= first:
                assert _value_at(s, b"hot", rev) == expected[rev], rev
        if first <= 502:
            listed = s.range(RangeRequest(b"a", b"z", revision=1000)).result
            assert [kv(k)[0] for k in listed.kvs] == [b"hot"]
            assert s.range(RangeRequest(b"hot", revision=502, count_only=True)).result.count == 0

    check(store, 2)
    hash_before = store.hash_kv(0)
    store.close()
    store = open_store()
    check(store, 2)
    assert store.hash_kv(0) == hash_before
    store.compact(1500, physical=True)
    check(store, 1500)
    revisions = [kv(k)[2] for k in store.range(RangeRequest(b"hot", revision=1500)).result.kvs]
    assert revisions == [1500]
    store.put(PutRequest(b"hot", b"after"))
    assert kv(store.range(RangeRequest(b"hot")).result.kvs[0])[4] == b"after"
    check(store, 1500)
