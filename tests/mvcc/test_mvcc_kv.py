"""Revisions, Put, Range and DeleteRange with etcd 3.4's semantics."""

import pytest
from conftest import keys, kv

from k0s_store.errors import (
    CompactedError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseNotFoundError,
)
from k0s_store.mvcc import index
from k0s_store.mvcc.types import (
    SORT_ASCEND,
    SORT_DESCEND,
    SORT_NONE,
    TARGET_CREATE,
    TARGET_KEY,
    TARGET_MOD,
    TARGET_VALUE,
    TARGET_VERSION,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
)


def get(store, key, **kw):
    return store.range(RangeRequest(key, **kw)).result


def test_fresh_store_is_at_revision_1_and_first_write_gets_2(store):
    assert store.revision == 1
    assert store.compact_revision == 0
    assert store.cluster_id and store.member_id
    assert store.put(PutRequest(b"a", b"1")).revision == 2


def test_versions_create_and_mod_revisions_across_generations(store):
    store.put(PutRequest(b"k", b"v1"))
    store.put(PutRequest(b"k", b"v2"))
    assert kv(get(store, b"k").kvs[0]) == (b"k", 2, 3, 2, b"v2", 0)
    resp = store.delete_range(DeleteRangeRequest(b"k"))
    assert resp.revision == 4 and resp.result.deleted == 1
    assert get(store, b"k").kvs == []
    store.put(PutRequest(b"k", b"v3"))
    assert kv(get(store, b"k").kvs[0]) == (b"k", 5, 5, 1, b"v3", 0)
    # history stays readable
    assert kv(get(store, b"k", revision=3).kvs[0]) == (b"k", 2, 3, 2, b"v2", 0)
    assert get(store, b"k", revision=4).kvs == []


def test_put_prev_kv(store):
    assert store.put(PutRequest(b"k", b"v1", prev_kv=True)).result.prev_kv is None
    prev = store.put(PutRequest(b"k", b"v2", prev_kv=True)).result.prev_kv
    assert kv(prev) == (b"k", 2, 2, 1, b"v1", 0)
    assert store.put(PutRequest(b"k", b"v3")).result.prev_kv is None


def test_ignore_value_and_ignore_lease(store):
    with pytest.raises(KeyNotFoundError):
        store.put(PutRequest(b"k", ignore_value=True))
    with pytest.raises(KeyNotFoundError):
        store.put(PutRequest(b"k", ignore_lease=True))
    assert store.revision == 1  # failures consume no revision
    lease = store.lease_grant(60).id
    store.put(PutRequest(b"k", b"v", lease=lease))
    store.put(PutRequest(b"k", ignore_value=True, ignore_lease=True))
    assert kv(get(store, b"k").kvs[0]) == (b"k", 2, 3, 2, b"v", lease)
    store.put(PutRequest(b"k", b"w", ignore_lease=True))
    assert kv(get(store, b"k").kvs[0])[4:] == (b"w", lease)


def test_put_with_missing_lease_fails(store):
    with pytest.raises(LeaseNotFoundError):
        store.put(PutRequest(b"k", b"v", lease=12345))
    assert store.revision == 1


def fill(store, n=5):
    for i in range(n):
        store.put(PutRequest(b"key%d" % i, b"v%d" % (n - i)))


def test_range_limit_more_count(store):
    fill(store)
    res = get(store, b"key", range_end=b"kez", limit=2)
    assert keys(res.kvs) == [b"key0", b"key1"] and res.more and res.count == 5
    res = get(store, b"key", range_end=b"kez", limit=5)
    assert len(res.kvs) == 5 and not res.more and res.count == 5
    res = get(store, b"key1", range_end=b"\0")
    assert keys(res.kvs) == [b"key1", b"key2", b"key3", b"key4"]
    assert get(store, b"key9", range_end=b"key1").kvs == []


def test_range_count_only_and_keys_only(store):
    fill(store)
    res = get(store, b"key", range_end=b"kez", count_only=True, limit=1)
    assert res.kvs == [] and res.count == 5 and not res.more
    res = get(store, b"key", range_end=b"kez", keys_only=True)
    assert [kv(b)[4] for b in res.kvs] == [b""] * 5
    assert kv(res.kvs[0])[:4] == (b"key0", 2, 2, 1)


@pytest.mark.parametrize(
    ("order", "target", "expected"),
    [
        (SORT_NONE, TARGET_KEY, [0, 1, 2, 3, 4]),
        (SORT_DESCEND, TARGET_KEY, [4, 3, 2, 1, 0]),
        (SORT_ASCEND, TARGET_VALUE, [4, 3, 2, 1, 0]),
        # A target alone sorts ASCEND, but as in etcd only the limit+1 first
        # keys are fetched (the limit is computed from the request's order).
        (SORT_NONE, TARGET_VALUE, [3, 2, 1]),
        (SORT_DESCEND, TARGET_MOD, [4, 3, 2, 1, 0]),
        (SORT_ASCEND, TARGET_CREATE, [0, 1, 2, 3, 4]),
        (SORT_DESCEND, TARGET_VERSION, [0, 1, 2, 3, 4]),  # all equal: stable
    ],
)
def test_range_sort(store, order, target, expected):
    fill(store)
    res = get(store, b"key", range_end=b"kez", sort_order=order, sort_target=target, limit=3)
    assert keys(res.kvs) == [b"key%d" % i for i in expected[:3]]
    assert res.more and res.count == 5


def test_range_revision_filters(store):
    fill(store)  # key0..key4 at revisions 2..6
    res = get(store, b"key", range_end=b"kez", min_mod_revision=3, max_mod_revision=5)
    assert keys(res.kvs) == [b"key1", b"key2", b"key3"]
    assert res.count == 5  # count ignores filters, as in etcd
    res = get(store, b"key", range_end=b"kez", min_create_revision=5, limit=1)
    assert keys(res.kvs) == [b"key3"] and res.more
    res = get(store, b"key", range_end=b"kez", max_create_revision=2)
    assert keys(res.kvs) == [b"key0"]


def test_range_at_future_or_compacted_revision(store):
    fill(store)
    with pytest.raises(FutureRevisionError):
        get(store, b"key0", revision=7)
    store.compact(4)
    with pytest.raises(CompactedError):
        get(store, b"key0", revision=3)
    assert keys(get(store, b"key", range_end=b"kez", revision=4).kvs) == [
        b"key0",
        b"key1",
        b"key2",
    ]
    assert store.range(RangeRequest(b"key0", revision=4)).revision == 6  # header: current


def test_delete_range_prev_kvs_and_no_op_delete(store):
    fill(store)
    resp = store.delete_range(DeleteRangeRequest(b"key1", b"key3", prev_kv=True))
    assert resp.revision == 7 and resp.result.deleted == 2
    assert keys(resp.result.prev_kvs) == [b"key1", b"key2"]
    resp = store.delete_range(DeleteRangeRequest(b"key1", b"key3"))
    assert resp.revision == 7 and resp.result.deleted == 0  # nothing changed: no revision
    resp = store.delete_range(DeleteRangeRequest(b"key", b"\0"))
    assert resp.result.deleted == 3 and resp.result.prev_kvs == []
    assert get(store, b"\0", range_end=b"\0").count == 0


def test_long_keys_keep_their_order(store):
    """Keys beyond LMDB's limit: grouped in the index, ordered as bytes."""
    base = b"x" * index.SHORT_KEY_MAX
    names = [
        base[:-1],
        base,
        base + b"\0",
        base + b"a" * 5000,
        base + b"b",
        base[:-1] + b"y",
        base[:-1] + b"y" + b"z" * 700,
        b"x" * 2_000_000,
    ]
    for i, name in enumerate(names):
        store.put(PutRequest(name, b"%d" % i))
    res = get(store, b"x", range_end=b"y")
    assert keys(res.kvs) == sorted(names) and res.count == len(names)
    assert kv(get(store, names[3]).kvs[0])[4] == b"3"
    res = get(store, base + b"\0", range_end=base + b"b")
    assert keys(res.kvs) == sorted(n for n in names if base + b"\0" <= n < base + b"b")
    store.delete_range(DeleteRangeRequest(names[3]))
    assert get(store, names[3]).kvs == []
    assert kv(get(store, names[4]).kvs[0])[4] == b"4"
    store.put(PutRequest(names[3], b"again"))
    assert kv(get(store, names[3]).kvs[0])[1:4] == (store.revision,) * 2 + (1,)
