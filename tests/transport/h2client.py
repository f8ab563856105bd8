"""A raw HTTP/2 gRPC client on python `h2`, for what grpc clients never send."""

import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.settings

TIMEOUT_S = 10.0


def frame(message: bytes, compressed: int = 0, length: int | None = None) -> bytes:
    """A gRPC length-prefixed message (the prefix may lie, for tests)."""
    size = len(message) if length is None else length
    return struct.pack(">BI", compressed, size) + message


@dataclass
class Response:
    """What came back on one stream."""

    headers: dict = field(default_factory=dict)
    data: bytes = b""
    trailers: dict = field(default_factory=dict)
    reset: int | None = None
    ended: bool = False

    @property
    def status(self) -> int | None:
        """grpc-status, from the trailers or a trailers-only response."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def message(self) -> str:
        """grpc-message, percent-decoded."""
        return unquote(self.trailers.get("grpc-message", self.headers.get("grpc-message", "")))

    def messages(self) -> list[bytes]:
        """The gRPC messages of the body."""
        out, data = [], self.data
        while len(data) >= 5:
            _, size = struct.unpack(">BI", data[:5])
            out.append(data[5 : 5 + size])
            data = data[5 + size :]
        return out


class RawClient:
    """One HTTP/2 connection speaking gRPC by hand.

    Args:
        endpoint: "host:port".
        tls: a client context (with ALPN h2) to speak TLS, or None.
        window: the initial stream window announced (0: the server may send no DATA).
    """

    def __init__(
        self, endpoint: str, window: int | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        host, port = endpoint.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        if window is not None:
            self.h2.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.h2.initiate_connection()
        self.responses: dict[int, Response] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.pong: bytes | None = None  # the payload of the last PING acknowledged
        self.auto_ack = True
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def start(self, path: str, headers: list[tuple[str, str]] | None = None) -> int:
        """Open a gRPC call; its stream id."""
        sid = self.h2.get_next_available_stream_id()
        base = {
            ":method": "POST",
            ":scheme": "http",
            ":path": path,
            ":authority": "localhost",
            "content-type": "application/grpc",
            "te": "trailers",
        }
        for name, value in headers or []:
            base[name] = value
        self.h2.send_headers(sid, list(base.items()))
        self.responses[sid] = Response()
        self.flush()
        return sid

    def send(self, sid: int, data: bytes, end: bool = False) -> None:
        """Send `data` in frames the server's window and frame size allow."""
        while True:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room == 0 and data:
                self.pump()  # wait for a WINDOW_UPDATE
                continue
            chunk, data = data[:room], data[room:]
            self.h2.send_data(sid, chunk, end_stream=end and not data)
            self.flush()
            if not data:
                return

    def end(self, sid: int) -> None:
        self.h2.end_stream(sid)
        self.flush()

    def reset(self, sid: int) -> None:
        self.h2.reset_stream(sid)
        self.flush()

    def call(self, path: str, body: bytes, headers=None) -> Response:
        """One unary call: send `body` as is (already framed) and wait for the end."""
        sid = self.start(path, headers)
        self.send(sid, body, end=True)
        return self.wait(sid)

    def pump(self, timeout: float = TIMEOUT_S) -> bool:
        """Read once and process; False when the connection is closed."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return False
        for event in self.h2.receive_data(data):
            self._on(event)
        self.flush()
        return True

    def wait(self, sid: int, timeout: float = TIMEOUT_S, messages: int | None = None) -> Response:
        """Until stream `sid` ends or is reset (or has `messages` messages)."""
        deadline = time.monotonic() + timeout
        response = self.responses[sid]
        while not (response.ended or response.reset is not None):
            if messages is not None and len(response.messages()) >= messages:
                break
            if self.terminated is not None or not self.pump(max(0.01, deadline - time.monotonic())):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {sid} not finished")
        return response

    def _on(self, event) -> None:
        sid = getattr(event, "stream_id", None)
        response = self.responses.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and response:
            response.headers = dict(event.headers)
        elif isinstance(event, h2.events.TrailersReceived) and response:
            response.trailers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived) and response:
            response.data += event.data
            if self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.StreamEnded) and response:
            response.ended = True
        elif isinstance(event, h2.events.StreamReset) and response:
            response.reset = event.error_code
        elif isinstance(event, h2.events.PingAckReceived):
            self.pong = event.ping_data
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event

    def close(self) -> None:
        self.sock.close()
