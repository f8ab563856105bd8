"""The HTTP endpoints etcd serves beside gRPC: /metrics and /health.

Transport-neutral: `OpsEndpoints.handle(method, target)` maps a request
line to (status, headers, body), so any HTTP server can serve them: the
metrics listeners (`k0s_store.ops.http_listener`), and the native transport,
which shares the client port between gRPC and HTTP as etcd does. grpcio
cannot share its port, so on grpcio they are served on --listen-metrics-urls
only.

Responses are byte for byte etcd's (Go's net/http): /health answers
{"health":"true"} (200) or {"health":"false"} plus a newline (503, as
http.Error writes it), other methods get 405, unknown paths Go's 404.
"""

import json
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from k0s_store.ops.health import check_health
from k0s_store.ops.metrics import OpsCounters, StoreCollector, registry

_TEXT = "text/plain; charset=utf-8"
_ERROR_HEADERS = (("Content-Type", _TEXT), ("X-Content-Type-Options", "nosniff"))  # Go's http.Error


class HttpResponse(NamedTuple):
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class OpsEndpoints:
    """/metrics and /health of one store.

    Args:
        store: the open `k0s_store.mvcc.Store`.
        rpc_stats: the gRPC counters every transport reports to.
        version: the etcd version reported by etcd_server_version.
        fsync: whether commits are fsynced.
    """

    def __init__(self, store, rpc_stats, version: str, fsync: bool) -> None:
        self._store = store
        self._counters = OpsCounters()
        self._registry = registry(StoreCollector(store, rpc_stats, self._counters, version, fsync))

    def handle(self, method: str, target: str) -> HttpResponse:
        """The response to `method target` (target: path and query)."""
        url = urlsplit(target)
        if url.path == "/metrics":
            # etcd's content type: every Prometheus, old ones included, reads it.
            return HttpResponse(200, (("Content-Type", CONTENT_TYPE_PLAIN_0_0_4),), self.metrics())
        if url.path == "/health":
            if method != "GET":
                return HttpResponse(
                    405, (("Allow", "GET"), *_ERROR_HEADERS), b"Method Not Allowed\n"
                )
            return self._health(frozenset(parse_qs(url.query).get("exclude", [])))
        return HttpResponse(404, _ERROR_HEADERS, b"404 page not found\n")

    def metrics(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self._registry)

    def _health(self, excluded: frozenset[str]) -> HttpResponse:
        health = check_health(self._store, excluded)
        if health.healthy:
            self._counters.health_success.inc()
            return HttpResponse(200, (("Content-Type", _TEXT),), b'{"health":"true"}')
        if not health.by_alarm:
            self._counters.health_failures.inc()
        body = json.dumps({"health": "false"}, separators=(",", ":")).encode() + b"\n"
        return HttpResponse(503, _ERROR_HEADERS, body)
