"""Per-RPC accounting every transport reports to: gRPC counters and slow requests.

A transport gets one `MethodStats` per method from `RpcStats.serve(table)`
and calls its `started()` when an RPC begins and `finished(code, started_at,
request, response)` once its status is known (`code`: the gRPC status code
number, 0 for OK); and `RpcStats.received(size)` / `sent(size)` per
message. That is all a transport does;
the figures become go-grpc-prometheus' metrics (grpc_server_started_total,
grpc_server_handled_total) and etcd's byte counters when scraped, and an
applied request slower than etcd's warning threshold (100 ms) is logged as
etcd logs it ("apply request took too long").
"""

import logging
import time

from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message

from k0s_store.api.methods import Method, Shape
from k0s_store.counters import Count
from k0s_store.go_duration import format_duration
from k0s_store.proto import rpc_pb2 as pb

log = logging.getLogger("k0s_store.api")

# etcd's --experimental-warning-apply-duration default.
DEFAULT_WARNING_APPLY_SECONDS = 0.1

# Go's codes.Code.String(), indexed by code number.
GRPC_CODE_NAMES = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)

# go-grpc-prometheus' grpc_type label per shape.
GRPC_TYPES = {
    Shape.UNARY: "unary",
    Shape.SERVER_STREAM: "server_stream",
    Shape.EACH_MESSAGE: "bidi_stream",
    Shape.SESSION: "bidi_stream",
}

# Requests etcd applies (and warns about when slow), with the message types
# of those served as raw bytes.
_APPLIED = {
    "/etcdserverpb.KV/Range": (pb.RangeRequest, pb.RangeResponse),
    "/etcdserverpb.KV/Put": (pb.PutRequest, pb.PutResponse),
    "/etcdserverpb.KV/DeleteRange": (pb.DeleteRangeRequest, pb.DeleteRangeResponse),
    "/etcdserverpb.KV/Txn": (pb.TxnRequest, pb.TxnResponse),
    "/etcdserverpb.KV/Compact": (pb.CompactionRequest, pb.CompactionResponse),
    "/etcdserverpb.Lease/LeaseGrant": (pb.LeaseGrantRequest, pb.LeaseGrantResponse),
    "/etcdserverpb.Lease/LeaseRevoke": (pb.LeaseRevokeRequest, pb.LeaseRevokeResponse),
}


class MethodStats:
    """The counters of one method; a transport keeps one per method it serves
    (`RpcStats.serve`) and calls `started()` and `finished()` for every RPC."""

    __slots__ = ("_handled", "_rpc_stats", "_started", "_watch_slow", "method")

    def __init__(self, method: Method, rpc_stats: "RpcStats") -> None:
        self.method = method
        self._rpc_stats = rpc_stats
        self._started = Count()
        self._handled = tuple(Count() for _ in GRPC_CODE_NAMES)
        self._watch_slow = method.shape is Shape.UNARY and method.path in _APPLIED

    def started(self) -> float:
        """An RPC began; returns its start time for `finished`."""
        self._started.inc()
        return time.monotonic()

    def finished(
        self,
        code: int,
        started_at: float,
        request: bytes | Message | None = None,
        response: bytes | Message | None = None,
        error: str = "",
    ) -> None:
        """The RPC ended with gRPC status `code` (its request, response and error
        text are only looked at when it was slow)."""
        self._handled[code].inc()
        if self._watch_slow:
            took = time.monotonic() - started_at
            if took > self._rpc_stats.warning_seconds:
                self._rpc_stats.warn_slow(self.method, took, request, response, error)

    @property
    def started_count(self) -> int:
        return self._started.value

    def handled_count(self, code: int) -> int:
        return self._handled[code].value


class RpcStats:
    """gRPC counters of one server, and its slow-request log.

    Args:
        warning_seconds: applied requests slower than this are logged.
    """

    def __init__(self, warning_seconds: float = DEFAULT_WARNING_APPLY_SECONDS) -> None:
        self.warning_seconds = warning_seconds
        self.slow_requests = Count()  # etcd_server_slow_apply_total
        self._methods: dict[str, MethodStats] = {}
        self._received = Count()  # etcd_network_client_grpc_received_bytes_total
        self._sent = Count()  # etcd_network_client_grpc_sent_bytes_total

    def serve(self, table: dict[str, Method]) -> dict[str, MethodStats]:
        """The counters of every method of `table`, by path (all reported as 0
        until called, as grpc-go does)."""
        for path, method in table.items():
            if path not in self._methods:
                self._methods[path] = MethodStats(method, self)
        return {path: self._methods[path] for path in table}

    def received(self, size: int) -> None:
        """A request message of `size` bytes arrived (any method, streams included)."""
        self._received.add(size)

    def sent(self, size: int) -> None:
        """A response message of `size` bytes was marshalled for sending."""
        self._sent.add(size)

    @property
    def received_bytes(self) -> int:
        """Bytes of every request message received."""
        return self._received.value

    @property
    def sent_bytes(self) -> int:
        """Bytes of every response message sent."""
        return self._sent.value

    def started_counts(self) -> list[tuple[Method, int]]:
        """(method, RPCs started) for every served method."""
        return [(m.method, m.started_count) for m in self._methods.values()]

    def handled_counts(self) -> list[tuple[Method, str, int]]:
        """(method, Go code name, RPCs finished with it) for every method and code."""
        return [
            (m.method, name, m.handled_count(code))
            for m in self._methods.values()
            for code, name in enumerate(GRPC_CODE_NAMES)
        ]

    def open_streams(self, path: str) -> int:
        """RPCs of the method at `path` started and not yet finished."""
        stats = self._methods.get(path)
        if stats is None:
            return 0
        # Finished first: an RPC is counted started before it is counted finished.
        finished = sum(stats.handled_count(code) for code in range(len(GRPC_CODE_NAMES)))
        return stats.started_count - finished

    def warn_slow(self, method: Method, took: float, request, response, error: str) -> None:
        """Log a slow applied request as etcd does."""
        self.slow_requests.inc()
        request_type, response_type = _APPLIED[method.path]
        fields = {
            "took": format_duration(took),
            "expected-duration": format_duration(self.warning_seconds),
            "prefix": "read-only range " if method.name == "Range" else "",
            "request": request_summary(_message(request_type, request)),
            "response": response_summary(_message(response_type, response)),
        }
        if error:
            fields["error"] = error
        log.warning("apply request took too long", extra={"fields": fields})


def _message(message_type: type[Message], data: bytes | Message | None) -> Message | None:
    if data is None or isinstance(data, Message):
        return data
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None
    return message


def request_summary(request: Message | None) -> str:
    """A request in protobuf text, values replaced by their size (etcd never logs values)."""
    if request is None:
        return ""
    return text_format.MessageToString(
        request, as_one_line=True, message_formatter=_redact_values
    ).strip()


def _redact_values(message: Message, indent: int, as_one_line: bool) -> str | None:
    if isinstance(message, pb.PutRequest):
        redacted = pb.PutRequest()
        redacted.CopyFrom(message)
        redacted.ClearField("value")
        text = text_format.MessageToString(redacted, as_one_line=True).strip()
        return f"{text} value_size: {len(message.value)}".strip()
    if isinstance(message, pb.Compare) and message.WhichOneof("target_union") == "value":
        redacted = pb.Compare()
        redacted.CopyFrom(message)
        redacted.ClearField("value")
        text = text_format.MessageToString(redacted, as_one_line=True).strip()
        return f"{text} value_size: {len(message.value)}"
    return None


def response_summary(response: Message | None) -> str:
    """etcd's summary of a response: its size, and the key count of a Range."""
    if response is None:
        return ""
    if isinstance(response, pb.RangeResponse):
        return f"range_response_count:{len(response.kvs)} size:{response.ByteSize()}"
    return f"size:{response.ByteSize()}"
