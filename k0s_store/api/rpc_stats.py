"""Per-RPC accounting every transport reports to: gRPC counters and slow requests.

A transport calls `started(method)` when an RPC of the method table begins
and `finished(method, code, started_at, request, response)` once its status
is known (`code`: the gRPC status code number, 0 for OK), and
`received(size)` / `sent(size)` per message. That is all a transport does;
the figures become go-grpc-prometheus' metrics (grpc_server_started_total,
grpc_server_handled_total) and etcd's byte counters when scraped, and an
applied request slower than etcd's warning threshold (100 ms) is logged as
etcd logs it ("apply request took too long").
"""

import logging
import threading
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


class RpcStats:
    """gRPC counters of one server, and its slow-request log.

    Args:
        warning_seconds: applied requests slower than this are logged.
    """

    def __init__(self, warning_seconds: float = DEFAULT_WARNING_APPLY_SECONDS) -> None:
        self.warning_seconds = warning_seconds
        self.slow_requests = Count()  # etcd_server_slow_apply_total
        self._methods: dict[str, Method] = {}
        self._started: dict[str, Count] = {}
        self._handled: dict[tuple[str, int], Count] = {}
        self._bytes_lock = threading.Lock()
        self.received_bytes = 0  # etcd_network_client_grpc_received_bytes_total
        self.sent_bytes = 0  # etcd_network_client_grpc_sent_bytes_total

    def received(self, size: int) -> None:
        """A request message of `size` bytes arrived (any method, streams included)."""
        with self._bytes_lock:
            self.received_bytes += size

    def sent(self, size: int) -> None:
        """A response message of `size` bytes was marshalled for sending."""
        with self._bytes_lock:
            self.sent_bytes += size

    def serve(self, table: dict[str, Method]) -> None:
        """Count the methods of `table` (all reported as 0 until called, as grpc-go does)."""
        for path, method in table.items():
            self._methods[path] = method
            self._started.setdefault(path, Count())
            for code in range(len(GRPC_CODE_NAMES)):
                self._handled.setdefault((path, code), Count())

    def started(self, method: Method) -> float:
        """An RPC of `method` began; returns its start time for `finished`."""
        self._started[method.path].inc()
        return time.monotonic()

    def finished(
        self,
        method: Method,
        code: int,
        started_at: float,
        request: bytes | Message | None = None,
        response: bytes | Message | None = None,
        error: str = "",
    ) -> None:
        """An RPC ended with gRPC status `code` (its request, response and error
        text are only looked at when it was slow)."""
        self._handled[(method.path, code)].inc()
        if method.shape is Shape.UNARY:
            took = time.monotonic() - started_at
            if took > self.warning_seconds and method.path in _APPLIED:
                self._warn_slow(method, took, request, response, error)

    def started_counts(self) -> list[tuple[Method, int]]:
        """(method, RPCs started) for every served method."""
        return [(self._methods[path], count.value) for path, count in self._started.items()]

    def open_streams(self, path: str) -> int:
        """RPCs of the method at `path` started and not yet finished."""
        if path not in self._started:
            return 0
        finished = sum(self._handled[(path, code)].value for code in range(len(GRPC_CODE_NAMES)))
        return self._started[path].value - finished

    def handled_counts(self) -> list[tuple[Method, str, int]]:
        """(method, Go code name, RPCs finished with it) for every method and code."""
        return [
            (self._methods[path], GRPC_CODE_NAMES[code], count.value)
            for (path, code), count in self._handled.items()
        ]

    def _warn_slow(self, method: Method, took: float, request, response, error: str) -> None:
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
