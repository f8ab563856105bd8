"""`k0s-store serve` warns once per etcd flag it accepts and ignores."""

import re
import subprocess
import sys

from harness.ports import free_port

from k0s_store.cli import IGNORED_FLAGS


def test_each_ignored_flag_is_warned_about_once(tmp_path):
    given = ["listen-metrics-urls", "initial-cluster-state", "enable-v2"]
    assert all(name in IGNORED_FLAGS for name in given)
    port = free_port()
    argv = [
        sys.executable, "-m", "k0s_store", "serve", f"--data-dir={tmp_path / 'data'}",
        f"--listen-client-urls=http://127.0.0.1:{port}",
        "--listen-metrics-urls=http://127.0.0.1:2381", "--initial-cluster-state", "new",
        "-enable-v2=true", "--listen-metrics-urls=http://127.0.0.1:2382",
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
    warned = re.findall(r"WARNING k0s_store: --(\S+) is accepted for etcd compatibility and "
                        r"ignored$", "".join(lines) + rest, re.M)  # fmt: skip
    assert sorted(warned) == sorted(given)
