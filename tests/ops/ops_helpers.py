"""Helpers of the ops tests: servers with a metrics listener, scrapes, /health."""

import urllib.error
import urllib.request
from typing import NamedTuple

from harness.ports import free_port
from harness.processes import ServerProcess
from prometheus_client.parser import text_string_to_metric_families

HTTP_TIMEOUT_S = 10.0

Samples = dict[tuple[str, frozenset], float]


def start_with_metrics(servers, kind: str, extra_args=()) -> tuple[ServerProcess, str]:
    """A server (not yet ready) also serving /metrics and /health; and their base URL."""
    url = f"http://127.0.0.1:{free_port()}"
    server = servers(kind, extra_args=[f"--listen-metrics-urls={url}", *extra_args])
    return server, url


def scrape(base_url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of /metrics by (name, labels), and every family's type, parsed
    with prometheus_client's own parser."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        text = response.read().decode()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent, as for a counter never touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


class HttpAnswer(NamedTuple):
    status: int
    content_type: str
    body: bytes


def get(base_url: str, path: str, method: str = "GET") -> HttpAnswer:
    """An HTTP request; error statuses are answers too."""
    request = urllib.request.Request(f"{base_url}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return HttpAnswer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.headers["Content-Type"], error.read())
