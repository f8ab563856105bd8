"""`k0s-store serve`: the etcd-compatible server, with etcd's flag names.

Flags take etcd's forms: ``--flag value``, ``--flag=value``, a single dash
(``-data-dir``), booleans bare or ``=true``/``=false``, durations as Go
writes them (``500ms``, ``10m``, ``1h30m``). Flags that only concern raft
peers (a single member has none) are accepted and ignored, so that an etcd
command line works unchanged.
"""

import argparse
import logging
import re
import signal
import sys
import threading

from k0s_store.api.settings import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    DEFAULT_PROGRESS_NOTIFY_INTERVAL,
    Settings,
)
from k0s_store.transport.listeners import TLSFiles, parse_listen_urls

log = logging.getLogger("k0s_store")

DEFAULT_QUOTA_BYTES = 2 * 1024**3  # etcd's default backend quota
UNLIMITED_QUOTA_BYTES = 1 << 62  # a negative --quota-backend-bytes disables the quota
SHUTDOWN_GRACE_SECONDS = 2.0

# Peer and cluster bootstrap flags of etcd: meaningless for one member.
IGNORED_FLAGS = (
    "listen-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "initial-election-tick-advance",
    "heartbeat-interval",
    "election-timeout",
    "snapshot-count",
    "logger",
    "log-level",
    "log-outputs",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "peer-client-cert-auth",
    "enable-v2",
    "listen-metrics-urls",
    "metrics",
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration string ("1h30m", "500ms", "0") in seconds."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise argparse.ArgumentTypeError("empty duration")
    return total


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _urls(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def build_parser() -> argparse.ArgumentParser:
    """The `k0s-store` command line."""
    parser = argparse.ArgumentParser(prog="k0s-store", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve the etcd v3 API", allow_abbrev=False, prefix_chars="-"
    )

    def flag(name: str, **kwargs) -> None:
        serve.add_argument(f"--{name}", f"-{name}", **kwargs)

    def bool_flag(name: str, help: str) -> None:
        flag(name, nargs="?", const=True, default=False, type=parse_bool, help=help)

    flag("data-dir", default="default.etcd", help="path to the data directory")
    flag("name", default="default", help="human-readable name for this member")
    flag("listen-client-urls", default="http://localhost:2379", help="URLs to serve on")
    flag("advertise-client-urls", type=_urls, default=("http://localhost:2379",))
    flag("initial-advertise-peer-urls", type=_urls, default=("http://localhost:2380",))
    flag("quota-backend-bytes", type=int, default=0, help="backend size limit (0: 2 GiB)")
    flag("max-txn-ops", type=int, default=DEFAULT_MAX_TXN_OPS)
    flag("max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    bool_flag("unsafe-no-fsync", "do not fsync: acknowledged writes may be lost on a crash")
    flag(
        "experimental-watch-progress-notify-interval",
        type=parse_duration,
        default=DEFAULT_PROGRESS_NOTIFY_INTERVAL,
        help="period of progress notifications to watchers that asked for them",
    )
    flag("cert-file", default="", help="client server TLS certificate file")
    flag("key-file", default="", help="client server TLS key file")
    flag("trusted-ca-file", default="", help="client server TLS trusted CA file")
    bool_flag("client-cert-auth", "require client certificates signed by the trusted CA")
    for name in IGNORED_FLAGS:
        flag(name, nargs="?", const="", default=None, help=argparse.SUPPRESS)
    return parser


def _quota(flag_value: int) -> int:
    if flag_value == 0:
        return DEFAULT_QUOTA_BYTES
    return UNLIMITED_QUOTA_BYTES if flag_value < 0 else flag_value


def serve(args: argparse.Namespace) -> int:
    """Open the store, serve until SIGTERM or SIGINT, then close it cleanly."""
    from k0s_store.mvcc import Store  # imported here so `--help` needs no store
    from k0s_store.transport.server import start_server

    tls = TLSFiles(args.cert_file, args.key_file, args.trusted_ca_file, args.client_cert_auth)
    try:
        listeners = parse_listen_urls(args.listen_client_urls, tls)
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    settings = Settings(
        name=args.name,
        client_urls=args.advertise_client_urls,
        peer_urls=args.initial_advertise_peer_urls,
        max_txn_ops=args.max_txn_ops,
        max_request_bytes=args.max_request_bytes,
        progress_notify_interval=args.experimental_watch_progress_notify_interval,
    )
    if args.unsafe_no_fsync:
        log.warning("--unsafe-no-fsync: acknowledged writes can be lost if the machine crashes")
    store = Store(
        args.data_dir, quota_bytes=_quota(args.quota_backend_bytes), fsync=not args.unsafe_no_fsync
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        bound = start_server(store, settings, listeners, tls)
    except Exception:
        store.close()
        raise
    for listener, address in bound.addresses:
        kind = "secure" if listener.secure else "insecure"
        log.info("serving %s client requests on %s (%s)", kind, address, listener.url)
    log.info(
        "ready to serve client requests (member %x, cluster %x)", store.member_id, store.cluster_id
    )
    stop.wait()
    log.info("received a stop signal, shutting down")
    bound.server.stop(SHUTDOWN_GRACE_SECONDS).wait()
    store.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `k0s-store` script and of `python -m k0s_store`."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2
