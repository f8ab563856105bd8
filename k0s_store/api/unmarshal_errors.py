"""The exact text etcd gives for a request body it cannot unmarshal.

etcd decodes requests with gogoproto's generated `Unmarshal`, and grpc-go
reports its error as codes.Internal "grpc: error unmarshalling request: "
plus that error's text. This module walks a body the way those generated
functions do (generically, from the message descriptor) and returns the
same text. It runs only after our own decoder has refused a body, or
protobuf has kept part of one aside as unknown fields (`gogo_refusal`), so
its speed does not matter.

gogoproto's texts (Go field names are the proto names in CamelCase):
- a truncated varint, length or value: "unexpected EOF"
- a varint longer than 10 bytes: "proto: integer overflow"
- a negative length: "proto: negative length found during unmarshaling"
- tag with wire type 4: "proto: <Message>: wiretype end group for non-group"
- field number <= 0: "proto: <Message>: illegal tag <n> (wire type <tag>)"
- a known field with the wrong wire type: "proto: wrong wireType = <w> for field <Name>"
- an unknown field with wire type 6 or 7: "proto: illegal wireType <w>"
"""

from collections.abc import Callable

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from k0s_store import errors

EOF_TEXT = "unexpected EOF"
OVERFLOW_TEXT = "proto: integer overflow"
NEGATIVE_LENGTH_TEXT = "proto: negative length found during unmarshaling"

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_FIXED_TYPES = {
    FieldDescriptor.TYPE_DOUBLE: _FIXED64,
    FieldDescriptor.TYPE_FIXED64: _FIXED64,
    FieldDescriptor.TYPE_SFIXED64: _FIXED64,
    FieldDescriptor.TYPE_FLOAT: _FIXED32,
    FieldDescriptor.TYPE_FIXED32: _FIXED32,
    FieldDescriptor.TYPE_SFIXED32: _FIXED32,
}
_LEN_TYPES = {FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE}


class _Failure(Exception):
    pass


def malformed(descriptor: Descriptor, data: bytes, exc: Exception) -> errors.EtcdError:
    """The error etcd gives for `data`, which our decoder refused with `exc`."""
    return _malformed_request(gogo_unmarshal_error(descriptor, data) or str(exc))


def _malformed_request(detail: str) -> errors.EtcdError:
    return errors.MalformedRequestError(f"{errors.MalformedRequestError.message}: {detail}")


def parse(
    message_type: type[Message],
    data: bytes,
    refused: Callable[[str], errors.EtcdError] = _malformed_request,
) -> Message:
    """Parse a request with the generated class; when etcd would refuse it,
    raise `refused(gogoproto's error text)` (default: a unary request's error)."""
    try:
        message = message_type.FromString(data)
    except DecodeError as exc:
        detail = gogo_unmarshal_error(message_type.DESCRIPTOR, data) or str(exc)
        raise refused(detail) from exc
    refusal = gogo_refusal(message, data)
    if refusal is not None:
        raise refused(refusal)
    return message


def gogo_refusal(message: Message, data: bytes) -> str | None:
    """gogoproto's error text for `data`, which protobuf parsed into `message`,
    if etcd would refuse it, else None. protobuf keeps a known field that
    came with another wire type (a packed body for a singular varint, say)
    as an unknown field, where gogoproto refuses the whole message."""
    if not _has_unknown_fields(message):
        return None
    return gogo_unmarshal_error(message.DESCRIPTOR, data)


def _has_unknown_fields(message: Message) -> bool:
    if len(UnknownFieldSet(message)):
        return True
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            values = value if field.is_repeated else (value,)
            if any(_has_unknown_fields(v) for v in values):
                return True
    return False


def gogo_unmarshal_error(descriptor: Descriptor, data: bytes) -> str | None:
    """gogoproto's error text for `data` as `descriptor`'s message, None if it parses."""
    try:
        _walk(descriptor, data, 0, len(data))
    except _Failure as failure:
        return str(failure)
    return None


def _int64(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >> 63 else n


def _int32(n: int) -> int:
    n &= (1 << 32) - 1
    return n - (1 << 32) if n >> 31 else n


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift >= 64:
            raise _Failure(OVERFLOW_TEXT)
        if pos >= end:
            raise _Failure(EOF_TEXT)
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & ((1 << 64) - 1), pos
        shift += 7


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length prefix; returns (end of the body, position of the body)."""
    raw, pos = _varint(data, pos, end)
    length = _int64(raw)
    if length < 0:
        raise _Failure(NEGATIVE_LENGTH_TEXT)
    post = _int64(pos + length)
    if post < 0:
        raise _Failure(NEGATIVE_LENGTH_TEXT)
    if post > end:
        raise _Failure(EOF_TEXT)
    return post, pos


def _go_name(field: FieldDescriptor) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.name.split("_"))


def _walk(descriptor: Descriptor, data: bytes, pos: int, end: int) -> None:
    while pos < end:
        start = pos
        wire, pos = _varint(data, pos, end)
        number, wire_type = _int32(wire >> 3), wire & 7
        if wire_type == _END_GROUP:
            raise _Failure(f"proto: {descriptor.name}: wiretype end group for non-group")
        if number <= 0:
            raise _Failure(f"proto: {descriptor.name}: illegal tag {number} (wire type {wire})")
        field = descriptor.fields_by_number.get(number)
        if field is None:
            pos = start + _skip(data, start, end)
            if pos > end:
                raise _Failure(EOF_TEXT)
            continue
        pos = _field(field, wire_type, data, pos, end)
    if pos > end:
        raise _Failure(EOF_TEXT)


def _field(field: FieldDescriptor, wire_type: int, data: bytes, pos: int, end: int) -> int:
    expected = _FIXED_TYPES.get(field.type, _LEN if field.type in _LEN_TYPES else _VARINT)
    packable = expected == _VARINT and field.is_repeated
    if packable and wire_type == _LEN:
        post, pos = _length(data, pos, end)
        while pos < post:
            _, pos = _varint(data, pos, post)
        return post
    if wire_type != expected:
        raise _Failure(f"proto: wrong wireType = {wire_type} for field {_go_name(field)}")
    if expected == _VARINT:
        return _varint(data, pos, end)[1]
    if expected != _LEN:
        size = 8 if expected == _FIXED64 else 4
        if pos + size > end:
            raise _Failure(EOF_TEXT)
        return pos + size
    post, pos = _length(data, pos, end)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk(field.message_type, data, pos, post)
    return post


def _skip(data: bytes, pos: int, end: int) -> int:
    """gogoproto's skip: the size of the field at data[pos:] (its end is not bounds-checked)."""
    origin = pos
    while True:
        wire, pos = _varint(data, pos, end)
        wire_type = wire & 7
        if wire_type == _VARINT:
            return _varint(data, pos, end)[1] - origin
        if wire_type == _FIXED64:
            return pos + 8 - origin
        if wire_type == _LEN:
            raw, pos = _varint(data, pos, end)
            length = _int64(raw)
            if length < 0:
                raise _Failure(NEGATIVE_LENGTH_TEXT)
            return pos + length - origin
        if wire_type == _START_GROUP:
            # Skip nested fields up to the matching end group.
            while True:
                if pos >= end:
                    raise _Failure(EOF_TEXT)
                inner_wire, _ = _varint(data, pos, end)
                if inner_wire & 7 == _END_GROUP:
                    pos = _varint(data, pos, end)[1]
                    return pos - origin
                pos += _skip(data, pos, end)
        if wire_type == _END_GROUP:
            return pos - origin
        if wire_type == _FIXED32:
            return pos + 4 - origin
        raise _Failure(f"proto: illegal wireType {wire_type}")
