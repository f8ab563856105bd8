"""Txn: compares, branches, nesting, reads of own writes, revisions."""

import pytest
from conftest import keys, kv

from k0s_store.errors import FutureRevisionError, KeyNotFoundError, LeaseNotFoundError
from k0s_store.mvcc.types import (
    CMP_CREATE,
    CMP_LEASE,
    CMP_MOD,
    CMP_VALUE,
    CMP_VERSION,
    EQUAL,
    GREATER,
    LESS,
    NOT_EQUAL,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RangeResult,
    TxnRequest,
)


@pytest.fixture
def abc(store):
    store.put(PutRequest(b"a", b"1"))  # rev 2
    store.put(PutRequest(b"b", b"2"))  # rev 3
    store.put(PutRequest(b"b", b"3"))  # rev 4
    return store


@pytest.mark.parametrize(
    ("cmp", "holds"),
    [
        (Compare(EQUAL, CMP_VERSION, b"b", 2), True),
        (Compare(GREATER, CMP_VERSION, b"b", 1), True),
        (Compare(LESS, CMP_MOD, b"b", 4), False),
        (Compare(NOT_EQUAL, CMP_CREATE, b"b", 2), True),
        (Compare(EQUAL, CMP_VALUE, b"a", b"1"), True),
        (Compare(GREATER, CMP_VALUE, b"a", b"0"), True),
        (Compare(EQUAL, CMP_LEASE, b"a", 0), True),
        # A missing key compares as zeros...
        (Compare(EQUAL, CMP_MOD, b"zz", 0), True),
        (Compare(EQUAL, CMP_VERSION, b"zz", 0), True),
        (Compare(EQUAL, CMP_LEASE, b"zz", 0), True),
        # ...but a value compare on a missing key always fails.
        (Compare(EQUAL, CMP_VALUE, b"zz", b""), False),
        (Compare(NOT_EQUAL, CMP_VALUE, b"zz", b"x"), False),
        # Over a range every key must satisfy it.
        (Compare(GREATER, CMP_MOD, b"a", 1, b"c"), True),
        (Compare(GREATER, CMP_MOD, b"a", 2, b"c"), False),
        (Compare(LESS, CMP_VERSION, b"a", 3, b"\0"), True),
        (Compare(EQUAL, CMP_VERSION, b"x", 0, b"z"), True),  # empty range: zeros
    ],
)
def test_compares(abc, cmp, holds):
    resp = abc.txn(TxnRequest(compare=(cmp,)))
    assert resp.result.succeeded is holds
    assert resp.revision == 4


def test_kube_create_update_delete(abc):
    create = TxnRequest(
        compare=(Compare(EQUAL, CMP_MOD, b"c", 0),), success=(PutRequest(b"c", b"new"),)
    )
    resp = abc.txn(create)
    assert resp.result.succeeded and resp.revision == 5
    assert abc.txn(create).result.succeeded is False
    assert abc.revision == 5  # a txn that writes nothing takes no revision
    update = TxnRequest(
        compare=(Compare(EQUAL, CMP_MOD, b"c", 4),),
        success=(PutRequest(b"c", b"upd"),),
        failure=(RangeRequest(b"c"),),
    )
    resp = abc.txn(update)
    assert not resp.result.succeeded
    assert kv(resp.result.responses[0].kvs[0])[2:5] == (5, 1, b"new")
    delete = TxnRequest(
        compare=(Compare(EQUAL, CMP_MOD, b"c", 5),), success=(DeleteRangeRequest(b"c"),)
    )
    resp = abc.txn(delete)
    assert resp.result.succeeded and resp.result.responses[0].deleted == 1
    assert resp.revision == 6


def test_one_revision_sub_revisions_and_reads_of_own_writes(abc):
    req = TxnRequest(
        success=(
            PutRequest(b"x", b"1"),
            RangeRequest(b"x"),
            DeleteRangeRequest(b"a", prev_kv=True),
            RangeRequest(b"a", b"\0"),
            PutRequest(b"y", b"2", prev_kv=True),
        )
    )
    resp = abc.txn(req)
    assert resp.revision == 5
    _, range_x, del_a, range_all, put_y = resp.result.responses
    assert kv(range_x.kvs[0]) == (b"x", 5, 5, 1, b"1", 0)
    assert del_a.deleted == 1 and kv(del_a.prev_kvs[0])[0] == b"a"
    assert keys(range_all.kvs) == [b"b", b"x"]
    assert put_y.prev_kv is None
    assert abc.range(RangeRequest(b"y")).revision == 5


def test_nested_txn_compares_see_the_state_before_the_txn(abc):
    inner = TxnRequest(
        compare=(Compare(EQUAL, CMP_MOD, b"n", 0),),
        success=(PutRequest(b"inner", b"ok"),),
        failure=(PutRequest(b"inner", b"saw-outer-write"),),
    )
    outer = TxnRequest(success=(PutRequest(b"n", b"1"), inner, RangeRequest(b"inner")))
    resp = abc.txn(outer)
    nested = resp.result.responses[1]
    assert nested.succeeded and len(nested.responses) == 1
    assert kv(resp.result.responses[2].kvs[0])[4] == b"ok"
    assert resp.revision == 5


def test_failed_checks_fail_the_whole_txn(abc):
    with pytest.raises(LeaseNotFoundError):
        abc.txn(TxnRequest(success=(PutRequest(b"q", b"1"), PutRequest(b"r", b"", lease=7))))
    with pytest.raises(KeyNotFoundError):
        abc.txn(TxnRequest(success=(PutRequest(b"q", b"1"), PutRequest(b"r", ignore_value=True))))
    with pytest.raises(FutureRevisionError):
        abc.txn(TxnRequest(success=(PutRequest(b"q", b"1"), RangeRequest(b"a", revision=9))))
    # Only the branch taken is checked.
    ok = abc.txn(
        TxnRequest(
            compare=(Compare(EQUAL, CMP_VERSION, b"a", 1),),
            success=(PutRequest(b"q", b"1"),),
            failure=(PutRequest(b"r", b"", lease=7),),
        )
    )
    assert ok.result.succeeded and ok.revision == 5
    assert abc.range(RangeRequest(b"r")).result.count == 0


def test_read_only_txn(abc):
    resp = abc.txn(TxnRequest(success=(RangeRequest(b"a", b"c"), RangeRequest(b"b"))))
    assert resp.revision == 4
    assert all(isinstance(r, RangeResult) for r in resp.result.responses)
    assert resp.result.responses[0].count == 2
