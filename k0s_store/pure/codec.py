"""Wire codec of etcd's hot messages: the pure-Python twin of src_ext/codec.pyx.

Hot paths never build a protobuf object per key: stored values are marshalled
`mvccpb.KeyValue` bytes and responses are assembled by concatenating them
with tags and lengths. Encoders produce exactly what etcd (gogoproto, proto3)
produces: fields in field-number order, zero/empty/false scalars omitted,
negative int64 as 10-byte two's-complement varints, embedded messages as
length-delimited fields (always emitted when set, even when empty).

Decoders accept what etcd's gogoproto decoders accept: fields in any order,
repeated occurrences (last wins), unknown fields of every wire type skipped
(groups included). Malformed input raises ValueError; a known field with a
wire type it cannot have is malformed too (etcd rejects it), a packed body
for a singular varint field included.

Integers outside their field's range raise OverflowError, as the compiled
module's C conversions do.
"""

import struct

__all__ = [
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

# Wire types (the low 3 bits of a field's tag).
_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = range(6)

_MASK64 = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_MAX_FIELD = (1 << 29) - 1
_MAX_VARINT_BYTES = 10

# Revision key of the LMDB `key` DB (etcd's layout):
#   main (8 bytes, big-endian) | b"_" | sub (8 bytes, big-endian) [| b"t" if tombstone]
# 17 bytes for a live revision, 18 for a tombstone.
_REV = struct.Struct(">qcq")
_REV_KEY_LEN = _REV.size  # 17
_REV_SEP, _REV_TOMBSTONE = b"_", b"t"

# Field kinds of the decoded request messages.
_BYTES, _INT64, _BOOL, _ENUM = range(4)

# Schemas: field number -> kind; the decoded tuple lists fields 1..n in order.
_KV_FIELDS = (None, _BYTES, _INT64, _INT64, _INT64, _BYTES, _INT64)
_RANGE_FIELDS = (
    None,
    _BYTES,  # key
    _BYTES,  # range_end
    _INT64,  # limit
    _INT64,  # revision
    _ENUM,  # sort_order
    _ENUM,  # sort_target
    _BOOL,  # serializable
    _BOOL,  # keys_only
    _BOOL,  # count_only
    _INT64,  # min_mod_revision
    _INT64,  # max_mod_revision
    _INT64,  # min_create_revision
    _INT64,  # max_create_revision
)
_PUT_FIELDS = (None, _BYTES, _BYTES, _INT64, _BOOL, _BOOL, _BOOL)
_DELETE_RANGE_FIELDS = (None, _BYTES, _BYTES, _BOOL)
_DEFAULTS = {_BYTES: b"", _INT64: 0, _BOOL: False, _ENUM: 0}

# One-byte tags (field number << 3 | wire type) of the encoded fields.
_TAG_HEADER = b"\x0a"  # field 1, LEN: every response's header
_KV_KEY, _KV_CREATE, _KV_MOD, _KV_VERSION, _KV_VALUE, _KV_LEASE = (
    b"\x0a", b"\x10", b"\x18", b"\x20", b"\x2a", b"\x30"
)  # fmt: skip
_KV_VALUE_FIELD = 5
_RESPONSE_OP_FIELDS = (1, 2, 3, 4)  # range, put, delete_range, txn


def _varint(n: int) -> bytes:
    """Encode 0 <= n < 2**64 as a base-128 varint."""
    if n < 0x80:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]


def _int64(n: int) -> int:
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise OverflowError(f"{n} does not fit an int64")
    return n & _MASK64


def _uint64(n: int) -> int:
    if not 0 <= n <= _MASK64:
        raise OverflowError(f"{n} does not fit a uint64")
    return n


def _as_bytes(data) -> bytes:
    return data if type(data) is bytes else bytes(memoryview(data))


def _put_len(out: bytearray, tag: bytes, body) -> None:
    """Append a length-delimited field (emitted even when empty)."""
    body = _as_bytes(body)
    out += tag
    out += _varint(len(body))
    out += body


def _put_bytes(out: bytearray, tag: bytes, data) -> None:
    """Append a proto3 bytes/string field, omitted when empty."""
    if len(data):
        _put_len(out, tag, data)


def _put_varint(out: bytearray, tag: bytes, n: int) -> None:
    """Append a varint field holding an already range-checked value, omitted when 0."""
    if n:
        out += tag
        out += _varint(n)


def rev_key(main: int, sub: int, tombstone: bool = False) -> bytes:
    """The `key` DB key of revision (main, sub): 17 bytes, 18 with the tombstone mark."""
    _int64(main), _int64(sub)  # range checks: OverflowError like the compiled twin
    key = _REV.pack(main, _REV_SEP, sub)
    return key + _REV_TOMBSTONE if tombstone else key


def parse_rev_key(b) -> tuple[int, int, bool]:
    """Split a `key` DB key into (main, sub, tombstone); ValueError if it is not one."""
    b = _as_bytes(b)
    n = len(b)
    if n not in (_REV_KEY_LEN, _REV_KEY_LEN + 1):
        raise ValueError(f"revision key of {n} bytes (want 17 or 18)")
    main, sep, sub = _REV.unpack_from(b)
    if sep != _REV_SEP or (n > _REV_KEY_LEN and b[_REV_KEY_LEN:] != _REV_TOMBSTONE):
        raise ValueError(f"not a revision key: {b!r}")
    return main, sub, n > _REV_KEY_LEN


def _read_varint(b: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a varint at b[pos:end]; returns (value mod 2**64, next position)."""
    result = 0
    for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
        if pos >= end:
            raise ValueError("truncated varint")
        byte = b[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
    raise ValueError("varint longer than 10 bytes")


def _read_tag(b: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a field tag; returns (field number, wire type, next position)."""
    key, pos = _read_varint(b, pos, end)
    field = key >> 3
    if not 0 < field <= _MAX_FIELD:
        raise ValueError(f"invalid field number {field}")
    return field, key & 7, pos


def _skip(b: bytes, pos: int, end: int, wire: int) -> int:
    """Skip the value of a field of the given wire type; returns the next position."""
    if wire == _VARINT:
        return _read_varint(b, pos, end)[1]
    if wire == _LEN:
        n, pos = _read_varint(b, pos, end)
        if n > end - pos:
            raise ValueError("length past the end")
        return pos + n
    if wire in (_FIXED64, _FIXED32):
        pos += 8 if wire == _FIXED64 else 4
        if pos > end:
            raise ValueError("truncated fixed-width field")
        return pos
    if wire == _START_GROUP:
        # Tags inside a group are not checked (no field number 0 refused), as
        # gogoproto's skip does: etcd accepts what it skips.
        depth = 1
        while depth:
            if pos >= end:
                raise ValueError("unterminated group")
            key, pos = _read_varint(b, pos, end)
            inner = key & 7
            if inner == _START_GROUP:
                depth += 1
            elif inner == _END_GROUP:
                depth -= 1
            else:
                pos = _skip(b, pos, end, inner)
        return pos
    if wire == _END_GROUP:
        raise ValueError("end group without start group")
    raise ValueError(f"bad wire type {wire}")


def _signed(n: int, kind: int):
    """Interpret a varint (mod 2**64) as the field's type."""
    if kind == _INT64:
        return n - (1 << 64) if n >> 63 else n
    if kind == _BOOL:
        return n != 0
    n &= 0xFFFFFFFF  # an enum is an int32: Go keeps the low 32 bits
    return n - (1 << 32) if n >> 31 else n


def _decode(b, fields: tuple) -> tuple:
    """Decode a message whose fields 1..n have the given kinds into a tuple."""
    b = _as_bytes(b)
    values = [_DEFAULTS[kind] for kind in fields[1:]]
    pos, end = 0, len(b)
    while pos < end:
        field, wire, pos = _read_tag(b, pos, end)
        kind = fields[field] if field < len(fields) else None
        if kind is None:
            pos = _skip(b, pos, end, wire)
        elif kind == _BYTES:
            if wire != _LEN:
                raise ValueError(f"wire type {wire} for bytes field {field}")
            n, pos = _read_varint(b, pos, end)
            if n > end - pos:
                raise ValueError("length past the end")
            values[field - 1] = b[pos : pos + n]
            pos += n
        elif wire == _VARINT:
            n, pos = _read_varint(b, pos, end)
            values[field - 1] = _signed(n, kind)
        else:  # a packed body too: gogoproto refuses it for a singular field
            raise ValueError(f"wire type {wire} for varint field {field}")
    return tuple(values)


def encode_kv(
    key: bytes, create_revision: int, mod_revision: int, version: int, value: bytes, lease: int
) -> bytes:
    """Marshal an mvccpb.KeyValue."""
    out = bytearray()
    _put_bytes(out, _KV_KEY, key)
    _put_varint(out, _KV_CREATE, _int64(create_revision))
    _put_varint(out, _KV_MOD, _int64(mod_revision))
    _put_varint(out, _KV_VERSION, _int64(version))
    _put_bytes(out, _KV_VALUE, value)
    _put_varint(out, _KV_LEASE, _int64(lease))
    return bytes(out)


def decode_kv(b) -> tuple[bytes, int, int, int, bytes, int]:
    """Unmarshal an mvccpb.KeyValue: (key, create_revision, mod_revision, version, value, lease)."""
    return _decode(b, _KV_FIELDS)


def kv_without_value(b) -> bytes:
    """The same marshalled KeyValue with every value field (5) dropped (keys_only ranges)."""
    b = _as_bytes(b)
    kept = []
    pos, end, start = 0, len(b), 0
    while pos < end:
        field_start = pos
        field, wire, pos = _read_tag(b, pos, end)
        pos = _skip(b, pos, end, wire)
        if field == _KV_VALUE_FIELD:
            kept.append(b[start:field_start])
            start = pos
    if not kept:
        return b
    kept.append(b[start:])
    return b"".join(kept)


def decode_range_request(b) -> tuple:
    """Unmarshal an etcdserverpb.RangeRequest into its 13 fields in proto order."""
    return _decode(b, _RANGE_FIELDS)


def decode_put_request(b) -> tuple[bytes, bytes, int, bool, bool, bool]:
    """Unmarshal a PutRequest: (key, value, lease, prev_kv, ignore_value, ignore_lease)."""
    return _decode(b, _PUT_FIELDS)


def decode_delete_range_request(b) -> tuple[bytes, bytes, bool]:
    """Unmarshal a DeleteRangeRequest: (key, range_end, prev_kv)."""
    return _decode(b, _DELETE_RANGE_FIELDS)


def encode_header(cluster_id: int, member_id: int, revision: int, raft_term: int) -> bytes:
    """Marshal a ResponseHeader body (uint64, uint64, int64, uint64)."""
    out = bytearray()
    _put_varint(out, b"\x08", _uint64(cluster_id))
    _put_varint(out, b"\x10", _uint64(member_id))
    _put_varint(out, b"\x18", _int64(revision))
    _put_varint(out, b"\x20", _uint64(raft_term))
    return bytes(out)


def encode_range_response(header: bytes, kvs: list[bytes], more: bool, count: int) -> bytes:
    """Marshal a RangeResponse from a header body and marshalled KeyValues."""
    out = bytearray()
    _put_len(out, _TAG_HEADER, header)
    for kv in kvs:
        _put_len(out, b"\x12", kv)
    _put_varint(out, b"\x18", 1 if more else 0)
    _put_varint(out, b"\x20", _int64(count))
    return bytes(out)


def encode_put_response(header: bytes, prev_kv: bytes | None) -> bytes:
    """Marshal a PutResponse; prev_kv is emitted only when not None."""
    out = bytearray()
    _put_len(out, _TAG_HEADER, header)
    if prev_kv is not None:
        _put_len(out, b"\x12", prev_kv)
    return bytes(out)


def encode_delete_range_response(header: bytes, deleted: int, prev_kvs: list[bytes]) -> bytes:
    """Marshal a DeleteRangeResponse."""
    out = bytearray()
    _put_len(out, _TAG_HEADER, header)
    _put_varint(out, b"\x10", _int64(deleted))
    for kv in prev_kvs:
        _put_len(out, b"\x1a", kv)
    return bytes(out)


def encode_response_op(field: int, body: bytes) -> bytes:
    """Marshal a ResponseOp: field 1 range, 2 put, 3 delete_range, 4 txn response body."""
    if field not in _RESPONSE_OP_FIELDS:
        raise ValueError(f"ResponseOp has no field {field}")
    out = bytearray()
    _put_len(out, bytes((field << 3 | _LEN,)), body)
    return bytes(out)


def encode_txn_response(header: bytes, succeeded: bool, responses: list[bytes]) -> bytes:
    """Marshal a TxnResponse; responses are encoded ResponseOp bodies."""
    out = bytearray()
    _put_len(out, _TAG_HEADER, header)
    _put_varint(out, b"\x10", 1 if succeeded else 0)
    for op in responses:
        _put_len(out, b"\x1a", op)
    return bytes(out)


def encode_event(type: int, kv: bytes, prev_kv: bytes | None) -> bytes:
    """Marshal an mvccpb.Event (type is the int32 EventType; kv always emitted)."""
    if not _INT32_MIN <= type <= _INT32_MAX:
        raise OverflowError(f"{type} does not fit an int32 enum")
    out = bytearray()
    _put_varint(out, b"\x08", type & _MASK64)
    _put_len(out, b"\x12", kv)
    if prev_kv is not None:
        _put_len(out, b"\x1a", prev_kv)
    return bytes(out)


def encode_watch_response(
    header: bytes,
    watch_id: int,
    created: bool,
    canceled: bool,
    compact_revision: int,
    cancel_reason: str,
    fragment: bool,
    events: list[bytes],
) -> bytes:
    """Marshal a WatchResponse; events are encoded mvccpb.Event bodies."""
    out = bytearray()
    _put_len(out, _TAG_HEADER, header)
    _put_varint(out, b"\x10", _int64(watch_id))
    _put_varint(out, b"\x18", 1 if created else 0)
    _put_varint(out, b"\x20", 1 if canceled else 0)
    _put_varint(out, b"\x28", _int64(compact_revision))
    _put_bytes(out, b"\x32", cancel_reason.encode())
    _put_varint(out, b"\x38", 1 if fragment else 0)
    for event in events:
        _put_len(out, b"\x5a", event)  # field 11
    return bytes(out)


def encoded_len_field(body_len: int) -> int:
    """Bytes a length-delimited field with a body of body_len takes, its 1-byte tag included."""
    if body_len < 0:
        raise ValueError(f"negative length {body_len}")
    return 1 + len(_varint(_int64(body_len))) + body_len
