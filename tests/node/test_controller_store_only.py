"""`k0s-node controller` with no kube binaries: PKI, k0s-store over mTLS, supervision.

Drives the real launcher process and reaches the store with the real
`etcdctl` through the line the launcher prints.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys

import pytest
from cryptography import x509
from harness.processes import etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcdctl not installed")


def _serial(path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_store_only_lifecycle(launchers):
    node = launchers().start()
    assert "store-only: kube-apiserver not found" in node.wait_line("store-only")
    line = node.wait_line("k0s-store ready; try: etcdctl")

    # The printed etcdctl line works as printed, and its flags reach the store.
    argv = shlex.split(line.split("try: ", 1)[1])
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert f"127.0.0.1:{node.store_port}" in shown.stdout
    assert node.etcdctl("put", "greeting", "hello").returncode == 0

    # A second launcher on the same data directory is refused in one line.
    second = subprocess.run(node.argv(), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert re.fullmatch(
        rf"k0s-node: error: another k0s-node \(pid {node.proc.pid}\) is running on "
        rf"{re.escape(str(node.data_dir))}\n",
        second.stderr,
    ), second.stderr

    # Endpoints.
    assert node.get("/healthz") == (200, "ok\n")
    code, text = node.wait_for(
        lambda: (r := node.get("/readyz"))[0] == 200 and r, "readyz", timeout=30
    )
    assert "[+]store ok" in text
    code, metrics = node.get("/metrics")
    assert code == 200
    expiry = re.search(
        r'^k0s_node_certificate_expiry_seconds\{certificate="apiserver"\} (\S+)$', metrics, re.M
    )
    assert expiry and 364 * 86400 < float(expiry.group(1)) <= 365 * 86400
    for name in ("etcd-server", "admin.conf", "etcd-ca"):
        assert f'k0s_node_certificate_expiry_seconds{{certificate="{name}"}}' in metrics
    assert 'k0s_node_component_up{component="store"} 1.0' in metrics

    # `k0s-node status`, both forms.
    base = [sys.executable, "-m", "k0s_node", "status", f"--data-dir={node.data_dir}"]

    def status_after_the_put() -> dict | None:
        as_json = subprocess.run([*base, "-o", "json"], capture_output=True, text=True, timeout=30)
        assert as_json.returncode == 0, as_json.stderr
        status = json.loads(as_json.stdout)
        # The store's figures are those of the launcher's last probe (every 0.5 s).
        return status if status["store"]["revision"] >= 2 else None

    status = node.wait_for(status_after_the_put, "a probe after the put", timeout=30)
    store = status["components"][0]
    assert (store["name"], store["state"], store["restarts"]) == ("store", "running", 0)
    assert store["healthy"] and _pid_alive(store["pid"])
    assert status["store"]["dbSize"] > 0
    assert status["missingBinaries"] == ["kube-apiserver"]
    table = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert table.returncode == 0
    assert re.search(rf"^store\s+{store['pid']}\s+running\s+\S+\s+0\s+ok$", table.stdout, re.M)
    assert "first to expire" in table.stdout

    # The store SIGKILLed: restarted with backoff, counted, data intact.
    old_pid = store["pid"]
    os.kill(old_pid, signal.SIGKILL)
    restarted = node.wait_for(
        lambda: (c := node.component("store"))["restarts"] == 1 and c["healthy"] and c,
        "store restart",
    )
    assert restarted["pid"] != old_pid
    got = node.etcdctl("get", "greeting", "--print-value-only")
    assert got.stdout.strip() == "hello", got.stderr
    log_text = (node.data_dir / "logs" / "store.log").read_text()
    assert log_text.count("k0s-node starts:") == 2

    # SIGTERM: the store stops first-in-last-out, the launcher exits 0.
    new_pid = restarted["pid"]
    assert node.terminate() == 0
    assert not _pid_alive(new_pid)
    assert not (node.data_dir / "run" / "k0s-node.json").exists()
    gone = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert (gone.returncode, gone.stderr) == (
        1,
        f"k0s-node: error: k0s-node is not running on {node.data_dir}\n",
    )


def test_health_port_in_use_is_one_line(launchers):
    node = launchers()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", node.health_port))
        busy.listen()
        done = subprocess.run(node.argv(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.endswith(
        f"k0s-node: error: spec.node.healthPort: cannot listen on 127.0.0.1:{node.health_port}: "
        "Address already in use\n"
    )
    assert not (node.data_dir / "store").exists()  # no component was started


def test_crash_then_restart_keeps_pki_and_data(launchers):
    node = launchers().start()
    node.wait_line("k0s-store ready")
    pki = node.data_dir / "pki"
    serials = {p: _serial(pki / p) for p in ("ca.crt", "etcd/server.crt", "apiserver.crt")}
    assert node.etcdctl("put", "k", "v").returncode == 0
    # The launcher SIGKILLed: the kernel stops its children and drops its lock.
    store_pid = node.component("store")["pid"]
    node.proc.kill()
    node.proc.wait()
    node.wait_for(lambda: not _pid_alive(store_pid), "store gone with its launcher", 30)

    again = node.start()
    again.wait_line("k0s-store ready")
    assert {p: _serial(pki / p) for p in serials} == serials
    assert node.etcdctl("get", "k", "--print-value-only").stdout.strip() == "v"
    # An impatient operator: Ctrl-C and SIGTERM in a burst still stop it cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM) * 5:
        node.proc.send_signal(signum)
    assert node.proc.wait(60) == 0
