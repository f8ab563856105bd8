"""Differential: Txn compares, branches, limits; Compact."""

import pytest

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd

Compare = rpc_pb2.Compare
Op = rpc_pb2.RequestOp


def put(key: bytes, value: bytes = b"v", **fields) -> rpc_pb2.RequestOp:
    return Op(request_put=rpc_pb2.PutRequest(key=key, value=value, **fields))


def get(key: bytes, **fields) -> rpc_pb2.RequestOp:
    return Op(request_range=rpc_pb2.RangeRequest(key=key, **fields))


def delete(key: bytes, **fields) -> rpc_pb2.RequestOp:
    return Op(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, **fields))


def nested(**fields) -> rpc_pb2.RequestOp:
    return Op(request_txn=rpc_pb2.TxnRequest(**fields))


def _setup(pair) -> None:
    pair.same("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=9, TTL=100))
    pair.kv("Put", key=b"a", value=b"10")
    pair.kv("Put", key=b"b", value=b"20", lease=9)
    pair.kv("Put", key=b"a", value=b"11")
    pair.kv("Put", key=b"c", value=b"30")


_TARGET_VALUES = {
    Compare.VERSION: ("version", [0, 1, 2, 3]),
    Compare.CREATE: ("create_revision", [0, 2, 3, 5]),
    Compare.MOD: ("mod_revision", [0, 3, 4, 6]),
    Compare.VALUE: ("value", [b"", b"10", b"11", b"20", b"9"]),
    Compare.LEASE: ("lease", [0, 9, 10]),
}


@pytest.mark.parametrize("target", list(_TARGET_VALUES))
def test_compare_every_target_and_result(pair, target):
    _setup(pair)
    field, values = _TARGET_VALUES[target]
    for result in Compare.CompareResult.values():
        for value in values:
            for key, range_end in [
                (b"a", b""),
                (b"b", b""),
                (b"zz", b""),
                (b"a", b"c"),
                (b"a", b"\0"),
            ]:
                compare = Compare(
                    key=key, range_end=range_end, target=target, result=result, **{field: value}
                )
                pair.kv("Txn", compare=[compare], success=[get(b"a")], failure=[get(b"b")])


def test_all_op_kinds_in_both_branches(pair):
    _setup(pair)
    ops = [
        put(b"n", b"1", prev_kv=True),
        get(b"a", range_end=b"\0", limit=2),
        delete(b"c", prev_kv=True),
        put(b"n", b"2", prev_kv=True),
        get(b"n"),
        delete(b"missing"),
    ]
    always = Compare(key=b"a", target=Compare.VERSION, result=Compare.GREATER, version=0)
    never = Compare(key=b"a", target=Compare.VERSION, result=Compare.LESS, version=0)
    pair.kv("Txn", compare=[always], success=ops, failure=[put(b"f")])
    pair.kv("Txn", compare=[never], success=[put(b"f")], failure=ops)
    pair.kv("Txn", compare=[always, never], success=[put(b"x")], failure=[])
    pair.kv("Txn")  # empty txn: success, no revision bump
    pair.kv("Txn", success=[get(b"a")])  # read-only txn
    pair.kv("Range", key=b"\0", range_end=b"\0")


def test_txn_one_revision_for_all_writes(pair):
    pair.kv("Txn", success=[put(b"a"), put(b"b"), put(b"c"), delete(b"a")])
    pair.kv("Txn", success=[put(b"d"), delete(b"b"), put(b"e", prev_kv=True)])
    pair.kv("Range", key=b"\0", range_end=b"\0")
    pair.kv("Range", key=b"\0", range_end=b"\0", revision=2)


def test_nested_txn(pair):
    _setup(pair)
    inner = nested(
        compare=[Compare(key=b"a", target=Compare.VALUE, result=Compare.EQUAL, value=b"11")],
        success=[put(b"in", b"s"), get(b"in")],
        failure=[put(b"in", b"f")],
    )
    pair.kv("Txn", success=[inner, put(b"out")])
    pair.kv("Txn", success=[nested(success=[inner])])
    pair.kv("Txn", success=[nested(success=[put(b"x")]), put(b"x")])  # duplicate across nesting
    pair.kv("Range", key=b"\0", range_end=b"\0")


def test_duplicate_keys(pair):
    _setup(pair)
    pair.kv("Txn", success=[put(b"a"), put(b"a")])
    pair.kv("Txn", success=[put(b"a"), delete(b"a")])
    pair.kv("Txn", success=[put(b"b1"), delete(b"a", range_end=b"c")])
    pair.kv("Txn", success=[delete(b"a"), delete(b"a")])  # two deletes: allowed
    pair.kv("Txn", success=[get(b"a"), put(b"a")])  # read + write: allowed
    pair.kv("Txn", success=[put(b"a")], failure=[put(b"a")])  # different branches
    pair.kv("Range", key=b"\0", range_end=b"\0")


def test_txn_op_limit_and_op_errors(pair):
    pair.kv("Txn", success=[put(b"k%d" % i) for i in range(128)])
    pair.kv("Txn", success=[put(b"k%d" % i) for i in range(129)])
    pair.kv("Txn", failure=[get(b"k%d" % i) for i in range(129)])
    pair.kv("Txn", compare=[Compare(key=b"k%d" % i) for i in range(129)])
    pair.kv("Txn", success=[put(b"")])
    pair.kv("Txn", success=[put(b"x", lease=404)])
    pair.kv("Txn", success=[put(b"nope", ignore_value=True)])
    pair.kv("Txn", success=[get(b"k1", revision=1000)])
    pair.kv("Range", key=b"\0", range_end=b"\0", count_only=True)


def test_compact_logical_then_reads(pair):
    for index in range(6):
        pair.kv("Put", key=b"k", value=b"%d" % index)
    pair.kv("Compact", revision=0)
    pair.kv("Compact", revision=3)
    pair.kv("Compact", revision=3)  # already compacted
    pair.kv("Compact", revision=2)
    pair.kv("Compact", revision=100)  # future
    pair.kv("Range", key=b"k", revision=2)
    pair.kv("Range", key=b"k", revision=3)
    pair.kv("Range", key=b"k", revision=4)
    compare = Compare(key=b"k", target=Compare.MOD, result=Compare.GREATER, mod_revision=0)
    pair.kv("Txn", compare=[compare], success=[get(b"k", revision=2)])
    pair.kv("Compact", revision=7, physical=True)
    pair.kv("Range", key=b"k")
    pair.kv("Range", key=b"k", revision=6)
    pair.kv("Compact", revision=7, physical=True)
