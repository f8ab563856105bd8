"""Real TLS handshakes over loopback with python ``ssl``, for the PKI tests.

A side is (certificate chain PEM, key PEM, CA bundle PEM): what a server or
client would read from its files at that moment.
"""

import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple


class Side(NamedTuple):
    """The three files a TLS peer reads: its chain, its key, the CAs it trusts."""

    chain: bytes
    key: bytes
    ca: bytes


def side_from_files(cert: Path, key: Path, ca: Path) -> Side:
    """Read a side from the files a component is configured with."""
    return Side(cert.read_bytes(), key.read_bytes(), ca.read_bytes())


def _context(side: Side, purpose: int, workdir: Path) -> ssl.SSLContext:
    server = purpose == ssl.PROTOCOL_TLS_SERVER
    ctx = ssl.SSLContext(purpose)
    cert, key = workdir / f"{'s' if server else 'c'}.crt", workdir / f"{'s' if server else 'c'}.key"
    cert.write_bytes(side.chain)
    key.write_bytes(side.key)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=side.ca.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def handshake(server: Side, client: Side, hostname: str, address: str = "127.0.0.1") -> None:
    """Run one mutually authenticated handshake; return only if both sides accepted.

    Args:
        server: the server's files; it requires a client certificate.
        client: the client's files; it checks the server's name.
        hostname: the name the client expects (DNS name or IP).
        address: loopback address to listen on (``::1`` for IPv6).

    Raises:
        ssl.SSLError or OSError: from whichever side refused.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with tempfile.TemporaryDirectory() as tmp:
        server_ctx = _context(server, ssl.PROTOCOL_TLS_SERVER, Path(tmp))
        client_ctx = _context(client, ssl.PROTOCOL_TLS_CLIENT, Path(tmp))
    errors: list[BaseException] = []
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((address, 0))
        listener.listen(1)
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            raw = socket.create_connection(listener.getsockname()[:2], timeout=10)
            with client_ctx.wrap_socket(raw, server_hostname=hostname) as tls:
                reply = tls.recv(2)
        finally:
            thread.join()
    if errors:
        raise errors[0]
    if reply != b"ok":
        raise ssl.SSLError(f"server closed without answering: {reply!r}")
