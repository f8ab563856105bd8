# cython: language_level=3
"""Wire codec of etcd's hot messages, compiled (twin: k0s_store/pure/codec.py).

Hot paths never build a protobuf object per key: stored values are marshalled
`mvccpb.KeyValue` bytes and responses are assembled by concatenating them
with tags and lengths. Encoders produce exactly what etcd (gogoproto, proto3)
produces: fields in field-number order, zero/empty/false scalars omitted,
negative int64 as 10-byte two's-complement varints, embedded messages as
length-delimited fields (always emitted when set, even when empty).

Every encoder sizes its output first, then writes it once into a fresh bytes
object with C-level varint writers: no intermediate Python objects.

Decoders accept what etcd's gogoproto decoders accept: fields in any order,
repeated occurrences (last wins), unknown fields of every wire type skipped
(groups included). Malformed input raises ValueError; a known field with a
wire type it cannot have is malformed too (etcd rejects it), a packed body
for a singular varint field included.
Integers outside their field's range raise OverflowError.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from wire cimport *

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

# Field kinds of the decoded messages (index = field number; 0 = skip).
cdef enum Kind:
    SKIP = 0
    BYTES = 1
    INT64 = 2
    BOOL = 3
    ENUM = 4

cdef uint8_t[7] KV_KINDS = [SKIP, BYTES, INT64, INT64, INT64, BYTES, INT64]
# key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only,
# count_only, min/max_mod_revision, min/max_create_revision
cdef uint8_t[14] RANGE_KINDS = [
    SKIP, BYTES, BYTES, INT64, INT64, ENUM, ENUM, BOOL, BOOL, BOOL, INT64, INT64, INT64, INT64
]
# key, value, lease, prev_kv, ignore_value, ignore_lease
cdef uint8_t[7] PUT_KINDS = [SKIP, BYTES, BYTES, INT64, BOOL, BOOL, BOOL]
# key, range_end, prev_kv
cdef uint8_t[4] DELETE_RANGE_KINDS = [SKIP, BYTES, BYTES, BOOL]

# Revision key of the LMDB `key` DB (etcd's layout):
#   main (8 bytes, big-endian) | b"_" | sub (8 bytes, big-endian) [| b"t" if tombstone]
# 17 bytes for a live revision, 18 for a tombstone.
cdef enum:
    REV_KEY_LEN = 17
    REV_SEP = 0x5F  # "_"
    REV_TOMBSTONE = 0x74  # "t"

cdef enum:
    KV_VALUE_FIELD = 5
    # One-byte tags (field number << 3 | wire type).
    TAG_HEADER = 0x0A  # field 1, LEN: every response's header


# ---- writing -------------------------------------------------------------

cdef inline uint8_t* put_len_field(uint8_t* p, uint8_t tag, bytes body) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    p[0] = tag
    p = put_varint(p + 1, <uint64_t>n)
    memcpy(p, PyBytes_AS_STRING(body), n)
    return p + n


cdef inline bytes as_bytes(object data):
    """bytes as they are; any other buffer (bytearray, memoryview) copied into bytes."""
    if PyBytes_Check(data):
        return <bytes>data
    return bytes(memoryview(data))


cdef list as_bytes_list(object items):
    """The items as a list of bytes (the same list when it already is one)."""
    cdef list out = items if type(items) is list else list(items)
    cdef Py_ssize_t i
    for i in range(len(out)):
        if not PyBytes_Check(out[i]):
            return [as_bytes(item) for item in out]
    return out


cdef Py_ssize_t len_fields_size(list bodies) noexcept:
    cdef Py_ssize_t total = 0
    cdef object body
    for body in bodies:
        total += len_field_size(PyBytes_GET_SIZE(body))
    return total


cdef uint8_t* put_len_fields(uint8_t* p, uint8_t tag, list bodies) noexcept:
    cdef object body
    for body in bodies:
        p = put_len_field(p, tag, <bytes>body)
    return p


cdef inline bytes new_bytes(Py_ssize_t size):
    return PyBytes_FromStringAndSize(NULL, size)


cdef inline uint8_t* bytes_ptr(bytes b) noexcept:
    return <uint8_t*>PyBytes_AS_STRING(b)


# ---- reading -------------------------------------------------------------

cdef int skip_field(const uint8_t** pp, const uint8_t* end, int wire) except -1:
    """Advance pp[0] past the value of a field of the given wire type."""
    cdef uint64_t key
    cdef Py_ssize_t depth
    cdef int inner
    if skip_value(pp, end, wire):
        return 0
    if wire == START_GROUP:
        # Tags inside a group are not checked (no field number 0 refused), as
        # gogoproto's skip does: etcd accepts what it skips.
        depth = 1
        while depth:
            if pp[0] >= end:
                raise ValueError("unterminated group")
            read_varint(pp, end, &key)
            inner = key & 7
            if inner == START_GROUP:
                depth += 1
            elif inner == END_GROUP:
                depth -= 1
            else:
                skip_field(pp, end, inner)
        return 0
    if wire == END_GROUP:
        raise ValueError("end group without start group")
    raise ValueError(f"bad wire type {wire}")


cdef int decode_fields(
    const uint8_t* p, const uint8_t* end, const uint8_t* kinds, int nfields,
    uint64_t* ints, Span* spans,
) except -1:
    """Decode fields 1..nfields of the given kinds into ints/spans (zeroed by the caller)."""
    cdef uint64_t field
    cdef int wire
    cdef uint8_t kind
    while p < end:
        read_tag(&p, end, &field, &wire)
        kind = kinds[field] if field <= <uint64_t>nfields else SKIP
        if kind == SKIP:
            skip_field(&p, end, wire)
        elif kind == BYTES:
            if wire != LEN:
                raise ValueError(f"wire type {wire} for bytes field {field}")
            read_len(&p, end, &spans[field])
        elif wire == VARINT:
            if p < end and p[0] < 0x80:
                ints[field] = p[0]
                p += 1
            else:
                read_varint(&p, end, &ints[field])
        else:  # a packed body too: gogoproto refuses it for a singular field
            raise ValueError(f"wire type {wire} for varint field {field}")
    return 0


cdef inline bytes span_bytes(Span s):
    return PyBytes_FromStringAndSize(<const char*>s.data, s.size)


cdef inline int64_t as_int64(uint64_t v) noexcept nogil:
    return <int64_t>v


cdef inline int32_t as_enum(uint64_t v) noexcept nogil:
    return <int32_t>v  # an enum is an int32: Go keeps the low 32 bits


cdef inline bint as_bool(uint64_t v) noexcept nogil:
    return v != 0


cdef int decode_view(Py_buffer* view, const uint8_t* kinds, int nfields, uint64_t* ints,
                     Span* spans) except -1:
    """Decode a message's fields 1..nfields into ints/spans, absent ones as proto3 defaults."""
    memset(ints, 0, (nfields + 1) * sizeof(uint64_t))
    memset(spans, 0, (nfields + 1) * sizeof(Span))
    cdef const uint8_t* p = <const uint8_t*>view.buf
    return decode_fields(p, p + view.len, kinds, nfields, ints, spans)


# ---- revision keys -------------------------------------------------------

def rev_key(int64_t main, int64_t sub, bint tombstone=False) -> bytes:
    """The `key` DB key of revision (main, sub): 17 bytes, 18 with the tombstone mark."""
    cdef bytes out = new_bytes(REV_KEY_LEN + (1 if tombstone else 0))
    cdef uint8_t* p = bytes_ptr(out)
    cdef uint64_t m = <uint64_t>main, s = <uint64_t>sub
    cdef int i
    for i in range(8):
        p[7 - i] = <uint8_t>(m >> (8 * i))
        p[16 - i] = <uint8_t>(s >> (8 * i))
    p[8] = REV_SEP
    if tombstone:
        p[REV_KEY_LEN] = REV_TOMBSTONE
    return out


def parse_rev_key(b) -> tuple:
    """Split a `key` DB key into (main, sub, tombstone); ValueError if it is not one."""
    cdef Py_buffer view
    cdef const uint8_t* p
    cdef uint64_t m = 0, s = 0
    cdef int i
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t*>view.buf
        if view.len != REV_KEY_LEN and view.len != REV_KEY_LEN + 1:
            raise ValueError(f"revision key of {view.len} bytes (want 17 or 18)")
        if p[8] != REV_SEP or (view.len > REV_KEY_LEN and p[REV_KEY_LEN] != REV_TOMBSTONE):
            raise ValueError(f"not a revision key: {bytes(b)!r}")
        for i in range(8):
            m = (m << 8) | p[i]
            s = (s << 8) | p[9 + i]
        return <int64_t>m, <int64_t>s, view.len > REV_KEY_LEN
    finally:
        PyBuffer_Release(&view)


# ---- mvccpb.KeyValue -----------------------------------------------------

def encode_kv(key, int64_t create_revision, int64_t mod_revision, int64_t version, value,
              int64_t lease) -> bytes:
    """Marshal an mvccpb.KeyValue."""
    cdef bytes k = as_bytes(key), v = as_bytes(value)
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(k), vlen = PyBytes_GET_SIZE(v)
    cdef Py_ssize_t size = (
        (len_field_size(klen) if klen else 0)
        + varint_field_size(<uint64_t>create_revision)
        + varint_field_size(<uint64_t>mod_revision)
        + varint_field_size(<uint64_t>version)
        + (len_field_size(vlen) if vlen else 0)
        + varint_field_size(<uint64_t>lease)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = bytes_ptr(out)
    if klen:
        p = put_len_field(p, 0x0A, k)
    p = put_varint_field(p, 0x10, <uint64_t>create_revision)
    p = put_varint_field(p, 0x18, <uint64_t>mod_revision)
    p = put_varint_field(p, 0x20, <uint64_t>version)
    if vlen:
        p = put_len_field(p, 0x2A, v)
    put_varint_field(p, 0x30, <uint64_t>lease)
    return out


def decode_kv(b) -> tuple:
    """Unmarshal an mvccpb.KeyValue: (key, create_revision, mod_revision, version, value, lease)."""
    cdef uint64_t ints[7]
    cdef Span spans[7]
    cdef Py_buffer view
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        decode_view(&view, KV_KINDS, 6, ints, spans)
        return (
            span_bytes(spans[1]), as_int64(ints[2]), as_int64(ints[3]), as_int64(ints[4]),
            span_bytes(spans[5]), as_int64(ints[6]),
        )
    finally:
        PyBuffer_Release(&view)


def kv_without_value(b) -> bytes:
    """The same marshalled KeyValue with every value field (5) dropped (keys_only ranges)."""
    cdef Py_buffer view
    cdef const uint8_t* start
    cdef const uint8_t* end
    cdef const uint8_t* p
    cdef const uint8_t* field_start
    cdef const uint8_t* kept_from
    cdef uint64_t field
    cdef int wire
    cdef Py_ssize_t dropped = 0
    cdef bytes out
    cdef uint8_t* w
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        start = <const uint8_t*>view.buf
        end = start + view.len
        p = start
        while p < end:  # pass 1: validate, measure what goes
            field_start = p
            read_tag(&p, end, &field, &wire)
            skip_field(&p, end, wire)
            if field == KV_VALUE_FIELD:
                dropped += p - field_start
        if dropped == 0:
            return as_bytes(b)
        out = new_bytes(view.len - dropped)
        w = bytes_ptr(out)
        p = kept_from = start
        while p < end:  # pass 2: copy the kept runs
            field_start = p
            read_tag(&p, end, &field, &wire)
            skip_field(&p, end, wire)
            if field == KV_VALUE_FIELD:
                memcpy(w, kept_from, field_start - kept_from)
                w += field_start - kept_from
                kept_from = p
        memcpy(w, kept_from, end - kept_from)
        return out
    finally:
        PyBuffer_Release(&view)


# ---- requests ------------------------------------------------------------

def decode_range_request(b) -> tuple:
    """Unmarshal an etcdserverpb.RangeRequest into its 13 fields in proto order."""
    cdef uint64_t ints[14]
    cdef Span spans[14]
    cdef Py_buffer view
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        decode_view(&view, RANGE_KINDS, 13, ints, spans)
        return (
            span_bytes(spans[1]), span_bytes(spans[2]), as_int64(ints[3]), as_int64(ints[4]),
            as_enum(ints[5]), as_enum(ints[6]), as_bool(ints[7]), as_bool(ints[8]),
            as_bool(ints[9]), as_int64(ints[10]), as_int64(ints[11]), as_int64(ints[12]),
            as_int64(ints[13]),
        )
    finally:
        PyBuffer_Release(&view)


def decode_put_request(b) -> tuple:
    """Unmarshal a PutRequest: (key, value, lease, prev_kv, ignore_value, ignore_lease)."""
    cdef uint64_t ints[7]
    cdef Span spans[7]
    cdef Py_buffer view
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        decode_view(&view, PUT_KINDS, 6, ints, spans)
        return (
            span_bytes(spans[1]), span_bytes(spans[2]), as_int64(ints[3]), as_bool(ints[4]),
            as_bool(ints[5]), as_bool(ints[6]),
        )
    finally:
        PyBuffer_Release(&view)


def decode_delete_range_request(b) -> tuple:
    """Unmarshal a DeleteRangeRequest: (key, range_end, prev_kv)."""
    cdef uint64_t ints[4]
    cdef Span spans[4]
    cdef Py_buffer view
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        decode_view(&view, DELETE_RANGE_KINDS, 3, ints, spans)
        return span_bytes(spans[1]), span_bytes(spans[2]), as_bool(ints[3])
    finally:
        PyBuffer_Release(&view)


# ---- responses -----------------------------------------------------------

def encode_header(uint64_t cluster_id, uint64_t member_id, int64_t revision,
                  uint64_t raft_term) -> bytes:
    """Marshal a ResponseHeader body (uint64, uint64, int64, uint64)."""
    cdef Py_ssize_t size = (
        varint_field_size(cluster_id) + varint_field_size(member_id)
        + varint_field_size(<uint64_t>revision) + varint_field_size(raft_term)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = bytes_ptr(out)
    p = put_varint_field(p, 0x08, cluster_id)
    p = put_varint_field(p, 0x10, member_id)
    p = put_varint_field(p, 0x18, <uint64_t>revision)
    put_varint_field(p, 0x20, raft_term)
    return out


def encode_range_response(header, kvs, bint more, int64_t count) -> bytes:
    """Marshal a RangeResponse from a header body and marshalled KeyValues."""
    cdef bytes h = as_bytes(header)
    cdef list items = as_bytes_list(kvs)
    cdef Py_ssize_t size = (
        len_field_size(PyBytes_GET_SIZE(h)) + len_fields_size(items)
        + varint_field_size(more) + varint_field_size(<uint64_t>count)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = bytes_ptr(out)
    p = put_len_field(p, TAG_HEADER, h)
    p = put_len_fields(p, 0x12, items)
    p = put_varint_field(p, 0x18, more)
    put_varint_field(p, 0x20, <uint64_t>count)
    return out


def encode_put_response(header, prev_kv) -> bytes:
    """Marshal a PutResponse; prev_kv is emitted only when not None."""
    cdef bytes h = as_bytes(header)
    cdef bytes prev = None if prev_kv is None else as_bytes(prev_kv)
    cdef Py_ssize_t size = len_field_size(PyBytes_GET_SIZE(h))
    if prev is not None:
        size += len_field_size(PyBytes_GET_SIZE(prev))
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = put_len_field(bytes_ptr(out), TAG_HEADER, h)
    if prev is not None:
        put_len_field(p, 0x12, prev)
    return out


def encode_delete_range_response(header, int64_t deleted, prev_kvs) -> bytes:
    """Marshal a DeleteRangeResponse."""
    cdef bytes h = as_bytes(header)
    cdef list items = as_bytes_list(prev_kvs)
    cdef Py_ssize_t size = (
        len_field_size(PyBytes_GET_SIZE(h)) + varint_field_size(<uint64_t>deleted)
        + len_fields_size(items)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = put_len_field(bytes_ptr(out), TAG_HEADER, h)
    p = put_varint_field(p, 0x10, <uint64_t>deleted)
    put_len_fields(p, 0x1A, items)
    return out


def encode_response_op(int field, body) -> bytes:
    """Marshal a ResponseOp: field 1 range, 2 put, 3 delete_range, 4 txn response body."""
    if field < 1 or field > 4:
        raise ValueError(f"ResponseOp has no field {field}")
    cdef bytes b = as_bytes(body)
    cdef bytes out = new_bytes(len_field_size(PyBytes_GET_SIZE(b)))
    put_len_field(bytes_ptr(out), <uint8_t>(field << 3 | LEN), b)
    return out


def encode_txn_response(header, bint succeeded, responses) -> bytes:
    """Marshal a TxnResponse; responses are encoded ResponseOp bodies."""
    cdef bytes h = as_bytes(header)
    cdef list items = as_bytes_list(responses)
    cdef Py_ssize_t size = (
        len_field_size(PyBytes_GET_SIZE(h)) + varint_field_size(succeeded) + len_fields_size(items)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = put_len_field(bytes_ptr(out), TAG_HEADER, h)
    p = put_varint_field(p, 0x10, succeeded)
    put_len_fields(p, 0x1A, items)
    return out


def encode_event(int32_t type, kv, prev_kv) -> bytes:
    """Marshal an mvccpb.Event (type is the int32 EventType; kv always emitted)."""
    cdef bytes k = as_bytes(kv)
    cdef bytes prev = None if prev_kv is None else as_bytes(prev_kv)
    cdef uint64_t wire_type = <uint64_t><int64_t>type  # negative enums sign-extend to 10 bytes
    cdef Py_ssize_t size = varint_field_size(wire_type) + len_field_size(PyBytes_GET_SIZE(k))
    if prev is not None:
        size += len_field_size(PyBytes_GET_SIZE(prev))
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = put_varint_field(bytes_ptr(out), 0x08, wire_type)
    p = put_len_field(p, 0x12, k)
    if prev is not None:
        put_len_field(p, 0x1A, prev)
    return out


def encode_watch_response(header, int64_t watch_id, bint created, bint canceled,
                          int64_t compact_revision, cancel_reason, bint fragment,
                          events) -> bytes:
    """Marshal a WatchResponse; events are encoded mvccpb.Event bodies."""
    cdef bytes h = as_bytes(header)
    cdef bytes reason = cancel_reason.encode()
    cdef Py_ssize_t reason_len = PyBytes_GET_SIZE(reason)
    cdef list items = as_bytes_list(events)
    cdef Py_ssize_t size = (
        len_field_size(PyBytes_GET_SIZE(h))
        + varint_field_size(<uint64_t>watch_id)
        + varint_field_size(created)
        + varint_field_size(canceled)
        + varint_field_size(<uint64_t>compact_revision)
        + (len_field_size(reason_len) if reason_len else 0)
        + varint_field_size(fragment)
        + len_fields_size(items)
    )
    cdef bytes out = new_bytes(size)
    cdef uint8_t* p = put_len_field(bytes_ptr(out), TAG_HEADER, h)
    p = put_varint_field(p, 0x10, <uint64_t>watch_id)
    p = put_varint_field(p, 0x18, created)
    p = put_varint_field(p, 0x20, canceled)
    p = put_varint_field(p, 0x28, <uint64_t>compact_revision)
    if reason_len:
        p = put_len_field(p, 0x32, reason)
    p = put_varint_field(p, 0x38, fragment)
    put_len_fields(p, 0x5A, items)  # field 11
    return out


def encoded_len_field(Py_ssize_t body_len) -> int:
    """Bytes a length-delimited field with a body of body_len takes, its 1-byte tag included."""
    if body_len < 0:
        raise ValueError(f"negative length {body_len}")
    return len_field_size(body_len)
