# cython: language_level=3
"""A marshalled TxnRequest decoded straight into the store's request types
(twin: k0s_store/pure/txn_codec.py).

Txn is the apiserver's write (every create, update and delete is one), so it
is decoded here, with no protobuf object. Only the encodings clients send
are taken: every known field with its own wire type, at most one request in
a RequestOp, nesting at most MAX_DEPTH deep, unknown fields of the scalar
wire types (skipped). Anything else raises ValueError, whether malformed or
merely unusual (a packed scalar, a request set twice, which protobuf
merges, a group): the caller then parses it with protobuf, which gives
either the error etcd gives or the same request.

Field numbers and types: etcd's rpc.proto (TxnRequest, Compare, RequestOp,
RangeRequest, PutRequest, DeleteRangeRequest).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memset

from wire cimport *

__all__ = ["MAX_DEPTH", "decode_txn_request"]

cdef enum:
    DEPTH_LIMIT = 32
    COMPARE_RANGE_END = 64
    OPERAND_FIRST = 4  # Compare's target_union: version 4, create 5, mod 6, value 7, lease 8
    OPERAND_LAST = 8
    VALUE_OPERAND = 7
    TARGET_LEASE = 4  # the last CompareTarget

MAX_DEPTH = DEPTH_LIMIT

cdef enum Kind:
    SKIP = 0
    BYTES = 1
    SCALAR = 2  # a varint: int64, bool or enum

# Kinds by field number (index 0 unused).
cdef uint8_t[9] COMPARE_KINDS = [SKIP, SCALAR, SCALAR, BYTES, SCALAR, SCALAR, SCALAR, BYTES, SCALAR]
cdef uint8_t[14] RANGE_KINDS = [
    SKIP, BYTES, BYTES, SCALAR, SCALAR, SCALAR, SCALAR, SCALAR, SCALAR, SCALAR, SCALAR, SCALAR,
    SCALAR, SCALAR
]
cdef uint8_t[7] PUT_KINDS = [SKIP, BYTES, BYTES, SCALAR, SCALAR, SCALAR, SCALAR]
cdef uint8_t[4] DELETE_RANGE_KINDS = [SKIP, BYTES, BYTES, SCALAR]


cdef int read_field(const uint8_t** pp, const uint8_t* end, uint8_t kind, int wire,
                    uint64_t* value, Span* span) except -1:
    """One field's value into value/span (SKIP: passed over); a wire type
    other than the field's own raises ValueError."""
    if kind == BYTES:
        if wire != LEN:
            raise ValueError(f"wire type {wire} for a bytes field")
        return read_len(pp, end, span)
    if kind == SCALAR:
        if wire != VARINT:
            raise ValueError(f"wire type {wire} for a varint field")
        return read_varint(pp, end, value)
    if skip_value(pp, end, wire):
        return 0
    raise ValueError(f"wire type {wire} is left to protobuf")


cdef int read_fields(Span body, const uint8_t* kinds, int nfields, uint64_t* ints,
                     Span* spans) except -1:
    """Fields 1..nfields of a message of scalars into ints/spans (absent: zero)."""
    cdef const uint8_t* p = body.data
    cdef const uint8_t* end = p + body.size
    cdef uint64_t field, ignored
    cdef Span skipped
    cdef int wire
    memset(ints, 0, (nfields + 1) * sizeof(uint64_t))
    memset(spans, 0, (nfields + 1) * sizeof(Span))
    while p < end:
        read_tag(&p, end, &field, &wire)
        if field <= <uint64_t>nfields:
            read_field(&p, end, kinds[field], wire, &ints[field], &spans[field])
        else:
            read_field(&p, end, SKIP, wire, &ignored, &skipped)
    return 0


cdef inline bytes span_bytes(Span s):
    return PyBytes_FromStringAndSize(<const char*>s.data, s.size)


cdef object compare(Span body, object make):
    cdef uint64_t ints[9]
    cdef Span spans[9]
    cdef Span range_end, skipped
    cdef const uint8_t* p = body.data
    cdef const uint8_t* end = p + body.size
    cdef uint64_t field, ignored
    cdef int wire
    cdef int chosen = 0  # the operand field set last (protobuf's oneof: the others are cleared)
    memset(ints, 0, sizeof(ints))
    memset(spans, 0, sizeof(spans))
    memset(&range_end, 0, sizeof(Span))
    while p < end:
        read_tag(&p, end, &field, &wire)
        if field == COMPARE_RANGE_END:
            read_field(&p, end, BYTES, wire, &ignored, &range_end)
        elif field <= OPERAND_LAST:
            read_field(&p, end, COMPARE_KINDS[field], wire, &ints[field], &spans[field])
            if field >= OPERAND_FIRST:
                chosen = <int>field
        else:
            read_field(&p, end, SKIP, wire, &ignored, &skipped)
    cdef int32_t target = <int32_t>ints[2]
    # The operand is the oneof field matching the target (another one set reads as zero).
    cdef int wanted = target + OPERAND_FIRST if 0 <= target <= TARGET_LEASE else 0
    if wanted == VALUE_OPERAND:
        operand = span_bytes(spans[VALUE_OPERAND]) if chosen == VALUE_OPERAND else b""
    elif wanted and chosen == wanted:
        operand = <int64_t>ints[wanted]
    else:
        operand = 0
    return make(<int32_t>ints[1], target, span_bytes(spans[3]), operand, span_bytes(range_end))


cdef object range_request(Span body, object make):
    cdef uint64_t ints[14]
    cdef Span spans[14]
    read_fields(body, RANGE_KINDS, 13, ints, spans)
    return make(
        span_bytes(spans[1]), span_bytes(spans[2]), <int64_t>ints[3], <int64_t>ints[4],
        <int32_t>ints[5], <int32_t>ints[6], ints[7] != 0, ints[8] != 0, ints[9] != 0,
        <int64_t>ints[10], <int64_t>ints[11], <int64_t>ints[12], <int64_t>ints[13],
    )


cdef object put_request(Span body, object make):
    cdef uint64_t ints[7]
    cdef Span spans[7]
    read_fields(body, PUT_KINDS, 6, ints, spans)
    return make(
        span_bytes(spans[1]), span_bytes(spans[2]), <int64_t>ints[3], ints[4] != 0,
        ints[5] != 0, ints[6] != 0,
    )


cdef object delete_range_request(Span body, object make):
    cdef uint64_t ints[4]
    cdef Span spans[4]
    read_fields(body, DELETE_RANGE_KINDS, 3, ints, spans)
    return make(span_bytes(spans[1]), span_bytes(spans[2]), ints[3] != 0)


cdef object request_op(Span body, tuple types, int depth):
    """A RequestOp's request (None if none is set)."""
    cdef const uint8_t* p = body.data
    cdef const uint8_t* end = p + body.size
    cdef uint64_t field, ignored
    cdef int wire
    cdef int chosen = 0
    cdef Span request, skipped
    while p < end:
        read_tag(&p, end, &field, &wire)
        if 1 <= field <= 4:
            if chosen:
                raise ValueError("a RequestOp with two requests is left to protobuf")
            read_field(&p, end, BYTES, wire, &ignored, &request)
            chosen = <int>field
        else:
            read_field(&p, end, SKIP, wire, &ignored, &skipped)
    if chosen == 1:
        return range_request(request, types[2])
    if chosen == 2:
        return put_request(request, types[3])
    if chosen == 3:
        return delete_range_request(request, types[4])
    if chosen == 4:
        return txn_request(request, types, depth + 1)
    return None


cdef object txn_request(Span body, tuple types, int depth):
    if depth > DEPTH_LIMIT:
        raise ValueError("a txn nested this deep is left to protobuf")
    cdef const uint8_t* p = body.data
    cdef const uint8_t* end = p + body.size
    cdef uint64_t field, ignored
    cdef int wire
    cdef Span part, skipped
    cdef list compares = [], success = [], failure = []
    while p < end:
        read_tag(&p, end, &field, &wire)
        if 1 <= field <= 3:
            read_field(&p, end, BYTES, wire, &ignored, &part)
            if field == 1:
                compares.append(compare(part, types[1]))
            elif field == 2:
                success.append(request_op(part, types, depth))
            else:
                failure.append(request_op(part, types, depth))
        else:
            read_field(&p, end, SKIP, wire, &ignored, &skipped)
    return types[0](tuple(compares), tuple(success), tuple(failure))


def decode_txn_request(b, tuple types):
    """A marshalled TxnRequest as the store's types.

    Args:
        b: the message (any buffer).
        types: the constructors (TxnRequest, Compare, RangeRequest, PutRequest,
            DeleteRangeRequest), called with their fields in proto order
            (Compare: result, target, key, operand, range_end); a RequestOp
            with no request set is None.

    Raises:
        ValueError: malformed, or an encoding left to protobuf (see above).
    """
    cdef Py_buffer view
    cdef Span body
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        body.data = <const uint8_t*>view.buf
        body.size = view.len
        return txn_request(body, types, 0)
    finally:
        PyBuffer_Release(&view)
