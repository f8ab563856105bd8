"""Supervision details: backoff between restarts, and who restarts after a renewal."""

import itertools
import time
from datetime import timedelta

from k0s_node import supervisor
from k0s_node.config import parse_config
from k0s_node.node import Controller
from k0s_node.paths import NodePaths
from k0s_node.supervisor import Child, ComponentSpec
from k0s_pki.catalog import ClusterConfig
from k0s_pki.provision import plan_init


def test_a_crashing_child_restarts_with_doubling_backoff(tmp_path):
    log = tmp_path / "crash.log"
    child = Child(ComponentSpec("crash", ["sh", "-c", "echo boom; exit 3"], log, lambda: None))
    assert child.backoff == supervisor.FIRST_BACKOFF_S == 1.0
    child.backoff = 0.2  # the same doubling, faster
    child.start()
    starts = [time.monotonic()]
    deadline = time.monotonic() + 10
    while child.restarts < 3 and time.monotonic() < deadline:
        before = child.restarts
        child.poll(time.monotonic())
        if child.restarts != before:
            starts.append(time.monotonic())
        time.sleep(0.01)
    assert child.restarts == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.2 s, 0.4 s, 0.8 s (plus the moment the shell takes to exit)
    for gap, wanted in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert wanted <= gap < wanted + 1.0, gaps
    assert child.last_exit == 3
    assert log.read_text().count("boom") >= 3
    assert log.read_text().count("k0s-node starts: sh -c") == 4
    child.stop()
    assert child.state() == "stopped"


def test_renewal_restarts_exactly_the_components_using_renewed_leaves(tmp_path):
    paths = NodePaths.at(tmp_path)
    # Leaves valid 20 days: all due under a 30-day window.
    plan_init(paths.pki, ClusterConfig(node_name="n1", leaf_validity=timedelta(days=20))).apply()
    config = parse_config({"spec": {"node": {"name": "n1"}, "pki": {"renewBefore": "30d"}}})
    controller = Controller(config, paths)
    names = ("store", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "other")
    certs = {
        "store": {"etcd-server", "etcd-peer"},
        "kube-apiserver": {"apiserver", "apiserver-etcd-client"},
        "kube-controller-manager": {"controller-manager.conf"},
        "kube-scheduler": {"scheduler.conf"},
        "other": set(),
    }
    controller.children = [
        Child(ComponentSpec(n, ["true"], tmp_path / f"{n}.log", lambda: None, frozenset(certs[n])))
        for n in names
    ]
    controller._renew()

    assert set(controller._restart_requests) == set(names) - {"other"}
    assert "apiserver" in controller._restart_requests["kube-apiserver"]
    controller._restart_requests.clear()
    controller._renew()  # nothing due any more
    assert controller._restart_requests == {}
