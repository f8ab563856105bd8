"""gRPC clients of an etcd-compatible server, with failures as values.

`Client.call("KV", "Range", request)` returns either the response message or
an `RpcFailure(code, details)`, so a differential test compares successes and
failures the same way. `raw_call` sends bytes with identity serializers (for
malformed-message tests).
"""

from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from k0s_store.proto import rpc_pb2_grpc

CALL_TIMEOUT_S = 10.0

STUBS = {
    "KV": rpc_pb2_grpc.KVStub,
    "Watch": rpc_pb2_grpc.WatchStub,
    "Lease": rpc_pb2_grpc.LeaseStub,
    "Cluster": rpc_pb2_grpc.ClusterStub,
    "Maintenance": rpc_pb2_grpc.MaintenanceStub,
    "Auth": rpc_pb2_grpc.AuthStub,
}


@dataclass(frozen=True)
class RpcFailure:
    """A failed call: gRPC status code name and etcd's message text."""

    code: str
    details: str

    @classmethod
    def from_error(cls, error: grpc.RpcError) -> "RpcFailure":
        return cls(error.code().name, error.details() or "")


Outcome = Message | RpcFailure


class Client:
    """Stubs of every etcd service over one channel.

    Args:
        channel: an open gRPC channel; closed by `close()`.
    """

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stubs = {name: stub(channel) for name, stub in STUBS.items()}

    def call(self, service: str, method: str, request: Message, timeout: float = CALL_TIMEOUT_S):
        """Unary call; returns the response or an `RpcFailure`."""
        try:
            return getattr(self.stubs[service], method)(request, timeout=timeout)
        except grpc.RpcError as error:
            return RpcFailure.from_error(error)

    def raw_call(self, path: str, payload: bytes, timeout: float = CALL_TIMEOUT_S):
        """Unary call of `path` (e.g. "/etcdserverpb.KV/Range") with raw bytes.

        Returns the response bytes or an `RpcFailure`.
        """
        method = self.channel.unary_unary(path)  # identity (de)serializers: bytes in/out
        try:
            return method(payload, timeout=timeout)
        except grpc.RpcError as error:
            return RpcFailure.from_error(error)

    def raw_stream(self, path: str, payloads: list[bytes], timeout: float = 2.0) -> list:
        """Bidi-stream call of `path` with raw request bytes.

        Returns the raw responses received, then the RpcFailure that ended
        the call (DEADLINE_EXCEEDED when the server kept it open).
        """
        method = self.channel.stream_stream(path)
        received: list = []
        try:
            for response in method(iter(payloads), timeout=timeout):
                received.append(response)
        except grpc.RpcError as error:
            received.append(RpcFailure.from_error(error))
        return received

    def close(self) -> None:
        self.channel.close()
