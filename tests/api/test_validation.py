"""KV request checks, case by case as etcd's v3rpc/key.go makes them."""

from types import SimpleNamespace

import pytest

from k0s_store import errors
from k0s_store.api import validation
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.kv import KVService, txn_from_message
from k0s_store.api.settings import Settings
from k0s_store.api.unmarshal_errors import gogo_unmarshal_error
from k0s_store.mvcc.types import (
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from k0s_store.proto import rpc_pb2


def put(key: bytes) -> PutRequest:
    return PutRequest(key, b"v")


def test_empty_keys_are_rejected():
    with pytest.raises(errors.EmptyKeyError):
        validation.check_range(RangeRequest(b""))
    with pytest.raises(errors.EmptyKeyError):
        validation.check_put(PutRequest(b""))
    with pytest.raises(errors.EmptyKeyError):
        validation.check_delete_range(DeleteRangeRequest(b""))
    with pytest.raises(errors.EmptyKeyError):
        validation.check_txn(TxnRequest(compare=(Compare(0, 0, b""),)), 128)


def test_put_flags_exclude_their_field():
    with pytest.raises(errors.ValueProvidedError):
        validation.check_put(PutRequest(b"k", b"v", ignore_value=True))
    with pytest.raises(errors.LeaseProvidedError):
        validation.check_put(PutRequest(b"k", lease=7, ignore_lease=True))
    validation.check_put(PutRequest(b"k", ignore_value=True, ignore_lease=True))


def test_too_many_ops_counts_each_list_and_shrinks_for_nested_txns():
    ops = tuple(put(b"k%d" % i) for i in range(3))
    validation.check_txn(TxnRequest(success=ops, failure=ops), 3)
    with pytest.raises(errors.TooManyOpsError):
        validation.check_txn(TxnRequest(success=(*ops, put(b"x"))), 3)
    # The nested txn may use only what its parent left: 3 - 2 = 1.
    nested = TxnRequest(success=(put(b"a"), put(b"b")))
    with pytest.raises(errors.TooManyOpsError):
        validation.check_txn(TxnRequest(success=(nested, put(b"c"))), 3)


def test_too_many_ops_wins_over_an_empty_key():
    ops = (RangeRequest(b""),) * 4
    with pytest.raises(errors.TooManyOpsError):
        validation.check_txn(TxnRequest(success=ops), 3)


def test_an_op_without_request_is_key_not_found():
    with pytest.raises(errors.KeyNotFoundError):
        validation.check_txn(TxnRequest(failure=(None,)), 128)


@pytest.mark.parametrize(
    "ops",
    [
        (put(b"a"), put(b"a")),
        (put(b"a"), DeleteRangeRequest(b"a")),
        (DeleteRangeRequest(b"a", b"c"), put(b"b")),
        (TxnRequest(success=(put(b"a"),)), put(b"a")),
        (TxnRequest(success=(put(b"b"),)), DeleteRangeRequest(b"a", b"z")),
        (TxnRequest(failure=(DeleteRangeRequest(b"b"),)), put(b"b")),
        (TxnRequest(success=(put(b"a"),)), TxnRequest(failure=(put(b"a"),))),
    ],
)
def test_overlapping_writes_are_duplicate_keys(ops):
    with pytest.raises(errors.DuplicateKeyError):
        validation.check_txn(TxnRequest(success=ops), 128)


@pytest.mark.parametrize(
    "ops",
    [
        (put(b"a"), put(b"b"), RangeRequest(b"a")),
        (DeleteRangeRequest(b"a"), DeleteRangeRequest(b"a")),
        (DeleteRangeRequest(b"a", b"c"), put(b"c")),
        # then and else branches are exclusive
        (TxnRequest(success=(put(b"a"),), failure=(put(b"a"),)),),
        # etcd's interval check: a "from key" end (\0) holds no key
        (DeleteRangeRequest(b"a", b"\0"), put(b"b")),
    ],
)
def test_disjoint_writes_pass(ops):
    validation.check_txn(TxnRequest(success=ops), 128)


def test_txn_conversion_reads_the_operand_of_the_target():
    m = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(target=rpc_pb2.Compare.MOD, key=b"k", mod_revision=5),
            rpc_pb2.Compare(target=rpc_pb2.Compare.VALUE, key=b"k", value=b"v"),
            rpc_pb2.Compare(target=rpc_pb2.Compare.MOD, key=b"k", version=3),
        ],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"v"))],
        failure=[rpc_pb2.RequestOp()],
    )
    t = txn_from_message(m)
    assert [c.operand for c in t.compare] == [5, b"v", 0]
    assert t.success == (PutRequest(b"k", b"v"),)
    assert t.failure == (None,)


class Untouchable:
    """A store that fails the test if a request reaches it."""

    def __getattr__(self, name):
        raise AssertionError(f"the store was called: {name}")


def service(**settings) -> KVService:
    auth_off = AuthGuard(SimpleNamespace(auth=SimpleNamespace(enabled=False)), False)
    return KVService(Untouchable(), header=None, settings=Settings(**settings), auth=auth_off)


def test_malformed_requests_never_reach_the_store():
    kv = service()
    for call in (kv.range, kv.put, kv.delete_range, kv.txn):
        with pytest.raises(errors.MalformedRequestError) as exc:
            call(b"\x0a\xff")  # a length past the end
        assert exc.value.code == "INTERNAL"
        assert exc.value.message.startswith("grpc: error unmarshalling request: ")


def test_a_write_larger_than_max_request_bytes_is_too_large():
    kv = service(max_request_bytes=1000)
    request = rpc_pb2.PutRequest(key=b"k", value=b"v" * 1000).SerializeToString()
    with pytest.raises(errors.RequestTooLargeError):
        kv.put(request)


@pytest.mark.parametrize(
    ("message", "data", "text"),
    [
        (rpc_pb2.RangeRequest, b"\xff", "unexpected EOF"),
        (rpc_pb2.RangeRequest, b"\x0a\x05ab", "unexpected EOF"),
        (rpc_pb2.RangeRequest, b"\x07", "proto: RangeRequest: illegal tag 0 (wire type 7)"),
        (rpc_pb2.PutRequest, b"\x08", "proto: wrong wireType = 0 for field Key"),
        (rpc_pb2.PutRequest, b"\x0c", "proto: PutRequest: wiretype end group for non-group"),
        (rpc_pb2.LeaseGrantRequest, b"\x0a\xff", "proto: wrong wireType = 2 for field TTL"),
        (rpc_pb2.RangeRequest, b"\x18" + b"\xff" * 10 + b"\x01", "proto: integer overflow"),
        (
            rpc_pb2.TxnRequest,
            b"\x12\x02\x0a\x00\x12\x01\x08",  # success[1] is a RequestOp with a bad tag
            "proto: wrong wireType = 0 for field RequestRange",
        ),
        (rpc_pb2.RangeRequest, b"\x0a\x01a\x98\x06\x01", None),  # unknown field: fine
    ],
)
def test_unmarshal_errors_are_gogoprotos(message, data, text):
    assert gogo_unmarshal_error(message.DESCRIPTOR, data) == text
