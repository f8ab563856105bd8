"""etcd's KV service: Range, Put, DeleteRange, Txn, Compact.

The hot calls take the marshalled request and return the marshalled
response: requests are decoded by the codec straight into the store's
types and responses are assembled from the stored KeyValue bytes, so no
protobuf object is built per key. Txn is decoded by its own codec
(txn_codec) into the store's types, protobuf parsing only what that codec
leaves to it, and answered as bytes.

Writes come in two forms over the same checks and encoding: `put(request)`
returns the response once it is durable; `submit_put(request, caller,
reply)` returns at once and a store thread calls `reply` when the group
commit is durable (a transport that can send from any thread answers a
whole batch without waking a thread per request).
"""

# Hints stay unevaluated: closures made per request would build them every call.
from __future__ import annotations

from collections.abc import Callable

from k0s_store import errors
from k0s_store.api import validation
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.api.header import Header, nested_header
from k0s_store.api.settings import Settings
from k0s_store.api.unmarshal_errors import malformed, parse
from k0s_store.core import codec, txn_codec
from k0s_store.mvcc.types import (
    CMP_CREATE,
    CMP_LEASE,
    CMP_MOD,
    CMP_VALUE,
    CMP_VERSION,
    Compare,
    DeleteRangeRequest,
    DeleteRangeResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    Response,
    TxnRequest,
    TxnResult,
)
from k0s_store.proto import rpc_pb2

# etcd refuses a write whose raft entry (InternalRaftRequest) exceeds
# --max-request-bytes. The entry is the request as a length-delimited field
# (1-byte tag) plus a RequestHeader field holding a 9-byte request id:
# tag 100 (2 bytes) + length (1) + id tag (1) + id varint (9).
RAFT_HEADER_BYTES = 13

# Compare.target -> the oneof field holding its operand (etcd reads the one
# matching the target; another set field reads as zero).
_COMPARE_OPERAND = {
    CMP_VERSION: "version",
    CMP_CREATE: "create_revision",
    CMP_MOD: "mod_revision",
    CMP_VALUE: "value",
    CMP_LEASE: "lease",
}

# A write's answer, once durable: (response bytes, None) or (None, error).
Reply = Callable[[bytes | None, BaseException | None], None]

# ResponseOp / RequestOp oneof field numbers.
OP_RANGE, OP_PUT, OP_DELETE_RANGE, OP_TXN = 1, 2, 3, 4


class KVService:
    """The KV service over a store.

    Args:
        store: the MVCC store (`k0s_store.mvcc.Store`).
        header: fills response headers.
        settings: limits (max txn ops, max request bytes).
        auth: the permission checks (applied after validation, as etcd does).
    """

    def __init__(self, store, header: Header, settings: Settings, auth: AuthGuard) -> None:
        self.store = store
        self.header = header
        self.settings = settings
        self.auth = auth

    def range(self, request: bytes, caller: Caller = ANONYMOUS) -> bytes:
        """Range: marshalled RangeRequest in, marshalled RangeResponse out."""
        req = _decode(request, codec.decode_range_request, RangeRequest, rpc_pb2.RangeRequest)
        validation.check_range(req)
        if self.auth.applies(caller):
            self.auth.require_range(self.auth.user(caller), req.key, req.range_end)
        return self.store.range_response(req, self.header.encode)

    def put(self, request: bytes, caller: Caller = ANONYMOUS) -> bytes:
        """Put: marshalled PutRequest in, marshalled PutResponse out."""
        req = self._put_request(request, caller)
        return self._put_response(self.store.put(req))

    def submit_put(self, request: bytes, caller: Caller, reply: Reply) -> None:
        """Put answered later: `reply(PutResponse bytes, None)` or `reply(None,
        error)` once durable, from a store thread; errors of the request itself
        (malformed, invalid, denied) are raised here."""
        req = self._put_request(request, caller)
        self.store.put(req, _encoding(reply, self._put_response))

    def _put_request(self, request: bytes, caller: Caller) -> PutRequest:
        req = _decode(request, codec.decode_put_request, PutRequest, rpc_pb2.PutRequest)
        validation.check_put(req)
        checked = self.auth.applies(caller)
        user = self.auth.user(caller) if checked else None  # bad token, then size: etcd's order
        self._check_raft_size(len(request))
        if checked:
            self.auth.require_put(user, req)
        return req

    def _put_response(self, resp: Response) -> bytes:
        return codec.encode_put_response(self.header.encode(resp.revision), resp.result.prev_kv)

    def delete_range(self, request: bytes, caller: Caller = ANONYMOUS) -> bytes:
        """DeleteRange: marshalled request in, marshalled DeleteRangeResponse out."""
        req = self._delete_range_request(request, caller)
        return self._delete_range_response(self.store.delete_range(req))

    def submit_delete_range(self, request: bytes, caller: Caller, reply: Reply) -> None:
        """DeleteRange answered later (as `submit_put`)."""
        req = self._delete_range_request(request, caller)
        self.store.delete_range(req, _encoding(reply, self._delete_range_response))

    def _delete_range_request(self, request: bytes, caller: Caller) -> DeleteRangeRequest:
        req = _decode(
            request,
            codec.decode_delete_range_request,
            DeleteRangeRequest,
            rpc_pb2.DeleteRangeRequest,
        )
        validation.check_delete_range(req)
        checked = self.auth.applies(caller)
        user = self.auth.user(caller) if checked else None
        self._check_raft_size(len(request))
        if checked:
            self.auth.require_delete_range(user, req)
        return req

    def _delete_range_response(self, resp: Response) -> bytes:
        r = resp.result
        return codec.encode_delete_range_response(
            self.header.encode(resp.revision), r.deleted, r.prev_kvs
        )

    def txn(self, request: bytes, caller: Caller = ANONYMOUS) -> bytes:
        """Txn: marshalled TxnRequest in, marshalled TxnResponse out."""
        req = self._txn_request(request, caller)
        return self._txn_response(req, self.store.txn(req))

    def submit_txn(self, request: bytes, caller: Caller, reply: Reply) -> None:
        """Txn answered later (as `submit_put`; a read-only one before this returns)."""
        req = self._txn_request(request, caller)
        self.store.txn(req, _encoding(reply, lambda resp: self._txn_response(req, resp)))

    def _txn_request(self, request: bytes, caller: Caller) -> TxnRequest:
        req = _decode_txn(request)
        validation.check_txn(req, self.settings.max_txn_ops)
        checked = self.auth.applies(caller)
        user = self.auth.user(caller) if checked else None
        self._check_raft_size(len(request))
        if checked:
            self.auth.require_txn(user, req)
        return req

    def _txn_response(self, req: TxnRequest, resp: Response) -> bytes:
        result: TxnResult = resp.result
        begin = resp.revision - 1 if _txn_writes(req, result) else resp.revision
        responses = _encode_op_results(req, result, _WriteProgress(begin))
        return codec.encode_txn_response(
            self.header.encode(resp.revision), result.succeeded, responses
        )

    def compact(
        self, request: rpc_pb2.CompactionRequest, caller: Caller = ANONYMOUS
    ) -> rpc_pb2.CompactionResponse:
        """Compact the history up to `request.revision` (any user: etcd checks no role)."""
        self.auth.user(caller)
        revision = self.store.compact(request.revision, physical=request.physical)
        return rpc_pb2.CompactionResponse(header=self.header.message(revision))

    def _check_raft_size(self, body_len: int) -> None:
        if RAFT_HEADER_BYTES + codec.encoded_len_field(body_len) > self.settings.max_request_bytes:
            raise errors.RequestTooLargeError()


def _encoding(reply: Reply, encode: Callable[[Response], bytes]):
    """The store's completion for `reply`: the response encoded, or the error."""

    def then(response: Response | None, error: BaseException | None) -> None:
        if error is not None:
            reply(None, error)
            return
        try:
            body = encode(response)
        except Exception as exc:  # a bug: the caller gets it, as from a sync handler
            reply(None, exc)
            return
        reply(body, None)

    return then


def _decode(request: bytes, decode, request_type, message_type):
    """`request` decoded by the codec into `request_type`; a malformed one gets
    the error etcd gives for `message_type`."""
    try:
        return request_type(*decode(request))
    except ValueError as exc:
        raise malformed(message_type.DESCRIPTOR, request, exc) from exc


_TXN_TYPES = (TxnRequest, Compare, RangeRequest, PutRequest, DeleteRangeRequest)


def _decode_txn(request: bytes) -> TxnRequest:
    """A marshalled TxnRequest in the store's types: decoded by the codec, or,
    for what it leaves to protobuf (malformed, unusual), parsed by protobuf
    (which gives the same request, or etcd's error)."""
    try:
        return txn_codec.decode_txn_request(request, _TXN_TYPES)
    except (ValueError, OverflowError):
        return txn_from_message(parse(rpc_pb2.TxnRequest, request))


def txn_from_message(m: rpc_pb2.TxnRequest) -> TxnRequest:
    """Convert a parsed TxnRequest into the store's types (empty ops become None)."""
    return TxnRequest(
        compare=tuple(_compare(c) for c in m.compare),
        success=tuple(_op(op) for op in m.success),
        failure=tuple(_op(op) for op in m.failure),
    )


def _compare(c: rpc_pb2.Compare) -> Compare:
    field = _COMPARE_OPERAND.get(c.target)
    operand = getattr(c, field) if field else 0
    return Compare(c.result, c.target, c.key, operand, c.range_end)


def _op(op: rpc_pb2.RequestOp):
    kind = op.WhichOneof("request")
    if kind == "request_range":
        r = op.request_range
        return RangeRequest(
            r.key,
            r.range_end,
            r.limit,
            r.revision,
            r.sort_order,
            r.sort_target,
            r.serializable,
            r.keys_only,
            r.count_only,
            r.min_mod_revision,
            r.max_mod_revision,
            r.min_create_revision,
            r.max_create_revision,
        )
    if kind == "request_put":
        p = op.request_put
        return PutRequest(p.key, p.value, p.lease, p.prev_kv, p.ignore_value, p.ignore_lease)
    if kind == "request_delete_range":
        d = op.request_delete_range
        return DeleteRangeRequest(d.key, d.range_end, d.prev_kv)
    if kind == "request_txn":
        return txn_from_message(op.request_txn)
    return None


def _txn_writes(req: TxnRequest, result: TxnResult) -> bool:
    """Whether the branch taken changed anything (etcd: len(txn.Changes()) != 0)."""
    ops = req.success if result.succeeded else req.failure
    for op, res in zip(ops, result.responses, strict=True):
        if isinstance(res, PutResult):
            return True
        if isinstance(res, DeleteRangeResult) and res.deleted:
            return True
        if isinstance(res, TxnResult) and _txn_writes(op, res):
            return True
    return False


class _WriteProgress:
    """Tracks, op by op, the revision etcd puts in each nested response header.

    Inside a write txn at begin revision B, etcd answers a Put with B+1, a
    Range or a DeleteRange with B+1 once something changed and B before.
    """

    def __init__(self, begin: int) -> None:
        self.begin = begin
        self.changed = False

    @property
    def revision(self) -> int:
        return self.begin + 1 if self.changed else self.begin


def _encode_op_results(req: TxnRequest, result: TxnResult, progress: _WriteProgress) -> list:
    ops = req.success if result.succeeded else req.failure
    encoded = []
    for op, res in zip(ops, result.responses, strict=True):
        if isinstance(res, PutResult):
            progress.changed = True
            body = codec.encode_put_response(nested_header(progress.revision), res.prev_kv)
            encoded.append(codec.encode_response_op(OP_PUT, body))
        elif isinstance(res, RangeResult):
            body = codec.encode_range_response(
                nested_header(progress.revision), res.kvs, res.more, res.count
            )
            encoded.append(codec.encode_response_op(OP_RANGE, body))
        elif isinstance(res, DeleteRangeResult):
            progress.changed = progress.changed or res.deleted > 0
            body = codec.encode_delete_range_response(
                nested_header(progress.revision), res.deleted, res.prev_kvs
            )
            encoded.append(codec.encode_response_op(OP_DELETE_RANGE, body))
        else:
            # etcd leaves a nested txn's header empty.
            responses = _encode_op_results(op, res, progress)
            body = codec.encode_txn_response(b"", res.succeeded, responses)
            encoded.append(codec.encode_response_op(OP_TXN, body))
    return encoded
