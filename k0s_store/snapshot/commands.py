"""`k0s-store snapshot save|restore` and `k0s-store import`.

    k0s-store snapshot save FILE --endpoints HOST:PORT [--cacert C --cert C --key K]
    k0s-store snapshot restore FILE --data-dir DIR [--skip-hash-check]
    k0s-store import --etcd-data-dir ETCD_DIR --data-dir DIR

`save` works against etcd and k0s-store alike (etcd's Snapshot stream) and
checks the sha256 the server sends before keeping the file. `restore` takes
a file saved by either (or by `etcdctl snapshot save`). `import` reads a
stopped etcd member's `member/snap/db` directly. That file holds what etcd
had committed to its backend; an etcd killed without a clean stop may have
applied its last entries (within its 100 ms batch interval) only to its
WAL, which `import` does not replay: stop etcd cleanly first (it commits the
backend on the way out), or restore from a `snapshot save` of the running
etcd instead. `import` refuses while an etcd holds the file's lock.

Every failure is one line on stderr and exit status 1; progress goes to
stderr when it is a terminal.
"""

import argparse
import fcntl
import hashlib
import os
import sys
from pathlib import Path

from tqdm import tqdm

from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.errors import SnapshotError
from k0s_store.snapshot.restore import RestoreSummary, restore
from k0s_store.snapshot.snapshot_file import SHA256_SIZE, has_trailer, open_snapshot

ETCD_DB = Path("member", "snap", "db")
SAVE_TIMEOUT_S = 3600.0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `snapshot` (save, restore) and `import` to the `k0s-store` parser."""
    snapshot = commands.add_parser("snapshot", help="save or restore an etcd-format snapshot")
    actions = snapshot.add_subparsers(dest="snapshot_command", required=True)
    save = actions.add_parser("save", help="stream a snapshot from a server into FILE")
    save.add_argument("file")
    save.add_argument("--endpoints", required=True, help="one server: host:port or a URL")
    save.add_argument("--cacert", default="", help="CA bundle to verify the server (TLS)")
    save.add_argument("--cert", default="", help="client certificate (TLS)")
    save.add_argument("--key", default="", help="client key (TLS)")
    load = actions.add_parser("restore", help="create a data dir from a snapshot file")
    load.add_argument("file")
    load.add_argument("--data-dir", required=True, help="new data dir (absent or empty)")
    load.add_argument(
        "--skip-hash-check",
        action="store_true",
        help="accept a file without the sha256 trailer (e.g. a copied member/snap/db)",
    )
    imp = commands.add_parser("import", help="create a data dir from a stopped etcd's data dir")
    imp.add_argument("--etcd-data-dir", required=True, help="the etcd member's --data-dir")
    imp.add_argument("--data-dir", required=True, help="new data dir (absent or empty)")


def run(args: argparse.Namespace) -> int:
    """Run a command added by `add_commands`; 0 on success, 1 with one line on stderr."""
    try:
        if args.command == "import":
            summary = _import(Path(args.etcd_data_dir), Path(args.data_dir))
        elif args.snapshot_command == "save":
            _save(args)
            return 0
        else:
            summary = _restore(Path(args.file), Path(args.data_dir), args.skip_hash_check)
    except (SnapshotError, OSError) as exc:  # OSError: a file system refusal (EACCES, ENOSPC)
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    _report(summary, args.data_dir)
    return 0


def _progress(total: int, what: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, desc=what, disable=None, file=sys.stderr)


def _restore(path: Path, data_dir: Path, skip_hash_check: bool) -> RestoreSummary:
    size = _size(path)
    hashed = size if has_trailer(size) else 0
    with _progress(hashed + size, "restore") as bar:
        bolt = open_snapshot(path, require_hash=not skip_hash_check, progress=bar.update)
        with bolt:
            bar.reset(hashed + bolt.size)
            bar.update(hashed)
            return restore(bolt, data_dir)


def _import(etcd_dir: Path, data_dir: Path) -> RestoreSummary:
    db = etcd_dir / ETCD_DB
    size = _size(db)
    with open(db, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotError(f"{db} is locked: stop the etcd using it first") from None
        with _progress(size, "import") as bar, BoltFile(db, progress=bar.update) as bolt:
            bar.reset(bolt.size)
            return restore(bolt, data_dir)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}") from None


def _report(summary: RestoreSummary, data_dir: str) -> None:
    compacted = ""
    if summary.compact_revision >= 0:
        compacted = f", compacted at {summary.compact_revision}"
    print(
        f"restored revision {summary.revision}{compacted}: {summary.revisions} key revisions,"
        f" {summary.leases} leases, into {data_dir}"
    )
    for bucket in summary.skipped:
        print(f"note: etcd bucket {bucket!r} not imported (no counterpart in this k0s-store)")


def _save(args: argparse.Namespace) -> None:
    """Stream the server's snapshot into FILE.part, check its sha256, rename to FILE."""
    import grpc  # the save client only

    from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

    target = Path(args.file)
    partial = target.with_name(target.name + ".part")
    channel = _channel(args)
    try:
        stream = rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(
            rpc_pb2.SnapshotRequest(), timeout=SAVE_TIMEOUT_S
        )
        digest, trailer = hashlib.sha256(), b""
        with open(partial, "wb") as out, _progress(0, "save") as bar:
            for response in stream:
                if bar.total == 0:
                    bar.reset(response.remaining_bytes + len(response.blob))
                out.write(response.blob)
                bar.update(len(response.blob))
                trailer = _track_trailer(digest, trailer, response.blob)
            out.flush()
            os.fsync(out.fileno())
        size = partial.stat().st_size
        if not has_trailer(size) or digest.digest() != trailer:
            raise SnapshotError(f"snapshot from {args.endpoints} failed its sha256 check")
        os.rename(partial, target)
    except grpc.RpcError as exc:
        raise SnapshotError(f"snapshot from {args.endpoints} failed: {exc.details()}") from None
    finally:
        channel.close()
        partial.unlink(missing_ok=True)
    print(f"Snapshot saved at {target}")


def _track_trailer(digest, trailer: bytes, blob: bytes) -> bytes:
    """Hash all but the last SHA256_SIZE bytes seen so far; return those last bytes."""
    tail = trailer + blob
    digest.update(tail[:-SHA256_SIZE])
    return tail[-SHA256_SIZE:]


def _channel(args: argparse.Namespace):
    import grpc

    endpoint = args.endpoints.split(",")
    if len(endpoint) != 1:
        raise SnapshotError(f"snapshot must be requested from one endpoint, not {endpoint}")
    scheme, _, address = endpoint[0].rpartition("://")
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if scheme == "https" or args.cacert:
        files = (args.cacert, args.key, args.cert)
        try:
            root, key, chain = (Path(f).read_bytes() if f else None for f in files)
        except OSError as exc:
            raise SnapshotError(f"cannot read {exc.filename}: {exc.strerror}") from None
        credentials = grpc.ssl_channel_credentials(root, key, chain)
        return grpc.secure_channel(address, credentials, options)
    return grpc.insecure_channel(address, options)
