"""/health and /metrics on the client URL, beside gRPC, as etcd serves them.

The same HTTP requests go to a real etcd 3.4 and to k0s-store on the native
transport (grpcio cannot share its port with HTTP): HTTP/1.1 in clear, and
over TLS with client certificates both HTTP/1.1 and HTTP/2 (ALPN h2, as curl
does). Status and body must match etcd's; gRPC keeps working on the same port.
"""

import http.client
import socket
import ssl

import h2.config
import h2.connection
import h2.events
import pytest
from harness.processes import subject_is_etcd
from harness.rpc import Client
from ops_helpers import HTTP_TIMEOUT_S
from prometheus_client.parser import text_string_to_metric_families

from k0s_store.core import PURE
from k0s_store.proto import rpc_pb2 as pb

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(PURE, reason="HTTP on the client port needs the native transport"),
]

# (method, path): what an operator or a probe asks on the client port.
REQUESTS = (("GET", "/health"), ("GET", "/health?exclude=NOSPACE"), ("GET", "/nope"))


def _http1(server, method: str, path: str) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 request (TLS with the client certificate
    when the server has TLS)."""
    if server.tls:
        context = _client_context(server, ["http/1.1"])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=HTTP_TIMEOUT_S, context=context
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _client_context(server, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    context.load_cert_chain(str(server.tls.client_cert), str(server.tls.client_key))
    context.set_alpn_protocols(alpn)
    return context


def _http2(server, path: str) -> tuple[int, bytes]:
    """(status, body) of a GET over HTTP/2 on TLS, negotiated by ALPN."""
    context = _client_context(server, ["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT_S)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", path), (":scheme", "https")]
        conn.send_headers(1, [*headers, (":authority", server.endpoint)], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, body = 0, b""
        while True:
            data = sock.recv(65536)
            assert data, "connection closed before the response ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    return status, body
            sock.sendall(conn.data_to_send())


@pytest.fixture(params=["http", "https"])
def both(request, servers, tls_files, monkeypatch):
    """(etcd, subject) serving the same URL scheme; the subject on the native transport."""
    monkeypatch.setenv("K0S_STORE_TRANSPORT", "native")
    tls = tls_files if request.param == "https" else None
    started = [servers(kind, tls=tls) for kind in ("etcd", "etcd" if subject_is_etcd() else "ours")]
    return [server.wait_ready() for server in started]


def test_health_and_errors_answer_as_etcd(both):
    etcd, ours = both
    for method, path in REQUESTS:
        assert _http1(ours, method, path) == _http1(etcd, method, path), path
    if etcd.tls:
        for _, path in REQUESTS:
            assert _http2(ours, path) == _http2(etcd, path), path


def test_metrics_follow_the_workload_and_grpc_shares_the_port(both):
    for server in both:
        client = Client(server.channel())
        for i in range(5):
            client.call("KV", "Put", pb.PutRequest(key=b"k%d" % i, value=b"v"))
        client.close()
        fetches = [_http1(server, "GET", "/metrics")]
        if server.tls:
            fetches.append(_http2(server, "/metrics"))
        for status, body in fetches:
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(body.decode())}
            assert families["etcd_mvcc_put"].samples[0].value == 5, server.kind
            assert families["etcd_server_has_leader"].samples[0].value == 1


def test_half_closed_http1_client_still_gets_its_answer(both):
    """A client that shuts its side after the request (HTTP/1.0 tools do)."""
    if both[1].tls:
        pytest.skip("plain TCP half-close")
    for server in both:
        with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT_S) as s:
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        assert raw.startswith(b"HTTP/1.") and b" 200 " in raw.split(b"\r\n")[0], server.kind
        assert raw.endswith(b'{"health":"true"}'), server.kind
