"""What the snapshot tests share: sample bbolt files, and the command lines
`k0s-store` and `etcdctl snapshot restore`."""

import random
import subprocess
import sys
from pathlib import Path

from harness.processes import ServerProcess

from k0s_store.snapshot.bbolt_writer import BoltWriter

CLI_TIMEOUT_S = 120.0


def k0s_store(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the `k0s-store` command line; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "k0s_store", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def etcdctl_restore(snapshot: Path, server: ServerProcess) -> None:
    """`etcdctl snapshot restore` into the data dir of a not yet started etcd."""
    peer = f"http://127.0.0.1:{server.peer_port}"
    result = subprocess.run(
        [
            "etcdctl",
            "snapshot",
            "restore",
            str(snapshot),
            "--name=default",
            f"--initial-cluster=default={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--data-dir={server.data_dir}",
        ],
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        timeout=CLI_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr


def sample_buckets() -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Buckets of every shape: many small items (several branch levels at small
    page sizes), values far larger than a page, a small (inline) bucket, an
    empty one, keys of one byte and of a thousand."""
    rnd = random.Random(7)
    many = sorted(
        (b"%08d" % i + b"k" * rnd.choice((0, 9, 100)), rnd.randbytes(rnd.choice((0, 20, 300))))
        for i in range(6000)
    )
    huge = [(b"a", b"x" * 50_000), (b"b", b""), (b"c" * 1000, rnd.randbytes(9000))]
    return {
        b"many": many,
        b"huge": huge,
        b"meta": [(b"consistent_index", (1).to_bytes(8, "big"))],
        b"empty": [],
        b"z": [(bytes([i]), bytes([i]) * i) for i in range(1, 200)],
    }


def write_file(path: Path, buckets: dict, page_size: int) -> BoltWriter:
    writer = BoltWriter(
        {name: (lambda items=items: iter(items)) for name, items in buckets.items()}, page_size
    )
    with open(path, "wb") as f:
        for page in writer.pages():
            f.write(page)
    assert path.stat().st_size == writer.size
    return writer
