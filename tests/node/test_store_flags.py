"""`k0s-store serve` warns once per etcd flag it accepts and ignores."""

import json
import subprocess
import sys

from harness.ports import free_port

from k0s_store.cli import IGNORED_FLAGS

_IGNORED = " is accepted for etcd compatibility and ignored"


def test_each_ignored_flag_is_warned_about_once(tmp_path):
    given = ["wal-dir", "initial-cluster-state", "enable-v2"]
    assert all(name in IGNORED_FLAGS for name in given)
    port = free_port()
    argv = [
        sys.executable, "-m", "k0s_store", "serve", f"--data-dir={tmp_path / 'data'}",
        f"--listen-client-urls=http://127.0.0.1:{port}",
        f"--wal-dir={tmp_path / 'wal'}", "--initial-cluster-state", "new",
        "-enable-v2=true", f"--wal-dir={tmp_path / 'wal2'}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "ready to serve client requests" in line:
            break
    proc.terminate()
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0
    entries = [json.loads(line) for line in "".join([*lines, rest]).splitlines() if line]
    warned = [
        e["msg"].removeprefix("--").removesuffix(_IGNORED)
        for e in entries
        if e["level"] == "warn" and e["msg"].endswith(_IGNORED)
    ]
    assert sorted(warned) == sorted(given)
