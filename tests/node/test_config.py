"""The ClusterConfig-style YAML: defaults, every key read, bad input refused with its path."""

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta

import pytest

from k0s_node.config import ConfigError, load_config, parse_config

FULL = """
apiVersion: k0s.k0sproject.io/v1beta1
kind: ClusterConfig
metadata: {name: k0s}
spec:
  api:
    {address: 127.0.0.2, port: 7443, sans: [api.example.com], extraArgs: {v: 2, profiling: false}}
  network: {serviceCIDR: 10.100.0.0/16, podCIDR: 10.200.0.0/16, clusterDomain: corp.local}
  storage:
    type: etcd
    etcd: {peerAddress: 127.0.0.3, clientPort: 3379, peerPort: 3380}
  pki: {keyType: rsa-2048, leafValidity: 90d, caValidity: 5y, renewBefore: 30d, checkInterval: 10m}
  controllerManager: {extraArgs: {node-monitor-period: 5s}}
  scheduler: {extraArgs: {v: "3"}}
  node: {name: cp1, healthPort: 0}
"""


def test_defaults_without_a_file():
    spec = load_config(None).spec
    assert (spec.api.address, spec.api.port) == ("127.0.0.1", 6443)
    assert spec.storage.type == "k0s-store" and spec.storage.store.client_port == 2379
    assert spec.pki.renew_before == timedelta(days=90)


def test_every_key_is_read(tmp_path):
    path = tmp_path / "k0s.yaml"
    path.write_text(FULL)
    spec = load_config(path).spec
    assert spec.api.sans == ("api.example.com",)
    assert spec.api.extra_args == {"v": "2", "profiling": "false"}
    assert spec.network.cluster_domain == "corp.local"
    assert spec.storage.etcd.peer_address == "127.0.0.3"
    assert spec.pki.key_type == "rsa-2048" and spec.pki.ca_validity == timedelta(days=5 * 365)
    assert spec.pki.check_interval == timedelta(minutes=10)
    assert spec.controller_manager.extra_args == {"node-monitor-period": "5s"}
    assert (spec.node.name, spec.node.health_port) == ("cp1", 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"spec": {"api": {"adress": "1.2.3.4"}}}, "spec.api.adress: unknown key"),
        ({"sepc": {}}, "sepc: unknown key"),
        ({"kind": "Cluster"}, "kind: invalid value 'Cluster'"),
        ({"spec": {"api": {"port": 70000}}}, "spec.api.port: invalid port 70000"),
        ({"spec": {"api": {"port": "6443"}}}, "spec.api.port: invalid port '6443'"),
        ({"spec": {"api": {"address": "example.com"}}}, "spec.api.address: invalid IP address"),
        ({"spec": {"api": {"extraArgs": {"--v": 2}}}}, "spec.api.extraArgs: invalid flag name"),
        ({"spec": {"api": {"sans": "a.example"}}}, "spec.api.sans: want a list of strings"),
        ({"spec": {"network": {"serviceCIDR": "10.96.0.1/12"}}}, "spec.network.serviceCIDR:"),
        ({"spec": {"storage": {"type": "kine"}}}, "spec.storage.type: invalid value 'kine'"),
        ({"spec": {"storage": {"etcd": {"bogus": 1}}}}, "spec.storage.etcd.bogus: unknown key"),
        ({"spec": {"pki": {"leafValidity": "1 year"}}}, "spec.pki.leafValidity: invalid duration"),
        ({"spec": {"pki": {"keyType": "dsa"}}}, "spec.pki.keyType: invalid value 'dsa'"),
        ({"spec": {"pki": {"renewBefore": "2y"}}}, "spec.pki.renewBefore: must be shorter"),
        ({"spec": {"node": []}}, "spec.node: want a mapping"),
        ({"spec": {"storage": {"type": "external"}}}, "spec.storage.external.endpoints: required"),
        (
            {"spec": {"storage": {"type": "external", "external": {"endpoints": ["https://x"]}}}},
            "spec.storage.external.caFile: required",
        ),
    ],
)
def test_bad_input_names_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value).startswith(message), str(info.value)


def test_cli_refuses_a_bad_file_in_one_line(tmp_path):
    path = tmp_path / "k0s.yaml"
    path.write_text("spec:\n  network:\n    podCIDR: nonsense\n")
    done = subprocess.run(
        [sys.executable, "-m", "k0s_node", "controller", f"--data-dir={tmp_path / 'd'}",
         f"--config={path}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("k0s-node: error: spec.network.podCIDR: invalid CIDR")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()  # nothing created before the config is good


def test_unwritable_data_dir_is_one_line(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    base = tempfile.mkdtemp()  # root's, 0700 -> 0755: readable, not writable by nobody
    os.chmod(base, 0o755)
    try:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "k0s_node", "controller", f"--data-dir={base}/node"],
            capture_output=True, text=True, timeout=60, cwd=base,
        )  # fmt: skip
    finally:
        shutil.rmtree(base)
    assert done.returncode == 1
    assert done.stderr == (f"k0s-node: error: [Errno 13] Permission denied: '{base}/node'\n"), (
        done.stderr
    )
