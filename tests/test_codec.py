"""The wire codec, both twins, against the generated protobuf classes as the oracle.

Every test runs on the pure-Python twin and on the compiled module (imported
directly here, not through k0s_store.core, so both are always covered).
Encoders must be byte-identical to protobuf's canonical serialisation;
decoders must read anything protobuf writes, plus hand-made encodings that
protobuf accepts too (unknown fields, reordering, repeats).
"""

import random

import pytest
from harness.twins import twin, twin_fixture

from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest
from k0s_store.proto import kv_pb2, rpc_pb2

API = [
    "decode_delete_range_request",
    "decode_kv",
    "decode_put_request",
    "decode_range_request",
    "encode_delete_range_response",
    "encode_event",
    "encode_header",
    "encode_kv",
    "encode_put_response",
    "encode_range_response",
    "encode_response_op",
    "encode_txn_response",
    "encode_watch_response",
    "encoded_len_field",
    "kv_without_value",
    "parse_rev_key",
    "rev_key",
]

INT64_MIN, INT64_MAX, UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1
EDGE_INT64 = [0, 1, -1, 127, 128, 300, 16383, 16384, 1 << 35, -(1 << 35), INT64_MAX, INT64_MIN]
MIB = 1 << 20


codec = twin_fixture("codec")


# ---- hand-made wire encoding (independent of the code under test) --------


def varint(n: int) -> bytes:
    n &= UINT64_MAX
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def len_field(field: int, body: bytes) -> bytes:
    return tag(field, 2) + varint(len(body)) + body


UNKNOWN_FIELDS = [
    tag(100, 0) + varint(-7),  # varint
    tag(101, 1) + b"\x01" * 8,  # fixed64
    len_field(102, b"unknown bytes"),  # length-delimited
    tag(103, 3) + tag(1, 0) + varint(5) + tag(104, 3) + tag(104, 4) + tag(103, 4),  # nested group
    tag(105, 5) + b"\x02" * 4,  # fixed32
    tag(15, 0) + varint(1),  # a field number past the message's own
]


def random_int64(rng: random.Random) -> int:
    return rng.choice(EDGE_INT64) if rng.random() < 0.5 else rng.randint(INT64_MIN, INT64_MAX)


def random_bytes(rng: random.Random) -> bytes:
    n = rng.choice([0, 0, 1, 5, 127, 128, 300, rng.randint(0, 5000)])
    return rng.randbytes(n)


def random_kv(rng: random.Random) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=random_bytes(rng),
        create_revision=random_int64(rng),
        mod_revision=random_int64(rng),
        version=random_int64(rng),
        value=random_bytes(rng),
        lease=random_int64(rng),
    )


def kv_tuple(m: kv_pb2.KeyValue) -> tuple:
    return (m.key, m.create_revision, m.mod_revision, m.version, m.value, m.lease)


def fields_tuple(m) -> tuple:
    """A request message's fields in proto order, as our decoders return them."""
    return tuple(getattr(m, f.name) for f in m.DESCRIPTOR.fields)


def header_pb(cluster_id=0, member_id=0, revision=0, raft_term=0) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(
        cluster_id=cluster_id, member_id=member_id, revision=revision, raft_term=raft_term
    )


# ---- API -----------------------------------------------------------------


def test_both_twins_export_the_same_api(codec):
    assert sorted(codec.__all__) == API
    assert all(callable(getattr(codec, name)) for name in API)


# ---- revision keys -------------------------------------------------------


def test_rev_key_layout(codec):
    assert codec.rev_key(1, 2) == b"\x00" * 7 + b"\x01_" + b"\x00" * 7 + b"\x02"
    assert codec.rev_key(0x0102030405060708, 0, True) == bytes(range(1, 9)) + b"_" + bytes(8) + b"t"
    assert codec.rev_key(5, 0) < codec.rev_key(5, 1) < codec.rev_key(6, 0)  # sorts by revision


@pytest.mark.parametrize("main,sub", [(0, 0), (1, 0), (7, 3), (INT64_MAX, INT64_MAX), (-1, 1)])
@pytest.mark.parametrize("tombstone", [False, True])
def test_rev_key_round_trips(codec, main, sub, tombstone):
    key = codec.rev_key(main, sub, tombstone)
    assert len(key) == 17 + tombstone
    assert codec.parse_rev_key(key) == (main, sub, tombstone)
    assert codec.parse_rev_key(memoryview(key)) == (main, sub, tombstone)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00" * 16, b"\x00" * 19, b"\x00" * 17, b"\x00" * 8 + b"_" + b"\x00" * 8 + b"x"],
)
def test_parse_rev_key_rejects_non_revision_keys(codec, bad):
    with pytest.raises(ValueError):
        codec.parse_rev_key(bad)


def test_rev_key_rejects_out_of_range(codec):
    with pytest.raises(OverflowError):
        codec.rev_key(1 << 63, 0)


# ---- KeyValue ------------------------------------------------------------


def test_encode_kv_matches_protobuf(codec):
    rng = random.Random(1)
    for _ in range(300):
        m = random_kv(rng)
        ours = codec.encode_kv(*kv_tuple(m))
        assert ours == m.SerializeToString()
        parsed = kv_pb2.KeyValue()
        parsed.ParseFromString(ours)
        assert parsed == m
        assert codec.decode_kv(ours) == kv_tuple(m)


def test_kv_edge_cases(codec):
    assert codec.encode_kv(b"", 0, 0, 0, b"", 0) == b""
    assert codec.decode_kv(b"") == (b"", 0, 0, 0, b"", 0)
    for value in (INT64_MAX, INT64_MIN, -1):
        m = kv_pb2.KeyValue(key=b"k", create_revision=value, version=value, lease=value)
        assert codec.encode_kv(*kv_tuple(m)) == m.SerializeToString()
    big = kv_pb2.KeyValue(key=b"k" * MIB, value=bytes(range(256)) * (MIB // 256), version=1)
    wire = big.SerializeToString()
    assert codec.encode_kv(*kv_tuple(big)) == wire
    assert codec.decode_kv(wire) == kv_tuple(big)


def test_encode_kv_accepts_buffers(codec):
    expected = codec.encode_kv(b"key", 1, 2, 3, b"value", 0)
    assert codec.encode_kv(bytearray(b"key"), 1, 2, 3, memoryview(b"value"), 0) == expected


def test_encode_kv_rejects_out_of_range(codec):
    with pytest.raises(OverflowError):
        codec.encode_kv(b"k", 1 << 63, 0, 0, b"", 0)
    with pytest.raises(OverflowError):
        codec.encode_kv(b"k", 0, 0, 0, b"", INT64_MIN - 1)


def test_decode_kv_reads_any_valid_encoding(codec):
    rng = random.Random(2)
    for _ in range(100):
        m = random_kv(rng)
        fields = [
            len_field(1, m.key),
            tag(2, 0) + varint(m.create_revision),
            tag(3, 0) + varint(m.mod_revision),
            tag(4, 0) + varint(m.version),
            len_field(5, m.value),
            tag(6, 0) + varint(m.lease),
            *UNKNOWN_FIELDS,
        ]
        rng.shuffle(fields)
        # Stale earlier occurrences of every field: the last one wins.
        stale = len_field(1, b"stale") + tag(4, 0) + varint(99) + len_field(5, b"old")
        wire = stale + b"".join(fields)
        oracle = kv_pb2.KeyValue()
        oracle.ParseFromString(wire)
        assert codec.decode_kv(wire) == kv_tuple(oracle) == kv_tuple(m)
        assert codec.decode_kv(bytearray(wire)) == kv_tuple(m)
        assert codec.decode_kv(memoryview(wire)) == kv_tuple(m)


def test_decode_kv_refuses_packed_varints(codec):
    # A singular varint field sent packed (length-delimited): gogoproto refuses it.
    for wire in (len_field(2, varint(5) + varint(-3)), len_field(4, b"") + tag(6, 0) + varint(9)):
        with pytest.raises(ValueError, match="wire type 2 for varint field"):
            codec.decode_kv(wire)


def test_decode_kv_accepts_overlong_varints(codec):
    # 1 sent as a 10-byte varint (a valid, non-minimal encoding).
    wire = tag(2, 0) + b"\x81" + b"\x80" * 8 + b"\x00"
    assert codec.decode_kv(wire) == (b"", 1, 0, 0, b"", 0)


def test_kv_without_value(codec):
    rng = random.Random(3)
    for _ in range(100):
        m = random_kv(rng)
        without = kv_pb2.KeyValue()
        without.CopyFrom(m)
        without.ClearField("value")
        assert codec.kv_without_value(m.SerializeToString()) == without.SerializeToString()
    no_value = codec.encode_kv(b"k", 1, 1, 1, b"", 0)
    assert codec.kv_without_value(no_value) == no_value
    assert codec.kv_without_value(b"") == b""
    repeated = len_field(5, b"a") + len_field(1, b"k") + len_field(5, b"b") + tag(2, 0) + varint(3)
    assert codec.kv_without_value(memoryview(repeated)) == len_field(1, b"k") + tag(2, 0) + b"\x03"


# ---- requests ------------------------------------------------------------


def random_range_request(rng: random.Random) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=random_bytes(rng),
        range_end=rng.choice([b"", b"\x00", random_bytes(rng)]),
        limit=random_int64(rng),
        revision=random_int64(rng),
        sort_order=rng.choice([0, 1, 2]),
        sort_target=rng.choice([0, 1, 2, 3, 4]),
        serializable=rng.random() < 0.5,
        keys_only=rng.random() < 0.5,
        count_only=rng.random() < 0.5,
        min_mod_revision=random_int64(rng),
        max_mod_revision=random_int64(rng),
        min_create_revision=random_int64(rng),
        max_create_revision=random_int64(rng),
    )


def random_put_request(rng: random.Random) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=random_bytes(rng),
        value=random_bytes(rng),
        lease=random_int64(rng),
        prev_kv=rng.random() < 0.5,
        ignore_value=rng.random() < 0.5,
        ignore_lease=rng.random() < 0.5,
    )


def random_delete_range_request(rng: random.Random) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(
        key=random_bytes(rng), range_end=random_bytes(rng), prev_kv=rng.random() < 0.5
    )


REQUESTS = [
    ("decode_range_request", random_range_request, rpc_pb2.RangeRequest, RangeRequest),
    ("decode_put_request", random_put_request, rpc_pb2.PutRequest, PutRequest),
    (
        "decode_delete_range_request",
        random_delete_range_request,
        rpc_pb2.DeleteRangeRequest,
        DeleteRangeRequest,
    ),
]


@pytest.mark.parametrize("decoder,generate,message,named", REQUESTS)
def test_decode_request_matches_protobuf(codec, decoder, generate, message, named):
    decode = getattr(codec, decoder)
    rng = random.Random(4)
    for _ in range(200):
        m = generate(rng)
        wire = m.SerializeToString()
        decoded = decode(wire)
        assert decoded == fields_tuple(m)
        assert [type(v) for v in decoded] == [type(v) for v in fields_tuple(m)]
        assert named(*decoded)._asdict() == {
            f.name: v for f, v in zip(m.DESCRIPTOR.fields, decoded, strict=True)
        }
        # Unknown fields anywhere, and all of them at once, change nothing.
        for unknown in UNKNOWN_FIELDS:
            assert decode(unknown + wire) == decoded
            assert decode(wire + unknown) == decoded
        assert decode(b"".join(UNKNOWN_FIELDS) + wire + b"".join(UNKNOWN_FIELDS)) == decoded
    assert decode(b"") == fields_tuple(message())


@pytest.mark.parametrize("decoder,generate,message,named", REQUESTS)
def test_decode_request_last_occurrence_wins(codec, decoder, generate, message, named):
    decode = getattr(codec, decoder)
    rng = random.Random(5)
    for _ in range(50):
        first, second = generate(rng), generate(rng)
        wire = first.SerializeToString() + second.SerializeToString()
        oracle = message()
        oracle.ParseFromString(wire)  # scalars: last wins; our messages have no sub-messages
        assert decode(wire) == fields_tuple(oracle)


def test_decode_range_request_oddities(codec):
    # Bools that are not 0/1, and a negative enum sent as a 10-byte varint.
    wire = tag(7, 0) + varint(2) + tag(5, 0) + varint(-1) + tag(6, 0) + varint(1 << 32 | 3)
    oracle = rpc_pb2.RangeRequest()
    oracle.ParseFromString(wire)
    assert codec.decode_range_request(wire) == fields_tuple(oracle)
    decoded = codec.decode_range_request(wire)
    assert decoded[4:7] == (-1, 3, True)
    # Packed bools and ints are refused, as gogoproto refuses them.
    for packed in (len_field(8, varint(1) + varint(0)), len_field(3, varint(7) + varint(-2))):
        with pytest.raises(ValueError, match="wire type 2 for varint field"):
            codec.decode_range_request(packed)


def test_decode_request_large(codec):
    m = rpc_pb2.PutRequest(key=b"\xff" * 1024, value=b"v" * MIB, lease=INT64_MAX, prev_kv=True)
    assert codec.decode_put_request(m.SerializeToString()) == fields_tuple(m)


# ---- malformed input -----------------------------------------------------

MALFORMED = {
    "truncated tag": b"\x80",
    "truncated varint": tag(3, 0) + b"\xff\xff",
    "truncated length": tag(1, 2) + b"\x85",
    "length past the end": len_field(1, b"abc")[:-1],
    "huge length": tag(1, 2) + varint(1 << 62) + b"x",
    "varint longer than 10 bytes": tag(3, 0) + b"\xff" * 10 + b"\x01",
    "tag longer than 10 bytes": b"\x80" * 10 + b"\x08",
    "field number 0": tag(0, 0) + b"\x01",
    "wire type 6": tag(3, 6),
    "wire type 7": tag(20, 7) + b"\x00",
    "stray end group": tag(20, 4),
    "unterminated group": tag(20, 3) + tag(1, 0) + b"\x01",
    "group closed twice": tag(20, 3) + tag(20, 4) + tag(20, 4),
    "truncated fixed64": tag(20, 1) + b"\x00" * 7,
    "truncated fixed32": tag(20, 5) + b"\x00" * 3,
    "truncated unknown varint": tag(20, 0) + b"\x80",
    "truncated packed varint": len_field(3, b"\x80"),
    "bytes field as varint": tag(1, 0) + b"\x01",
    "varint field as fixed64": tag(3, 1) + b"\x00" * 8,
    "varint field as fixed32": tag(3, 5) + b"\x00" * 4,
}


@pytest.mark.parametrize("bad", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize(
    "decoder",
    ["decode_kv", "decode_range_request", "decode_put_request", "decode_delete_range_request"],
)
def test_decoders_reject_malformed_input(codec, decoder, bad):
    with pytest.raises(ValueError):
        getattr(codec, decoder)(bad)
    with pytest.raises(ValueError):
        getattr(codec, decoder)(len_field(1, b"k") + bad)


# Well-formed structure, wrong content: kv_without_value copies fields without reading them.
STRUCTURALLY_VALID = {
    "truncated packed varint",
    "bytes field as varint",
    "varint field as fixed64",
    "varint field as fixed32",
}
STRUCTURALLY_MALFORMED = [k for k in MALFORMED if k not in STRUCTURALLY_VALID]


@pytest.mark.parametrize(
    "bad", [MALFORMED[k] for k in STRUCTURALLY_MALFORMED], ids=STRUCTURALLY_MALFORMED
)
def test_kv_without_value_rejects_malformed_input(codec, bad):
    with pytest.raises(ValueError):
        codec.kv_without_value(bad)


def test_truncations_fail_exactly_inside_fields(codec):
    m = rpc_pb2.PutRequest(key=b"key", value=b"value", lease=-5, prev_kv=True)
    wire = m.SerializeToString()
    fields = [len_field(1, b"key"), len_field(2, b"value"), tag(3, 0) + varint(-5), b"\x20\x01"]
    assert b"".join(fields) == wire
    boundaries = {sum(len(f) for f in fields[:i]) for i in range(len(fields) + 1)}
    for cut in range(len(wire) + 1):
        if cut in boundaries:
            codec.decode_put_request(wire[:cut])
        else:
            with pytest.raises(ValueError):
                codec.decode_put_request(wire[:cut])


# ---- responses -----------------------------------------------------------


def random_header(rng: random.Random) -> tuple[int, int, int, int]:
    def uint64() -> int:
        return rng.choice([0, 1, 128, UINT64_MAX, rng.randint(0, UINT64_MAX)])

    return uint64(), uint64(), random_int64(rng), uint64()


def test_encode_header_matches_protobuf(codec):
    rng = random.Random(7)
    for _ in range(200):
        fields = random_header(rng)
        assert codec.encode_header(*fields) == header_pb(*fields).SerializeToString()
    assert codec.encode_header(0, 0, 0, 0) == b""


def test_encode_header_rejects_out_of_range(codec):
    with pytest.raises(OverflowError):
        codec.encode_header(-1, 0, 0, 0)
    with pytest.raises(OverflowError):
        codec.encode_header(0, 1 << 64, 0, 0)
    with pytest.raises(OverflowError):
        codec.encode_header(0, 0, 1 << 63, 0)


def test_encode_range_response_matches_protobuf(codec):
    rng = random.Random(8)
    for n in (0, 1, 3, 1000):
        kvs = [random_kv(rng) for _ in range(n)]
        kvs.append(kv_pb2.KeyValue())  # an empty KeyValue is still emitted
        fields = random_header(rng)
        more, count = rng.random() < 0.5, random_int64(rng)
        expected = rpc_pb2.RangeResponse(header=header_pb(*fields), kvs=kvs, more=more, count=count)
        raw = [kv.SerializeToString() for kv in kvs]
        ours = codec.encode_range_response(codec.encode_header(*fields), raw, more, count)
        assert ours == expected.SerializeToString()
        parsed = rpc_pb2.RangeResponse()
        parsed.ParseFromString(ours)
        assert parsed == expected
    # The header is always emitted, even empty; a tuple of buffers works as a list.
    empty = rpc_pb2.RangeResponse(header=header_pb())
    assert (
        codec.encode_range_response(b"", [], False, 0) == empty.SerializeToString() == b"\x0a\x00"
    )
    kv = random_kv(rng)
    assert codec.encode_range_response(b"", (memoryview(kv.SerializeToString()),), False, 1) == (
        rpc_pb2.RangeResponse(header=header_pb(), kvs=[kv], count=1).SerializeToString()
    )


def test_encode_range_response_large(codec):
    kv = kv_pb2.KeyValue(key=b"k", value=b"x" * MIB, mod_revision=1)
    expected = rpc_pb2.RangeResponse(header=header_pb(revision=9), kvs=[kv, kv], count=2)
    header = codec.encode_header(0, 0, 9, 0)
    raw = kv.SerializeToString()
    assert codec.encode_range_response(header, [raw, raw], False, 2) == expected.SerializeToString()


def test_encode_put_response_matches_protobuf(codec):
    rng = random.Random(9)
    fields = random_header(rng)
    header = codec.encode_header(*fields)
    kv = random_kv(rng)
    cases = [
        (None, rpc_pb2.PutResponse(header=header_pb(*fields))),
        (b"", rpc_pb2.PutResponse(header=header_pb(*fields), prev_kv=kv_pb2.KeyValue())),
        (kv.SerializeToString(), rpc_pb2.PutResponse(header=header_pb(*fields), prev_kv=kv)),
    ]
    for prev_kv, expected in cases:
        assert codec.encode_put_response(header, prev_kv) == expected.SerializeToString()
    assert codec.encode_put_response(b"", b"") == b"\x0a\x00\x12\x00"


def test_encode_delete_range_response_matches_protobuf(codec):
    rng = random.Random(10)
    for n in (0, 1, 50):
        kvs = [random_kv(rng) for _ in range(n)]
        fields, deleted = random_header(rng), rng.choice([0, n, INT64_MAX, -1])
        expected = rpc_pb2.DeleteRangeResponse(
            header=header_pb(*fields), deleted=deleted, prev_kvs=kvs
        )
        ours = codec.encode_delete_range_response(
            codec.encode_header(*fields), deleted, [kv.SerializeToString() for kv in kvs]
        )
        assert ours == expected.SerializeToString()


def test_encode_txn_response_matches_protobuf(codec):
    rng = random.Random(11)
    header_fields = random_header(rng)
    header = codec.encode_header(*header_fields)
    kv = random_kv(rng)
    range_pb = rpc_pb2.RangeResponse(header=header_pb(*header_fields), kvs=[kv], count=1)
    put_pb = rpc_pb2.PutResponse(header=header_pb(*header_fields))
    delete_pb = rpc_pb2.DeleteRangeResponse(header=header_pb(*header_fields), deleted=2)
    inner_pb = rpc_pb2.TxnResponse(header=header_pb(*header_fields))
    ops = [
        codec.encode_response_op(
            1, codec.encode_range_response(header, [kv.SerializeToString()], False, 1)
        ),
        codec.encode_response_op(2, codec.encode_put_response(header, None)),
        codec.encode_response_op(3, codec.encode_delete_range_response(header, 2, [])),
        codec.encode_response_op(4, codec.encode_txn_response(header, False, [])),
        codec.encode_response_op(2, b""),  # an empty oneof member is still emitted
    ]
    expected_ops = [
        rpc_pb2.ResponseOp(response_range=range_pb),
        rpc_pb2.ResponseOp(response_put=put_pb),
        rpc_pb2.ResponseOp(response_delete_range=delete_pb),
        rpc_pb2.ResponseOp(response_txn=inner_pb),
        rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse()),
    ]
    for ours, expected in zip(ops, expected_ops, strict=True):
        assert ours == expected.SerializeToString()
    for succeeded in (False, True):
        expected = rpc_pb2.TxnResponse(
            header=header_pb(*header_fields), succeeded=succeeded, responses=expected_ops
        )
        ours = codec.encode_txn_response(header, succeeded, ops)
        assert ours == expected.SerializeToString()
        parsed = rpc_pb2.TxnResponse()
        parsed.ParseFromString(ours)
        assert parsed == expected


@pytest.mark.parametrize("field", [0, 5, -1])
def test_encode_response_op_rejects_unknown_fields(codec, field):
    with pytest.raises(ValueError):
        codec.encode_response_op(field, b"")


def test_encode_event_matches_protobuf(codec):
    rng = random.Random(12)
    for _ in range(100):
        kv, prev = random_kv(rng), rng.choice([None, kv_pb2.KeyValue(), random_kv(rng)])
        event_type = rng.choice([0, 1])
        expected = kv_pb2.Event(type=event_type, kv=kv, prev_kv=prev)
        ours = codec.encode_event(
            event_type, kv.SerializeToString(), None if prev is None else prev.SerializeToString()
        )
        assert ours == expected.SerializeToString()
    # kv is always emitted, even empty; an out-of-schema negative enum is a 10-byte varint.
    assert (
        codec.encode_event(0, b"", None) == kv_pb2.Event(kv=kv_pb2.KeyValue()).SerializeToString()
    )
    assert codec.encode_event(-1, b"", None) == b"\x08" + b"\xff" * 9 + b"\x01\x12\x00"
    with pytest.raises(OverflowError):
        codec.encode_event(1 << 31, b"", None)


def test_encode_watch_response_matches_protobuf(codec):
    rng = random.Random(13)
    for _ in range(100):
        header_fields = random_header(rng)
        events = [
            kv_pb2.Event(type=rng.choice([0, 1]), kv=random_kv(rng))
            for _ in range(rng.choice([0, 1, 5]))
        ]
        fields = dict(
            watch_id=rng.choice([0, -1, 1, INT64_MAX, random_int64(rng)]),
            created=rng.random() < 0.5,
            canceled=rng.random() < 0.5,
            compact_revision=rng.choice([0, random_int64(rng)]),
            cancel_reason=rng.choice(["", "mvcc: required revision has been compacted", "é✓"]),
            fragment=rng.random() < 0.5,
        )
        expected = rpc_pb2.WatchResponse(header=header_pb(*header_fields), events=events, **fields)
        ours = codec.encode_watch_response(
            codec.encode_header(*header_fields),
            fields["watch_id"],
            fields["created"],
            fields["canceled"],
            fields["compact_revision"],
            fields["cancel_reason"],
            fields["fragment"],
            [e.SerializeToString() for e in events],
        )
        assert ours == expected.SerializeToString()
        parsed = rpc_pb2.WatchResponse()
        parsed.ParseFromString(ours)
        assert parsed == expected


def test_watch_id_proto3_semantics(codec):
    # watch_id 0 is omitted; -1 is a 10-byte varint.
    assert codec.encode_watch_response(b"", 0, False, False, 0, "", False, []) == b"\x0a\x00"
    minus_one = codec.encode_watch_response(b"", -1, False, False, 0, "", False, [])
    assert minus_one == b"\x0a\x00\x10" + b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize("body_len", [0, 1, 127, 128, 16383, 16384, (1 << 21) - 1, 1 << 21, MIB])
def test_encoded_len_field(codec, body_len):
    body = b"x" * body_len
    assert codec.encoded_len_field(body_len) == len(codec.encode_response_op(1, body))
    # A watch response is its header plus one such field per event.
    response = codec.encode_watch_response(b"", 0, False, False, 0, "", False, [body, b""])
    expected = (
        codec.encoded_len_field(0) + codec.encoded_len_field(body_len) + codec.encoded_len_field(0)
    )
    assert len(response) == expected


def test_encoded_len_field_rejects_negative(codec):
    with pytest.raises(ValueError):
        codec.encoded_len_field(-1)


# ---- the twins agree -----------------------------------------------------


def test_twins_agree_on_random_bytes():
    """Fuzz: on arbitrary input both twins return the same thing or both raise ValueError."""
    rng = random.Random(14)
    valid = [
        random_range_request(rng).SerializeToString() + rng.choice(UNKNOWN_FIELDS)
        for _ in range(50)
    ]
    for _ in range(3000):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randint(0, 40))
        else:  # a valid message with a few bytes flipped
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        for name in ["decode_kv", "decode_range_request", "kv_without_value"]:
            results = []
            for module in (twin("codec", "pure"), twin("codec", "compiled")):
                try:
                    results.append(getattr(module, name)(data))
                except ValueError:
                    results.append(ValueError)
            assert results[0] == results[1], (name, data)


# ---- against the real etcd (Go gogoproto) --------------------------------


def rebuild_kv(codec, kv: kv_pb2.KeyValue) -> bytes:
    return codec.encode_kv(*kv_tuple(kv))


def rebuild_header(codec, h: rpc_pb2.ResponseHeader) -> bytes:
    return codec.encode_header(h.cluster_id, h.member_id, h.revision, h.raft_term)


def rebuild_range(codec, r: rpc_pb2.RangeResponse) -> bytes:
    kvs = [rebuild_kv(codec, kv) for kv in r.kvs]
    return codec.encode_range_response(rebuild_header(codec, r.header), kvs, r.more, r.count)


def rebuild_put(codec, r: rpc_pb2.PutResponse) -> bytes:
    prev = rebuild_kv(codec, r.prev_kv) if r.HasField("prev_kv") else None
    return codec.encode_put_response(rebuild_header(codec, r.header), prev)


def rebuild_delete(codec, r: rpc_pb2.DeleteRangeResponse) -> bytes:
    prevs = [rebuild_kv(codec, kv) for kv in r.prev_kvs]
    return codec.encode_delete_range_response(rebuild_header(codec, r.header), r.deleted, prevs)


def rebuild_txn(codec, r: rpc_pb2.TxnResponse) -> bytes:
    rebuilders = {
        "response_range": (1, rebuild_range),
        "response_put": (2, rebuild_put),
        "response_delete_range": (3, rebuild_delete),
        "response_txn": (4, rebuild_txn),
    }
    ops = []
    for op in r.responses:
        name = op.WhichOneof("response")
        field, rebuild = rebuilders[name]
        ops.append(codec.encode_response_op(field, rebuild(codec, getattr(op, name))))
    return codec.encode_txn_response(rebuild_header(codec, r.header), r.succeeded, ops)


def rebuild_watch(codec, r: rpc_pb2.WatchResponse) -> bytes:
    events = [
        codec.encode_event(
            e.type,
            rebuild_kv(codec, e.kv),
            rebuild_kv(codec, e.prev_kv) if e.HasField("prev_kv") else None,
        )
        for e in r.events
    ]
    return codec.encode_watch_response(
        rebuild_header(codec, r.header),
        r.watch_id,
        r.created,
        r.canceled,
        r.compact_revision,
        r.cancel_reason,
        r.fragment,
        events,
    )


@pytest.mark.etcd
def test_byte_identical_to_real_etcd(codec, etcd_server):
    """etcd's raw response bytes, re-encoded from their decoded fields, come out the same."""
    channel = etcd_server.channel()

    def call(method: str, request, response_class):
        raw = channel.unary_unary(f"/etcdserverpb.{method}")(request.SerializeToString())
        return raw, response_class.FromString(raw)

    lease = call("Lease/LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=600), rpc_pb2.LeaseGrantResponse)
    watch_requests = [
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"k", range_end=b"l", prev_kv=True)
        ).SerializeToString()
    ]
    watch = channel.stream_stream("/etcdserverpb.Watch/Watch")(iter(watch_requests), timeout=20)
    raw_created = next(watch)

    puts = [
        rpc_pb2.PutRequest(key=b"k1", value=b"v1"),
        rpc_pb2.PutRequest(key=b"k2", value=b"x" * 70000, lease=lease[1].ID),
        rpc_pb2.PutRequest(key=b"k1", value=b"", prev_kv=True),
        rpc_pb2.PutRequest(key=b"k3", value=b"v3", prev_kv=True),  # no previous: no prev_kv
    ]
    for put in puts:
        raw, parsed = call("KV/Put", put, rpc_pb2.PutResponse)
        assert rebuild_put(codec, parsed) == raw
    for request in [
        rpc_pb2.RangeRequest(key=b"k", range_end=b"l"),
        rpc_pb2.RangeRequest(key=b"k", range_end=b"l", limit=1),
        rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True),
        rpc_pb2.RangeRequest(key=b"nothing"),
    ]:
        raw, parsed = call("KV/Range", request, rpc_pb2.RangeResponse)
        assert rebuild_range(codec, parsed) == raw
    # keys_only: etcd's KeyValue is ours with the value dropped.
    full = call("KV/Range", rpc_pb2.RangeRequest(key=b"k2"), rpc_pb2.RangeResponse)[1].kvs[0]
    keys = call("KV/Range", rpc_pb2.RangeRequest(key=b"k2", keys_only=True), rpc_pb2.RangeResponse)
    assert codec.kv_without_value(full.SerializeToString()) == keys[1].kvs[0].SerializeToString()

    txn = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"k1", target=rpc_pb2.Compare.MOD, mod_revision=0)],
        success=[],
        failure=[
            rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k1")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k4", value=b"v4")),
            rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest()),
            rpc_pb2.RequestOp(
                request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"k3", prev_kv=True)
            ),
        ],
    )
    raw, parsed = call("KV/Txn", txn, rpc_pb2.TxnResponse)
    assert rebuild_txn(codec, parsed) == raw
    raw, parsed = call(
        "KV/DeleteRange",
        rpc_pb2.DeleteRangeRequest(key=b"k", range_end=b"l", prev_kv=True),
        rpc_pb2.DeleteRangeResponse,
    )
    assert parsed.deleted == 3
    assert rebuild_delete(codec, parsed) == raw

    watched = [raw_created]
    while sum(len(rpc_pb2.WatchResponse.FromString(r).events) for r in watched) < 9:
        watched.append(next(watch))
    for raw in watched:
        assert rebuild_watch(codec, rpc_pb2.WatchResponse.FromString(raw)) == raw
    watch.cancel()
    channel.close()
