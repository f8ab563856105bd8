"""Differential: malformed bytes, oversized requests, unknown methods.

Sent raw (identity serializers) so nothing client-side fixes them up; the
gRPC code and message must match etcd's, and the store must be intact after.
"""

import pytest
from harness.normalise import render

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd

MIB = 1024 * 1024

MALFORMED = [
    b"\xff",  # truncated varint tag
    b"\x0a\x05ab",  # key field claims 5 bytes, has 2
    b"\x0a",  # length missing
    b"\x08",  # varint value missing
    b"\x07",  # invalid wire type 7 (field 0)
    b"\x0a\x02ab\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # varint too long
]


@pytest.mark.parametrize("payload", MALFORMED, ids=lambda p: p.hex())
@pytest.mark.parametrize("method", ["Range", "Put", "DeleteRange", "Txn", "Compact"])
def test_malformed_protobuf(pair, method, payload):
    pair.raw_same(f"/etcdserverpb.KV/{method}", payload)
    pair.kv("Range", key=b"\0", range_end=b"\0")


def test_malformed_lease_and_maintenance(pair):
    for path in (
        "/etcdserverpb.Lease/LeaseGrant",
        "/etcdserverpb.Lease/LeaseRevoke",
        "/etcdserverpb.Maintenance/Status",
    ):
        for payload in MALFORMED[:3]:
            pair.raw_same(path, payload)


# A singular varint field sent as a packed body (wire type 2): gogoproto
# refuses the message where protobuf would keep the field aside as unknown.
PACKED_SINGULAR = [
    ("/etcdserverpb.KV/Range", b"\x0a\x01a\x5a\x01\x05"),  # max_mod_revision
    ("/etcdserverpb.KV/Put", b"\x0a\x01a\x12\x01v\x1a\x01\x05"),  # lease
    ("/etcdserverpb.KV/DeleteRange", b"\x0a\x01a\x1a\x00"),  # prev_kv, empty
    # A Txn whose success op is a RangeRequest with a packed limit (field 3).
    ("/etcdserverpb.KV/Txn", b"\x12\x07\x0a\x05\x0a\x01a\x1a\x00"),
    ("/etcdserverpb.KV/Compact", b"\x0a\x01\x01"),  # revision
    ("/etcdserverpb.Lease/LeaseGrant", b"\x0a\x01\x3c"),  # TTL
    ("/etcdserverpb.Lease/LeaseTimeToLive", b"\x0a\x01\x07"),  # ID
]


@pytest.mark.parametrize(
    ("path", "payload"), PACKED_SINGULAR, ids=[path.split("/")[-1] for path, _ in PACKED_SINGULAR]
)
def test_packed_singular_varint_is_refused(pair, path, payload):
    pair.raw_same(path, payload)


def test_packed_singular_varint_in_a_watch_stream(pair):
    path = "/etcdserverpb.Watch/Watch"
    # A create request whose start_revision (field 3) is a packed body.
    payload = b"\x0a\x06\x0a\x01k\x1a\x01\x01"
    reference = pair.reference.raw_stream(path, [payload])
    subject = pair.subject.raw_stream(path, [payload])
    assert render(subject[-1]) == render(reference[-1])


def test_unknown_fields_are_ignored(pair):
    # A RangeRequest with key "a" and an unknown field 99 (varint 1).
    pair.kv("Put", key=b"a", value=b"1")
    pair.raw_same("/etcdserverpb.KV/Range", b"\x0a\x01a\x98\x06\x01")


@pytest.mark.parametrize("size", [int(1.5 * MIB) + 1024, int(1.9 * MIB), 3 * MIB])
def test_oversized_requests(pair, size):
    pair.kv("Put", key=b"big", value=b"x" * size)
    ops = [
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t%d" % i, value=b"y" * (size // 4)))
        for i in range(4)
    ]
    pair.kv("Txn", success=ops)
    pair.kv("Range", key=b"\0", range_end=b"\0", count_only=True)
    pair.kv("Put", key=b"small", value=b"x" * (MIB))  # under the limit: accepted


@pytest.mark.parametrize(
    "path",
    [
        "/etcdserverpb.KV/Nope",
        "/etcdserverpb.Nope/Range",
        "/nope.KV/Range",
        "/etcdserverpb.Lease/Nope",
    ],
)
def test_unknown_methods(pair, path):
    pair.raw_same(path, b"")


def _watch_request(create_key: bytes) -> bytes:
    create = rpc_pb2.WatchCreateRequest(key=create_key)
    return rpc_pb2.WatchRequest(create_request=create).SerializeToString()


@pytest.mark.parametrize("payload", MALFORMED[:4], ids=lambda p: p.hex())
def test_malformed_watch_stream_request(pair, payload):
    """A good create, then garbage: etcd ends the stream with an error.

    Whether etcd's "created" response goes out before the error is a race in
    etcd itself, so only the terminal status is compared.
    """
    path = "/etcdserverpb.Watch/Watch"
    reference = pair.reference.raw_stream(path, [_watch_request(b"k"), payload])
    subject = pair.subject.raw_stream(path, [_watch_request(b"k"), payload])
    for response in subject[:-1]:
        assert _watch_response(response).created, render(_watch_response(response))
    assert render(subject[-1]) == render(reference[-1])
    pair.kv("Range", key=b"\0", range_end=b"\0")


def _watch_response(item):
    if isinstance(item, bytes):
        response = rpc_pb2.WatchResponse()
        response.ParseFromString(item)
        return response
    return item
