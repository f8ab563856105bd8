"""``k0s-store migrate --from URL --to URL``: copy every key between etcd-v3 servers.

Works between any two servers speaking the etcd v3 API (k0s-store to a real
etcd cluster and back). What it does:

1. Reads the source at one pinned revision (a consistent snapshot), pages of
   :data:`PAGE_KEYS` keys.
2. Refuses a target that holds any key, in one line, unless ``--force``.
3. Recreates the source's leases on the target with the same IDs and their
   remaining TTL, so that keys written with a lease still expire.
4. Writes in transactions of at most :data:`BATCH_OPS` puts and
   :data:`BATCH_BYTES` bytes: inside etcd's defaults (128 operations per
   txn, 1.5 MiB per request). A key too large for a batch goes alone.
5. Verifies: walks both sides in key order and compares every key, value
   and lease; the counts must match (with ``--force``, keys the target
   already had are counted and reported, not errors).

Revisions are not copied: the target has its own history, so stop the
kube-apiserver before migrating and start it on the target afterwards
(its watch cache holds revisions of the source).
"""

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from tqdm import tqdm

from k0s_store.proto import kv_pb2, rpc_pb2, rpc_pb2_grpc

PAGE_KEYS = 1000
BATCH_OPS = 128  # etcd's default --max-txn-ops
BATCH_BYTES = 1024 * 1024  # under etcd's default --max-request-bytes (1.5 MiB)
RPC_TIMEOUT_S = 30.0
_ALL_KEYS = (b"\x00", b"\x00")  # key and range_end of "every key"
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]


class MigrateError(RuntimeError):
    """The migration cannot go on (one line for the operator)."""


@dataclass(frozen=True)
class Endpoint:
    """One side: its URL and, for https, the files etcdctl's flags name."""

    url: str
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def channel(self) -> grpc.Channel:
        """A gRPC channel; TLS (with a client certificate when given) for https://."""
        scheme, _, target = self.url.partition("://")
        if scheme not in ("http", "https") or not target:
            raise MigrateError(f"{self.url}: want http://host:port or https://host:port")
        if scheme == "http":
            return grpc.insecure_channel(target, _CHANNEL_OPTIONS)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.cacert.read_bytes() if self.cacert else None,
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )
        return grpc.secure_channel(target, credentials, _CHANNEL_OPTIONS)


@dataclass
class Summary:
    """What a migration did."""

    keys: int = 0
    leases: int = 0
    transactions: int = 0
    extra_target_keys: int = 0


class _Side:
    def __init__(self, endpoint: Endpoint) -> None:
        self.url = endpoint.url
        self.channel = endpoint.channel()
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)

    def count(self) -> tuple[int, int]:
        """(number of keys, revision) of the whole keyspace now."""
        key, end = _ALL_KEYS
        reply = self.call(
            self.kv.Range, rpc_pb2.RangeRequest(key=key, range_end=end, count_only=True)
        )
        return reply.count, reply.header.revision

    def scan(self, revision: int = 0) -> Iterator[kv_pb2.KeyValue]:
        """Every key in key order, at ``revision`` (0: the current one, pinned at the start)."""
        start, end = _ALL_KEYS
        while True:
            request = rpc_pb2.RangeRequest(
                key=start, range_end=end, limit=PAGE_KEYS, revision=revision
            )
            reply = self.call(self.kv.Range, request)
            revision = revision or reply.header.revision
            yield from reply.kvs
            if not reply.more or not reply.kvs:
                return
            start = reply.kvs[-1].key + b"\x00"

    def call(self, method, request):
        try:
            return method(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise MigrateError(f"{self.url}: {exc.details() or exc.code().name}") from None


def migrate(
    source: Endpoint, target: Endpoint, force: bool = False, quiet: bool = False
) -> Summary:
    """Copy every key of ``source`` to ``target`` and verify the copy.

    Raises:
        MigrateError: unreachable side, non-empty target without ``force``,
            a refused write, or a difference found by the verification.
    """
    src, dst = _Side(source), _Side(target)
    total, revision = src.count()
    existing, _ = dst.count()
    if existing and not force:
        raise MigrateError(
            f"target {target.url} is not empty ({existing} keys): "
            "migrate into an empty cluster, or pass --force to write over it"
        )
    summary = Summary()
    if not quiet:
        print(f"{source.url} -> {target.url}: {total} keys at revision {revision}", file=sys.stderr)
    with _bar("copy", total, quiet) as copying:
        leases: set[int] = set()
        batch: list[kv_pb2.KeyValue] = []
        size = 0
        for kv in src.scan(revision):
            if kv.lease and kv.lease not in leases:
                leases.add(kv.lease)
                summary.leases += _copy_lease(src, dst, kv.lease)
            item_size = len(kv.key) + len(kv.value) + 16
            if batch and (len(batch) == BATCH_OPS or size + item_size > BATCH_BYTES):
                _write(dst, batch, summary)
                copying.update(len(batch))
                batch, size = [], 0
            batch.append(kv)
            size += item_size
        if batch:
            _write(dst, batch, summary)
            copying.update(len(batch))
    with _bar("verify", total, quiet) as checking:
        _verify(src, dst, revision, summary, checking.update)
    if summary.keys != total:
        raise MigrateError(f"source changed size during the copy: {summary.keys} of {total}")
    return summary


def _bar(what: str, total: int, quiet: bool) -> tqdm:
    """A progress bar on stderr, also when it is not a terminal (logs show the totals)."""
    return tqdm(total=total, desc=what, unit="key", disable=quiet, file=sys.stderr)


def _copy_lease(src: _Side, dst: _Side, lease_id: int) -> int:
    """Grant ``lease_id`` on the target with the TTL it has left; 1 if granted."""
    left = src.call(src.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id))
    ttl = max(left.TTL, 1)  # expired meanwhile: its keys are about to go on both sides
    try:
        dst.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=lease_id, TTL=ttl), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as exc:
        if "lease already exists" in (exc.details() or ""):
            return 0
        raise MigrateError(f"{dst.url}: lease {lease_id:x}: {exc.details()}") from None
    return 1


def _write(dst: _Side, batch: list[kv_pb2.KeyValue], summary: Summary) -> None:
    ops = [
        rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=kv.key, value=kv.value, lease=kv.lease)
        )
        for kv in batch
    ]
    dst.call(dst.kv.Txn, rpc_pb2.TxnRequest(success=ops))
    summary.keys += len(batch)
    summary.transactions += 1


def _verify(src: _Side, dst: _Side, revision: int, summary: Summary, advance) -> None:
    """Walk both sides in key order; every source key must be on the target, unchanged."""
    theirs = dst.scan()
    other = next(theirs, None)
    for kv in src.scan(revision):
        while other is not None and other.key < kv.key:
            summary.extra_target_keys += 1
            other = next(theirs, None)
        if other is None or other.key != kv.key:
            raise MigrateError(f"verification failed: key {kv.key!r} is missing on {dst.url}")
        if (other.value, other.lease) != (kv.value, kv.lease):
            raise MigrateError(f"verification failed: key {kv.key!r} differs on {dst.url}")
        advance(1)
        other = next(theirs, None)
    while other is not None:
        summary.extra_target_keys += 1
        other = next(theirs, None)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``migrate`` to the ``k0s-store`` command line."""
    p = commands.add_parser(
        "migrate",
        help="copy every key between two etcd-v3 servers, then verify",
        description="Copy every key between two etcd-v3 servers, then verify the copy.",
    )
    for side in ("from", "to"):
        p.add_argument(f"--{side}", dest=f"{side}_url", required=True, metavar="URL",
                       help=f"{'source' if side == 'from' else 'target'} client URL "
                       "(http:// or https://)")  # fmt: skip
        for name, what in (("cacert", "CA bundle"), ("cert", "client certificate"),
                           ("key", "client key")):  # fmt: skip
            p.add_argument(f"--{side}-{name}", type=Path, help=f"{what} for the {side} side "
                           f"(default: --{name})")  # fmt: skip
    p.add_argument("--cacert", type=Path, help="CA bundle for both sides")
    p.add_argument("--cert", type=Path, help="client certificate for both sides")
    p.add_argument("--key", type=Path, help="client key for both sides")
    p.add_argument("--force", action="store_true", help="write into a target that has keys")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """``k0s-store migrate``: 0 done and verified, 1 an error (one line on stderr)."""

    def side(name: str) -> Endpoint:
        return Endpoint(
            getattr(args, f"{name}_url"),
            getattr(args, f"{name}_cacert") or args.cacert,
            getattr(args, f"{name}_cert") or args.cert,
            getattr(args, f"{name}_key") or args.key,
        )

    try:
        summary = migrate(side("from"), side("to"), args.force, args.quiet)
    except (MigrateError, OSError) as exc:
        print(f"k0s-store migrate: error: {exc}", file=sys.stderr)
        return 1
    extra = ""
    if summary.extra_target_keys:
        extra = f", {summary.extra_target_keys} keys the target already had"
    print(
        f"copied and verified {summary.keys} keys and {summary.leases} leases "
        f"in {summary.transactions} transactions{extra}"
    )
    return 0
