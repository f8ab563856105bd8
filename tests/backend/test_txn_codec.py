"""The Txn decoder (both twins) against protobuf as the oracle.

Whatever protobuf writes, the decoder gives the request that protobuf's
parse converted by `txn_from_message` gives; the encodings it leaves to
protobuf raise ValueError, and the KV service's decoding (`_decode_txn`)
then gives protobuf's request or etcd's error, exactly as before.
"""

import random

import pytest
from harness.twins import twin_fixture

from k0s_store import errors
from k0s_store.api.kv import _TXN_TYPES, _decode_txn, txn_from_message
from k0s_store.api.unmarshal_errors import parse
from k0s_store.proto import rpc_pb2

txn_codec = twin_fixture("txn_codec")

INT64_EDGES = (0, 1, -1, 2**31, -(2**63), 2**63 - 1, 300)


def oracle(data: bytes):
    return txn_from_message(parse(rpc_pb2.TxnRequest, data))


def random_compare(rng: random.Random) -> rpc_pb2.Compare:
    c = rpc_pb2.Compare(
        result=rng.choice((0, 1, 2, 3, 7, -1)),
        target=rng.choice((0, 1, 2, 3, 4, 9, -2)),
        key=rng.randbytes(rng.randrange(0, 9)),
        range_end=rng.choice((b"", b"\0", b"zz")),
    )
    operand = rng.randrange(6)
    if operand == 0:
        c.version = rng.choice(INT64_EDGES)
    elif operand == 1:
        c.create_revision = rng.choice(INT64_EDGES)
    elif operand == 2:
        c.mod_revision = rng.choice(INT64_EDGES)
    elif operand == 3:
        c.value = rng.randbytes(rng.randrange(0, 5))
    elif operand == 4:
        c.lease = rng.choice(INT64_EDGES)
    return c


def random_op(rng: random.Random, depth: int) -> rpc_pb2.RequestOp:
    kind = rng.randrange(5 if depth < 3 else 4)
    if kind == 0:
        return rpc_pb2.RequestOp()  # no request set
    if kind == 1:
        return rpc_pb2.RequestOp(
            request_range=rpc_pb2.RangeRequest(
                key=rng.randbytes(3),
                range_end=rng.choice((b"", b"\0", b"k")),
                limit=rng.choice(INT64_EDGES),
                revision=rng.choice(INT64_EDGES),
                sort_order=rng.randrange(3),
                sort_target=rng.randrange(5),
                serializable=rng.random() < 0.5,
                keys_only=rng.random() < 0.5,
                count_only=rng.random() < 0.5,
                min_mod_revision=rng.choice(INT64_EDGES),
                max_mod_revision=rng.choice(INT64_EDGES),
                min_create_revision=rng.choice(INT64_EDGES),
                max_create_revision=rng.choice(INT64_EDGES),
            )
        )
    if kind == 2:
        return rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(
                key=rng.randbytes(rng.randrange(0, 9)),
                value=rng.randbytes(rng.randrange(0, 300)),
                lease=rng.choice(INT64_EDGES),
                prev_kv=rng.random() < 0.5,
                ignore_value=rng.random() < 0.3,
                ignore_lease=rng.random() < 0.3,
            )
        )
    if kind == 3:
        return rpc_pb2.RequestOp(
            request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=rng.randbytes(2), range_end=rng.choice((b"", b"\0")), prev_kv=rng.random() < 0.5
            )
        )
    return rpc_pb2.RequestOp(request_txn=random_txn(rng, depth + 1))


def random_txn(rng: random.Random, depth: int = 0) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[random_compare(rng) for _ in range(rng.randrange(3))],
        success=[random_op(rng, depth) for _ in range(rng.randrange(4))],
        failure=[random_op(rng, depth) for _ in range(rng.randrange(3))],
    )


def test_matches_protobuf_on_random_txns(txn_codec):
    rng = random.Random(7)
    for _ in range(1500):
        data = random_txn(rng).SerializeToString()
        assert txn_codec.decode_txn_request(data, _TXN_TYPES) == oracle(data)


def test_apiserver_txns(txn_codec):
    """Create, update (failure: read back) and delete, as the apiserver sends them."""
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/registry/x", value=b"v", lease=5))
    get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"/registry/x"))
    delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"/registry/x"))
    mod = rpc_pb2.Compare(target=rpc_pb2.Compare.MOD, key=b"/registry/x", mod_revision=41)
    for txn in (
        rpc_pb2.TxnRequest(compare=[mod], success=[put]),
        rpc_pb2.TxnRequest(compare=[mod], success=[put], failure=[get]),
        rpc_pb2.TxnRequest(compare=[mod], success=[delete], failure=[get]),
        rpc_pb2.TxnRequest(),
    ):
        data = txn.SerializeToString()
        assert txn_codec.decode_txn_request(data, _TXN_TYPES) == oracle(data)


def test_unknown_fields_and_repeats_read_as_protobuf_does(txn_codec):
    put = rpc_pb2.PutRequest(key=b"k", value=b"v").SerializeToString()
    op = b"\x12" + bytes([len(put)]) + put
    extra = b"\x48\x05" + b"\x51" + bytes(8) + b"\x5d" + bytes(4) + b"\x62\x02ab"  # 9-12
    # Compare: target VALUE, value set, then version (clears value), then value again.
    compare = b"\x10\x03\x1a\x01k\x3a\x01a\x20\x07\x3a\x01b" + extra
    for data in (
        extra + b"\x12" + bytes([len(op)]) + op + extra,
        b"\x0a" + bytes([len(compare)]) + compare,
        b"\x0a\x04\x10\x00\x20\x05\x0a\x04\x10\x00\x28\x05",  # a VERSION target given create
        b"\x12\x00\x12\x00",  # two ops with no request
    ):
        assert txn_codec.decode_txn_request(data, _TXN_TYPES) == oracle(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x12\x08\x12\x02\x0a\x00\x12\x02\x0a\x00",  # one RequestOp, request_put twice (merged)
        b"\x12\x06\x12\x04\x1a\x02\x01\x02",  # a packed lease
        b"\x12\x04\x12\x02\x1b\x1c",  # a group inside a PutRequest
        b"\x0a\x02\x10",  # truncated
        b"\x12\x05\x12\x02",  # a length past the end
        b"\x08\x01",  # compare given as a varint
    ],
)
def test_unusual_or_malformed_left_to_protobuf(txn_codec, data):
    with pytest.raises(ValueError):
        txn_codec.decode_txn_request(data, _TXN_TYPES)
    try:
        expected = oracle(data)
    except errors.EtcdError as exc:
        with pytest.raises(type(exc)) as raised:
            _decode_txn(data)
        assert raised.value.message == exc.message
    else:
        assert _decode_txn(data) == expected


def test_deep_nesting_is_left_to_protobuf(txn_codec):
    txn = rpc_pb2.TxnRequest()
    for _ in range(txn_codec.MAX_DEPTH + 1):
        txn = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=txn)])
    data = txn.SerializeToString()
    with pytest.raises(ValueError):
        txn_codec.decode_txn_request(data, _TXN_TYPES)
    assert _decode_txn(data) == oracle(data)
