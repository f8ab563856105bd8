"""`k0s-store serve`: the etcd-compatible server, with etcd's flag names.

Flags take etcd's forms: ``--flag value``, ``--flag=value``, a single dash
(``-data-dir``), booleans bare or ``=true``/``=false``, durations as Go
writes them (``500ms``, ``10m``, ``1h30m``). Flags that only concern raft
peers (a single member has none) are accepted and ignored, so that an etcd
command line works unchanged.
"""

import argparse
import gc
import logging
import sys

from k0s_store import migrate
from k0s_store.api.rpc_stats import DEFAULT_WARNING_APPLY_SECONDS, RpcStats
from k0s_store.api.settings import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    DEFAULT_PROGRESS_NOTIFY_INTERVAL,
    Settings,
)
from k0s_store.go_duration import parse_duration
from k0s_store.ops import logs
from k0s_store.ops.autocompact import MODES as AUTO_COMPACTION_MODES
from k0s_store.ops.autocompact import parse_retention
from k0s_store.ops.config_file import ConfigError, apply_config_file
from k0s_store.snapshot import commands as snapshot_commands
from k0s_store.transport.listeners import TLSFiles, parse_listen_urls

log = logging.getLogger("k0s_store")

# Allocations between young collections (Python's default is 700): a put at
# 100 clients spent ~3% of its CPU collecting with the default.
GC_YOUNG_THRESHOLD = 20_000

DEFAULT_QUOTA_BYTES = 2 * 1024**3  # etcd's default backend quota
UNLIMITED_QUOTA_BYTES = 1 << 62  # a negative --quota-backend-bytes disables the quota
SHUTDOWN_GRACE_SECONDS = 2.0
SHUTDOWN_LIMIT_SECONDS = 10.0  # under k0s-node's 15 s before it SIGKILLs

# Flags of etcd that mean nothing for one member on LMDB (peers, raft, WAL,
# discovery, proxy, v2), or that we do not implement (--metrics extensive):
# accepted, also as config-file keys, and ignored.
IGNORED_FLAGS = (
    "listen-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "initial-election-tick-advance",
    "heartbeat-interval",
    "election-timeout",
    "snapshot-count",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "peer-client-cert-auth",
    "peer-auto-tls",
    "auto-tls",
    "enable-v2",
    "metrics",
    "wal-dir",
    "max-snapshots",
    "max-wals",
    "cors",
    "discovery",
    "discovery-fallback",
    "discovery-proxy",
    "discovery-srv",
    "strict-reconfig-check",
    "enable-pprof",
    "proxy",
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    "force-new-cluster",
    "debug",
)


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _auth_token(text: str) -> str:
    """--auth-token: only etcd's "simple" tokens are served (no JWT)."""
    if text.split(",", 1)[0] != "simple":
        raise argparse.ArgumentTypeError(f"unsupported auth token type {text!r} (only simple)")
    return text


def _urls(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def build_parser(explicit_only: bool = False) -> argparse.ArgumentParser:
    """The `k0s-store` command line; with `explicit_only`, flags that are not
    given are left out of the result (no defaults)."""
    parser = argparse.ArgumentParser(prog="k0s-store", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve the etcd v3 API", allow_abbrev=False, prefix_chars="-"
    )

    def flag(name: str, **kwargs) -> None:
        if explicit_only:
            kwargs["default"] = argparse.SUPPRESS
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
    flag("auth-token", type=_auth_token, default="simple", help="auth token type (simple)")
    flag("auth-token-ttl", type=int, default=300, help="seconds a token lives after its last use")
    flag("bcrypt-cost", type=int, default=10, help="bcrypt cost of password hashes (4-31)")
    flag("config-file", default="", help="etcd's YAML config file (flags given must agree)")
    flag(
        "listen-metrics-urls",
        default="",
        help="http(s) URLs serving /metrics and /health (https uses the client TLS flags)",
    )
    flag("auto-compaction-mode", default="periodic", choices=AUTO_COMPACTION_MODES)
    flag(
        "auto-compaction-retention",
        default="0",
        help="periodic: hours or a duration; revision: revisions to keep (0: off)",
    )
    flag(
        "experimental-warning-apply-duration",
        type=parse_duration,
        default=DEFAULT_WARNING_APPLY_SECONDS,
        help="log requests slower than this",
    )
    flag("logger", default="zap", choices=logs.LOGGERS, help="zap: JSON lines")
    flag("log-level", default="info", choices=tuple(logs.LOG_LEVELS))
    flag("log-outputs", type=_urls, default=("default",), help="stderr, stdout, default or FILEs")
    for name in IGNORED_FLAGS:
        flag(name, nargs="?", const="", default=None, help=argparse.SUPPRESS)
    migrate.add_parser(commands)
    snapshot_commands.add_commands(commands)
    return parser


def _quota(flag_value: int) -> int:
    if flag_value == 0:
        return DEFAULT_QUOTA_BYTES
    return UNLIMITED_QUOTA_BYTES if flag_value < 0 else flag_value


def warn_ignored_flags(args: argparse.Namespace) -> None:
    """One warning per IGNORED_FLAGS flag given, so no operator relies on it silently."""
    for name in IGNORED_FLAGS:
        if getattr(args, name.replace("-", "_")) is not None:
            log.warning("--%s is accepted for etcd compatibility and ignored", name)


def serve(args: argparse.Namespace) -> int:
    """Open the store, serve until SIGTERM or SIGINT, then close it cleanly."""
    from k0s_store.core import lmdb  # imported here so `--help` needs no store
    from k0s_store.mvcc import Store
    from k0s_store.ops.autocompact import AutoCompactor
    from k0s_store.ops.endpoints import OpsEndpoints
    from k0s_store.ops.heap import keep_freed_memory
    from k0s_store.ops.http_listener import MetricsListeners
    from k0s_store.ops.stop_signals import StopSignals, exit_unless_stopped_within
    from k0s_store.transport.server import start_server

    stop_signals = StopSignals()  # from the start: one during start-up is kept
    if not keep_freed_memory():
        log.warning("cannot set malloc's thresholds: big responses will use fresh memory")
    warn_ignored_flags(args)
    tls = TLSFiles(args.cert_file, args.key_file, args.trusted_ca_file, args.client_cert_auth)
    try:
        listeners = parse_listen_urls(args.listen_client_urls, tls)
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    retention = parse_retention(args.auto_compaction_mode, args.auto_compaction_retention)
    settings = Settings(
        name=args.name,
        client_urls=args.advertise_client_urls,
        peer_urls=args.initial_advertise_peer_urls,
        max_txn_ops=args.max_txn_ops,
        max_request_bytes=args.max_request_bytes,
        progress_notify_interval=args.experimental_watch_progress_notify_interval,
        client_cert_auth=args.client_cert_auth,
    )
    if args.unsafe_no_fsync:
        log.warning("--unsafe-no-fsync: acknowledged writes can be lost if the machine crashes")
    try:
        store = Store(
            args.data_dir,
            quota_bytes=_quota(args.quota_backend_bytes),
            fsync=not args.unsafe_no_fsync,
            auth_token_ttl=args.auth_token_ttl,
            bcrypt_cost=args.bcrypt_cost,
        )
    except lmdb.Error as exc:  # e.g. a data file that is not LMDB's, or damaged
        log.error("cannot open data directory %s: %s", args.data_dir, exc)
        return 1
    rpc_stats = RpcStats(args.experimental_warning_apply_duration)
    endpoints = OpsEndpoints(store, rpc_stats, settings.version, fsync=not args.unsafe_no_fsync)
    try:
        metrics = MetricsListeners(args.listen_metrics_urls, tls, endpoints.handle)
    except (ValueError, OSError) as exc:
        store.close()
        log.error("cannot serve metrics: %s", exc)
        return 1
    try:
        bound = start_server(
            store, settings, listeners, tls, rpc_stats=rpc_stats, http=endpoints.handle
        )
    except Exception:
        metrics.close()
        store.close()
        raise
    for listener, address in bound.addresses:
        kind = "secure" if listener.secure else "insecure"
        log.info("serving %s client requests on %s (%s)", kind, address, listener.url)
    for url, address in metrics.addresses:
        log.info("serving /metrics and /health on %s (%s)", address, url)
    compactor = None
    if retention > 0:
        compactor = AutoCompactor(store, args.auto_compaction_mode, retention)
    log.info(
        "ready to serve client requests (member %x, cluster %x)", store.member_id, store.cluster_id
    )
    # What start-up made (modules, protobuf descriptors, tables) lives as long as
    # the process: frozen, it is out of every collection requests trigger. Requests
    # make little cyclic garbage, but each one in flight holds a few tracked objects
    # that a young collection walks (and promotes) for nothing: collect less often.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    signum = stop_signals.wait()
    log.info("received a stop signal (%s), shutting down", signum.name)
    exit_unless_stopped_within(SHUTDOWN_LIMIT_SECONDS)
    if compactor is not None:
        compactor.stop()
    bound.shutdown(SHUTDOWN_GRACE_SECONDS)
    metrics.close()
    store.close()
    log.info("stopped")
    return 0


def _serve_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The serve flags by name (without dashes)."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve_parser = commands.choices["serve"]
    return {
        option[2:]: action
        for action in serve_parser._actions
        for option in action.option_strings
        if option.startswith("--")
    }


def _check_serve_args(args: argparse.Namespace) -> None:
    """Cross-flag checks argparse cannot do; ConfigError naming the flag."""
    try:
        parse_retention(args.auto_compaction_mode, args.auto_compaction_retention)
    except ValueError as exc:
        raise ConfigError(f"--auto-compaction-retention: {exc}") from None
    try:
        logs.check_outputs(args.log_outputs)
    except ValueError as exc:
        raise ConfigError(f"--log-outputs: {exc}") from None


def parse_serve_args(argv: list[str]) -> argparse.Namespace:
    """The serve settings of `argv` (`serve` first), config file applied.

    Raises:
        ConfigError: a bad config file, or settings that do not fit together.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config_file:
        explicit = build_parser(explicit_only=True).parse_args(argv)
        apply_config_file(args.config_file, _serve_actions(parser), args, explicit)
    _check_serve_args(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `k0s-store` script and of `python -m k0s_store`."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "migrate":
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
        return migrate.run(args)
    if args.command != "serve":
        return snapshot_commands.run(args)
    try:
        args = parse_serve_args(argv)
    except ConfigError as exc:
        print(f"k0s-store serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        logs.configure(args.logger, args.log_level, args.log_outputs)
    except OSError as exc:
        print(f"k0s-store serve: error: --log-outputs: {exc}", file=sys.stderr)
        return 2
    return serve(args)
