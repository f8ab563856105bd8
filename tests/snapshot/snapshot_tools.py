"""Command lines the snapshot tests run: `k0s-store` and `etcdctl snapshot restore`."""

import subprocess
import sys
from pathlib import Path

from harness.processes import ServerProcess

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
