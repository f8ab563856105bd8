"""The one place choosing the transport: `K0S_STORE_TRANSPORT=native|grpcio`.

native is the compiled HTTP/2 server (`transport/native.py`), grpcio its
twin (`transport/grpc_server.py`). The pure-Python mode (`K0S_STORE_PURE=1`)
has no compiled server and always uses grpcio. Both take the same arguments
and return a BoundServer whose `shutdown(grace)` returns once the server has
stopped (stop accepting, GOAWAY, end streams, finish calls in flight).
"""

import os

from k0s_store.core import PURE

TRANSPORTS = ("native", "grpcio")
DEFAULT = "native"


def transport_name() -> str:
    """The transport this process serves with."""
    name = os.environ.get("K0S_STORE_TRANSPORT", "") or DEFAULT
    if name not in TRANSPORTS:
        raise ValueError(f"K0S_STORE_TRANSPORT must be one of {', '.join(TRANSPORTS)}: {name!r}")
    return "grpcio" if PURE else name


def start_server(store, settings, listeners, tls, rpc_stats=None, http=None):
    """Start the chosen transport's server (see `grpc_server.start_server`).

    `http` answers plain HTTP requests on the client URLs (/health, /metrics,
    as etcd serves them there); only the native server can share its port
    with HTTP, so on grpcio they are served on --listen-metrics-urls alone.
    """
    if transport_name() == "native":
        from k0s_store.transport.native import start_server

        return start_server(store, settings, listeners, tls, rpc_stats=rpc_stats, http=http)
    from k0s_store.transport.grpc_server import start_server

    return start_server(store, settings, listeners, tls, rpc_stats=rpc_stats)
