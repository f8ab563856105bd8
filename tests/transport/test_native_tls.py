"""The native transport's TLS and listeners: mutual TLS with ALPN h2 (TLS
1.2 and 1.3), client certificates required with --client-cert-auth, a plain
unix socket beside TLS, and a server certificate rotated on disk while a
client keeps working: new connections get the new certificate."""

import os
import shutil
import socket
import ssl
import time
from pathlib import Path

import grpc
import pytest
from harness.certs import make_tls_files
from native_server import start_native

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

RELOAD_WAIT_S = 10.0


def tls_socket(server, tls, *, client_cert=True, **context_options) -> ssl.SSLSocket:
    """A TLS connection offering ALPN h2 (and a client certificate unless told not to)."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    context.set_alpn_protocols(["h2"])
    for name, value in context_options.items():
        setattr(context, name, value)
    if client_cert:
        context.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def served_certificate(server, tls) -> bytes:
    with tls_socket(server, tls) as sock:
        return sock.getpeercert(binary_form=True)


def put_and_get(channel: grpc.Channel, key: bytes) -> bytes:
    kv = rpc_pb2_grpc.KVStub(channel)
    kv.Put(rpc_pb2.PutRequest(key=key, value=key), timeout=5)
    return kv.Range(rpc_pb2.RangeRequest(key=key), timeout=5).kvs[0].value


@pytest.fixture
def tls_server(tmp_path):
    """A native server with mutual TLS on TCP and a plain unix socket beside it."""
    tls = make_tls_files(_mkdir(tmp_path / "pki"))
    sock_path = tmp_path / "k0s.sock"
    server = start_native(tmp_path / "server", extra_urls=(f"unix://{sock_path}",), tls=tls)
    yield server, tls, sock_path
    server.stop()


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_mutual_tls_alpn_and_versions(tls_server):
    server, tls, _ = tls_server
    with server.channel() as channel:
        assert put_and_get(channel, b"tls") == b"tls"
    with tls_socket(server, tls) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    with tls_socket(server, tls, maximum_version=ssl.TLSVersion.TLSv1_2) as sock:
        assert sock.version() == "TLSv1.2"
    # No client certificate: the server refuses the connection.
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes())
    with grpc.secure_channel(server.endpoint, credentials) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"tls"), timeout=3)
        assert refused.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def test_unix_socket_beside_tls(tls_server):
    server, _, sock_path = tls_server
    with grpc.insecure_channel(f"unix:{sock_path}") as channel:
        assert put_and_get(channel, b"unix") == b"unix"
    server.stop()
    assert not sock_path.exists()  # removed on a clean stop


def test_certificate_rotation_reaches_new_connections(tls_server, tmp_path):
    server, tls, _ = tls_server
    before = served_certificate(server, tls)
    with server.channel() as old_channel:
        assert put_and_get(old_channel, b"before") == b"before"
        # Rotate: a new server pair (from a new CA, so the old one cannot verify it)
        # replaces the files in place, the way k0s-pki rotate writes them.
        fresh = make_tls_files(_mkdir(tmp_path / "rotated"))
        for source, target in (
            (fresh.server_key, tls.server_key),
            (fresh.server_cert, tls.server_cert),
        ):
            staged = target.with_suffix(".tmp")
            shutil.copyfile(source, staged)
            os.replace(staged, target)
        rotated = ssl_fresh_view(fresh, tls)
        deadline = time.monotonic() + RELOAD_WAIT_S
        while True:
            try:
                after = served_certificate(server, rotated)
                break
            except ssl.SSLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert after != before
        assert after == ssl.PEM_cert_to_DER_cert(fresh.server_cert.read_text())
        # The connection opened before the rotation still works.
        assert put_and_get(old_channel, b"during") == b"during"
    # New gRPC clients trusting the new CA work (the client certificate is still
    # verified against the unchanged trusted CA file).
    credentials = grpc.ssl_channel_credentials(
        root_certificates=fresh.ca.read_bytes(),
        private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )
    with grpc.secure_channel(server.endpoint, credentials) as channel:
        assert put_and_get(channel, b"after") == b"after"


def ssl_fresh_view(fresh, tls):
    """TLS files to connect with after rotation: the new CA, the old client pair."""
    return type(tls)(
        ca=fresh.ca,
        server_cert=fresh.server_cert,
        server_key=fresh.server_key,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
    )
