"""The launcher's HTTP endpoints on loopback.

- ``/healthz``: 200 ``ok`` while the launcher's supervision loop runs.
- ``/readyz``: 200 when every component is running and healthy, else 503;
  one ``[+]name ok`` / ``[-]name reason`` line per component either way.
- ``/metrics``: Prometheus text: certificate expiry seconds per certificate,
  component up/healthy/restarts, store revision and size.
- ``/status``: the JSON that ``k0s-node status`` shows.

Everything is derived from one status snapshot (see ``Controller.status``),
so the four answers never disagree.
"""

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("k0s_node")

StatusSource = Callable[[], dict]


class _StatusCollector:
    """Prometheus metrics computed from a fresh status snapshot at each scrape."""

    def __init__(self, status: StatusSource) -> None:
        self._status = status

    def collect(self):
        status = self._status()
        expiry = GaugeMetricFamily(
            "k0s_node_certificate_expiry_seconds",
            "Seconds until the certificate expires (negative: expired)",
            labels=["certificate"],
        )
        for cert in status["certificates"]:
            expiry.add_metric([cert["name"]], cert["residualSeconds"])
        up = GaugeMetricFamily(
            "k0s_node_component_up", "1 if the component's process runs", labels=["component"]
        )
        healthy = GaugeMetricFamily(
            "k0s_node_component_healthy", "1 if its health check passes", labels=["component"]
        )
        restarts = CounterMetricFamily(
            "k0s_node_component_restarts",
            "Times the component was started again",
            labels=["component"],
        )
        for comp in status["components"]:
            up.add_metric([comp["name"]], 1 if comp["state"] == "running" else 0)
            healthy.add_metric([comp["name"]], 1 if comp["healthy"] else 0)
            restarts.add_metric([comp["name"]], comp["restarts"])
        yield from (expiry, up, healthy, restarts)
        store = status.get("store")
        if store:
            yield GaugeMetricFamily(
                "k0s_node_store_revision", "Datastore revision", value=store["revision"]
            )
            yield GaugeMetricFamily(
                "k0s_node_store_db_size_bytes", "Datastore size on disk", value=store["dbSize"]
            )


def readiness(status: dict) -> tuple[bool, str]:
    """(ready, text) for ``/readyz``."""
    lines, ready = [], bool(status["components"])
    for comp in status["components"]:
        if comp["healthy"]:
            lines.append(f"[+]{comp['name']} ok")
        else:
            ready = False
            lines.append(f"[-]{comp['name']} {comp['health']}")
    lines.append("readyz check passed" if ready else "readyz check failed")
    return ready, "\n".join(lines) + "\n"


def serve_endpoints(
    port: int, status: StatusSource, alive: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Serve the endpoints on 127.0.0.1:``port`` (0: any free port) from a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = alive()
                self._reply(200 if ok else 503, "text/plain", "ok\n" if ok else "stalled\n")
            elif path == "/readyz":
                ready, text = readiness(status())
                self._reply(200 if ready else 503, "text/plain", text)
            elif path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry).decode())
            elif path == "/status":
                self._reply(200, "application/json", json.dumps(status(), indent=2) + "\n")
            else:
                self._reply(404, "text/plain", "not found: try /healthz /readyz /metrics /status\n")

        def _reply(self, code: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="k0s-node-http", daemon=True).start()
    return server
