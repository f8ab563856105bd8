"""A marshalled TxnRequest decoded straight into the store's request types:
the pure-Python twin of src_ext/txn_codec.pyx (the rules are described there).
"""

from k0s_store.pure.codec import (
    _BOOL,
    _BYTES,
    _DEFAULTS,
    _ENUM,
    _INT64,
    _LEN,
    _VARINT,
    _as_bytes,
    _read_tag,
    _read_varint,
    _signed,
)

__all__ = ["MAX_DEPTH", "decode_txn_request"]

MAX_DEPTH = 32
_FIXED64, _FIXED32 = 1, 5

_SKIP = -1  # a field passed over
_COMPARE_RANGE_END = 64
_OPERAND_FIRST, _OPERAND_LAST, _VALUE_OPERAND = 4, 8, 7
_COMPARE_FIELDS = (_SKIP, _ENUM, _ENUM, _BYTES, _INT64, _INT64, _INT64, _BYTES, _INT64)
_RANGE_FIELDS = (
    _SKIP, _BYTES, _BYTES, _INT64, _INT64, _ENUM, _ENUM, _BOOL, _BOOL, _BOOL,
    _INT64, _INT64, _INT64, _INT64,
)  # fmt: skip
_PUT_FIELDS = (_SKIP, _BYTES, _BYTES, _INT64, _BOOL, _BOOL, _BOOL)
_DELETE_RANGE_FIELDS = (_SKIP, _BYTES, _BYTES, _BOOL)


def _read_field(b: bytes, pos: int, end: int, kind: int, wire: int) -> tuple[object, int]:
    """One field's value (None when skipped) and the next position; a wire
    type other than the field's own raises ValueError."""
    if kind == _BYTES:
        if wire != _LEN:
            raise ValueError(f"wire type {wire} for a bytes field")
        n, pos = _read_varint(b, pos, end)
        if n > end - pos:
            raise ValueError("length past the end")
        return b[pos : pos + n], pos + n
    if kind != _SKIP:
        if wire != _VARINT:
            raise ValueError(f"wire type {wire} for a varint field")
        n, pos = _read_varint(b, pos, end)
        return _signed(n, kind), pos
    if wire == _VARINT:
        return None, _read_varint(b, pos, end)[1]
    if wire == _LEN:
        return None, _read_field(b, pos, end, _BYTES, wire)[1]
    if wire in (_FIXED64, _FIXED32):
        pos += 8 if wire == _FIXED64 else 4
        if pos > end:
            raise ValueError("truncated fixed-width field")
        return None, pos
    raise ValueError(f"wire type {wire} is left to protobuf")


def _read_fields(b: bytes, fields: tuple) -> list:
    """The fields 1.. of a message of scalars, by their kinds (absent: default)."""
    values = [_DEFAULTS.get(kind) for kind in fields[1:]]
    pos, end = 0, len(b)
    while pos < end:
        field, wire, pos = _read_tag(b, pos, end)
        kind = fields[field] if field < len(fields) else _SKIP
        value, pos = _read_field(b, pos, end, kind, wire)
        if kind != _SKIP:
            values[field - 1] = value
    return values


def _compare(b: bytes, make):
    values = [_DEFAULTS.get(kind) for kind in _COMPARE_FIELDS[1:]]
    range_end = b""
    chosen = 0  # the operand field set last (protobuf's oneof: the others are cleared)
    pos, end = 0, len(b)
    while pos < end:
        field, wire, pos = _read_tag(b, pos, end)
        if field == _COMPARE_RANGE_END:
            range_end, pos = _read_field(b, pos, end, _BYTES, wire)
        elif field <= _OPERAND_LAST:
            values[field - 1], pos = _read_field(b, pos, end, _COMPARE_FIELDS[field], wire)
            if field >= _OPERAND_FIRST:
                chosen = field
        else:
            pos = _read_field(b, pos, end, _SKIP, wire)[1]
    result, target, key = values[0], values[1], values[2]
    # The operand is the oneof field matching the target (another one set reads as zero).
    wanted = target + _OPERAND_FIRST if 0 <= target <= _OPERAND_LAST - _OPERAND_FIRST else 0
    if wanted == _VALUE_OPERAND:
        operand = values[wanted - 1] if chosen == wanted else b""
    else:
        operand = values[wanted - 1] if wanted and chosen == wanted else 0
    return make(result, target, key, operand, range_end)


def _request_op(b: bytes, types: tuple, depth: int):
    """A RequestOp's request (None if none is set)."""
    chosen, request = 0, b""
    pos, end = 0, len(b)
    while pos < end:
        field, wire, pos = _read_tag(b, pos, end)
        if 1 <= field <= 4:
            if chosen:
                raise ValueError("a RequestOp with two requests is left to protobuf")
            request, pos = _read_field(b, pos, end, _BYTES, wire)
            chosen = field
        else:
            pos = _read_field(b, pos, end, _SKIP, wire)[1]
    if chosen == 1:
        return types[2](*_read_fields(request, _RANGE_FIELDS))
    if chosen == 2:
        return types[3](*_read_fields(request, _PUT_FIELDS))
    if chosen == 3:
        return types[4](*_read_fields(request, _DELETE_RANGE_FIELDS))
    if chosen == 4:
        return _txn_request(request, types, depth + 1)
    return None


def _txn_request(b: bytes, types: tuple, depth: int):
    if depth > MAX_DEPTH:
        raise ValueError("a txn nested this deep is left to protobuf")
    parts: tuple[list, list, list] = ([], [], [])
    pos, end = 0, len(b)
    while pos < end:
        field, wire, pos = _read_tag(b, pos, end)
        if 1 <= field <= 3:
            part, pos = _read_field(b, pos, end, _BYTES, wire)
            if field == 1:
                parts[0].append(_compare(part, types[1]))
            else:
                parts[field - 1].append(_request_op(part, types, depth))
        else:
            pos = _read_field(b, pos, end, _SKIP, wire)[1]
    return types[0](tuple(parts[0]), tuple(parts[1]), tuple(parts[2]))


def decode_txn_request(b, types: tuple):
    """A marshalled TxnRequest as the store's types (see the compiled module).

    Args:
        b: the message (any buffer).
        types: the constructors (TxnRequest, Compare, RangeRequest, PutRequest,
            DeleteRangeRequest), called with their fields in proto order
            (Compare: result, target, key, operand, range_end); a RequestOp
            with no request set is None.

    Raises:
        ValueError: malformed, or an encoding left to protobuf.
    """
    return _txn_request(_as_bytes(b), types, 0)
