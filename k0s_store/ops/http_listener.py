"""Serve the HTTP endpoints on etcd's --listen-metrics-urls (http and https).

As in etcd, an https metrics URL uses the client TLS settings (--cert-file,
--key-file, --trusted-ca-file, --client-cert-auth). Each URL gets its own
stdlib HTTP server thread; scrapes are rare and cheap to serve.
"""

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from k0s_store.ops.endpoints import HttpResponse
from k0s_store.transport.listeners import TLSFiles

log = logging.getLogger("k0s_store.metrics")

Handle = Callable[[str, str], HttpResponse]


HANDSHAKE_TIMEOUT_SECONDS = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls_context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs here, on the connection's own thread, so a
        # slow or silent client never holds up the accept loop.
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            wrapped = self.tls_context.wrap_socket(request, server_side=True)
        except OSError as exc:  # ssl.SSLError included
            log.debug("metrics TLS handshake failed: %s", exc)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _request_handler(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            response = handle(self.command, self.path)
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        def log_message(self, format: str, *args) -> None:
            log.debug(format % args)

    return Handler


class MetricsListeners:
    """HTTP servers of /metrics and /health, one per URL, started at once.

    Args:
        urls: etcd's --listen-metrics-urls, comma-separated.
        tls: the client TLS settings (used by https URLs).
        handle: `OpsEndpoints.handle`.

    Raises:
        ValueError: with etcd's wording, when a URL cannot be served.
        OSError: when an address cannot be bound.
    """

    def __init__(self, urls: str, tls: TLSFiles, handle: Handle) -> None:
        self._servers: list[ThreadingHTTPServer] = []
        self.addresses: list[tuple[str, str]] = []  # (url, host:port bound)
        try:
            for url in (u.strip() for u in urls.split(",") if u.strip()):
                self._start(url, tls, handle)
        except BaseException:
            self.close()
            raise

    def _start(self, url: str, tls: TLSFiles, handle: Handle) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"URL scheme must be http or https: {url}")
        if parts.port is None or parts.hostname is None:
            raise ValueError(f'URL address does not have the form "host:port": {url}')
        server_class = _IPv6Server if ":" in parts.hostname else _Server
        server = server_class((parts.hostname, parts.port), _request_handler(handle))
        if parts.scheme == "https":
            if tls.empty:
                server.server_close()
                raise ValueError(
                    "TLS key/cert (--cert-file, --key-file) must be provided for metrics url "
                    f"{url} with HTTPS scheme"
                )
            server.tls_context = _tls_context(tls)
        self._servers.append(server)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.addresses.append((url, f"{host}:{server.server_address[1]}"))
        threading.Thread(target=server.serve_forever, name=f"metrics {url}", daemon=True).start()

    def close(self) -> None:
        """Stop every server and close its socket."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


def _tls_context(tls: TLSFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.trusted_ca_file:
        context.load_verify_locations(tls.trusted_ca_file)
    if tls.client_cert_auth:
        context.verify_mode = ssl.CERT_REQUIRED
    return context
