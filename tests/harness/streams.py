"""Bidirectional gRPC streams (Watch, LeaseKeepAlive) driven from a test.

Requests go through a queue; a reader thread puts every response (or the
terminating RpcFailure) on another queue, so a test can send, receive with a
timeout, and check that nothing more arrives.
"""

import queue
import threading
from collections.abc import Callable, Iterator

import grpc
from google.protobuf.message import Message

from .rpc import RpcFailure

_CLOSE = object()


class BidiStream:
    """One open bidi call.

    Args:
        open_call: the stub method, e.g. `client.stubs["Watch"].Watch`.
    """

    def __init__(self, open_call: Callable[[Iterator[Message]], Iterator[Message]]) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._responses: queue.Queue = queue.Queue()
        self._call = open_call(iter(self._requests.get, _CLOSE))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self._responses.put(RpcFailure.from_error(error))

    def send(self, request: Message) -> None:
        """Queue one request on the stream."""
        self._requests.put(request)

    def recv(self, timeout: float = 5.0) -> Message | RpcFailure | None:
        """The next response, or None after `timeout` seconds."""
        try:
            return self._responses.get(timeout=timeout)
        except queue.Empty:
            return None

    def recv_n(self, count: int, timeout: float = 5.0) -> list:
        """Exactly `count` responses (fewer if the time runs out)."""
        out = []
        for _ in range(count):
            item = self.recv(timeout)
            if item is None:
                break
            out.append(item)
        return out

    def drain(self, quiet: float = 0.5) -> list:
        """Everything that arrives until `quiet` seconds pass with nothing."""
        out = []
        while (item := self.recv(quiet)) is not None:
            out.append(item)
        return out

    def close(self) -> None:
        """Half-close and cancel the call."""
        self._requests.put(_CLOSE)
        self._call.cancel()
        self._reader.join(timeout=5)
