"""`storage.type: etcd`: three controllers on one machine form a real etcd cluster.

Each launcher runs the Debian `etcd` with the generated etcd CA, server and
peer certificates on its own loopback ports and data directory; the second
and third join through the first one's member API. The cluster stays
writable with one member stopped. No k0s-store code runs here, so the
pure-twin pass skips it (marked slow).
"""

import json
import shutil

import pytest
from harness.processes import etcd_available

from k0s_node.etcd_cluster import SHARED_CA_FILES

pytestmark = [
    pytest.mark.skipif(not etcd_available(), reason="etcd/etcdctl binaries not installed"),
    pytest.mark.slow,
]


def _spec(name: str) -> dict:
    return {"storage": {"type": "etcd"}, "node": {"name": name}}


def _copy_cas(source, target) -> None:
    for name in SHARED_CA_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)


def test_three_controllers_form_a_cluster_that_survives_one_stop(launchers):
    first = launchers(_spec("n1"), name="n1").start()
    first.wait_line("etcd ready; try: etcdctl")
    joiners = []
    for name in ("n2", "n3"):
        node = launchers(_spec(name), name=name, extra_argv=("--join", first.client_url))
        _copy_cas(first.data_dir / "pki", node.data_dir / "pki")
        node.start().wait_line("etcd ready", timeout=90)
        joiners.append(node)
    everyone = [first, *joiners]

    listed = first.etcdctl("member", "list", "-w", "json")
    assert listed.returncode == 0, listed.stderr
    members = json.loads(listed.stdout)["members"]
    assert sorted(m["name"] for m in members) == ["n1", "n2", "n3"]
    assert sorted(m["clientURLs"][0] for m in members) == sorted(n.client_url for n in everyone)
    assert all(m["peerURLs"][0].startswith("https://127.0.0.1:") for m in members)
    endpoints = ",".join(n.client_url for n in everyone)
    health = first.etcdctl("endpoint", "health", endpoints=endpoints)
    assert health.returncode == 0, health.stderr
    assert (health.stdout + health.stderr).count(" is healthy: ") == 3
    for node in everyone:
        node.wait_for(lambda n=node: n.component("etcd")["healthy"], "etcd healthy", 30)

    # One controller stopped: two of three members keep the quorum.
    assert joiners[-1].terminate() == 0
    put = first.etcdctl("put", "survivor", "yes")
    assert put.returncode == 0, put.stderr
    got = joiners[0].etcdctl("get", "survivor", "--print-value-only")
    assert got.stdout.strip() == "yes", got.stderr


def test_join_without_the_cluster_cas_is_refused(launchers, tmp_path):
    node = launchers(_spec("n9"), name="n9", extra_argv=("--join", "https://127.0.0.1:1"))
    node.start()
    assert node.proc.wait(60) == 1
    err = node.stderr_path.read_text()
    assert "k0s-node: error: --join needs the cluster's CAs in" in err
    assert not (node.data_dir / "pki" / "ca.crt").exists()  # no stray CA was made
