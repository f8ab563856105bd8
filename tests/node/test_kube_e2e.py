"""End to end: the launcher brings up k0s-store and the real kube-apiserver.

Driven with the python `kubernetes` client through the admin kubeconfig the
launcher wrote: readiness, namespace, configmaps, a CRD and custom objects,
a paginated list, a live watch; the store SIGKILLed and restarted by the
launcher with every object intact; SIGTERM exits 0; then `k0s-store migrate`
moves the store into a real etcd and a node on `storage.type: external`
serves every object from there. kube-controller-manager
and kube-scheduler are stand-in scripts that record their arguments, which
are checked, and whose kubeconfigs are proved to authenticate.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from harness.processes import ServerProcess
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from launcher import KUBE_APISERVER

pytestmark = [
    pytest.mark.skipif(
        not os.access(KUBE_APISERVER, os.X_OK),
        reason=f"kube-apiserver not found at {KUBE_APISERVER} (set K0S_KUBE_APISERVER)",
    ),
    pytest.mark.slow,
]

STAND_IN = """#!/bin/sh
printf '%s\\n' "$@" > "$0.args"
exec sleep 600
"""
NS = "e2e"
CONFIGMAPS = 25


def _install_bin_dir(bin_dir) -> None:
    (bin_dir / "kube-apiserver").symlink_to(KUBE_APISERVER)
    for name in ("kube-controller-manager", "kube-scheduler"):
        script = bin_dir / name
        script.write_text(STAND_IN)
        script.chmod(0o755)


def _flags(path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line[2:].split("=", 1) for line in lines)


def _crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def _retry(action, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (ApiException, OSError, Exception) as exc:  # urllib3 errors too
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing: {exc}") from exc
            time.sleep(0.3)


def test_control_plane_end_to_end(launchers, servers, tls_files):
    node = launchers()
    _install_bin_dir(node.bin_dir)
    node.start()
    node.wait_line("k0s-store ready")
    node.wait_line("kube-apiserver ready; try: kubectl --kubeconfig", timeout=90)
    admin = node.data_dir / "admin.conf"
    api = config.new_client_from_config(config_file=str(admin))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    # Ready, and admin.conf (group kubeadm:cluster-admins) may act at once.
    reply = api.rest_client.pool_manager.request("GET", api.configuration.host + "/readyz")
    assert (reply.status, reply.data) == (200, b"ok")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    for i in range(CONFIGMAPS):
        core.create_namespaced_config_map(
            NS,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i:02}"), data={"i": str(i)}),
        )
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(_crd())
    _retry(
        lambda: custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets"),
        "CRD served",
    )
    for name in ("alpha", "beta", "gamma"):
        custom.create_namespaced_custom_object(
            "example.com", "v1", NS, "widgets",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name},
             "spec": {"size": len(name)}},
        )  # fmt: skip

    # Paginated list: pages of 10 with continue tokens, every object once.
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(NS, limit=10, _continue=token)
        names += [cm.metadata.name for cm in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and names == [f"cm-{i:02}" for i in range(CONFIGMAPS)]

    # A live watch sees a change made after it started.
    events: queue.Queue = queue.Queue()
    start_rv = core.list_namespaced_config_map(NS).metadata.resource_version
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(
            core.list_namespaced_config_map, NS, resource_version=start_rv, timeout_seconds=20
        ):
            events.put((event["type"], event["object"].metadata.name, event["object"].data))
            return  # the first event is the one awaited; leaving closes the stream

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)
    core.patch_namespaced_config_map("cm-07", NS, {"data": {"i": "seven"}})
    assert events.get(timeout=15) == ("MODIFIED", "cm-07", {"i": "seven"})

    # Controller-manager and scheduler got kubeadm's flags and working kubeconfigs.
    cm_flags = _flags(node.bin_dir / "kube-controller-manager.args")
    d, pki = node.data_dir, node.data_dir / "pki"
    assert cm_flags["kubeconfig"] == str(d / "controller-manager.conf")
    assert cm_flags["authentication-kubeconfig"] == cm_flags["kubeconfig"]
    assert cm_flags["cluster-signing-cert-file"] == str(pki / "ca.crt")
    assert cm_flags["cluster-signing-key-file"] == str(pki / "ca.key")
    assert cm_flags["service-account-private-key-file"] == str(pki / "sa.key")
    assert cm_flags["root-ca-file"] == str(pki / "ca.crt")
    assert cm_flags["requestheader-client-ca-file"] == str(pki / "front-proxy-ca.crt")
    assert cm_flags["service-cluster-ip-range"] == "10.96.0.0/12"
    assert cm_flags["cluster-cidr"] == "10.244.0.0/16"
    assert cm_flags["use-service-account-credentials"] == "true"
    sched_flags = _flags(node.bin_dir / "kube-scheduler.args")
    assert sched_flags["kubeconfig"] == str(d / "scheduler.conf")
    assert sched_flags["leader-elect"] == "true"
    for conf, user in (
        (cm_flags["kubeconfig"], "system:kube-controller-manager"),
        (sched_flags["kubeconfig"], "system:kube-scheduler"),
    ):
        whoami = client.AuthenticationV1Api(config.new_client_from_config(config_file=conf))
        review = whoami.create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status.user_info.username == user

    # The store SIGKILLed: the launcher restarts it, the apiserver recovers intact.
    store_pid = node.component("store")["pid"]
    os.kill(store_pid, signal.SIGKILL)
    node.wait_for(lambda: node.component("store")["restarts"] == 1, "store restarted")
    after = _retry(lambda: core.list_namespaced_config_map(NS), "list after store restart", 60)
    assert sorted(cm.metadata.name for cm in after.items) == names
    assert next(cm for cm in after.items if cm.metadata.name == "cm-07").data == {"i": "seven"}
    widgets = custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert {w["metadata"]["name"]: w["spec"]["size"] for w in widgets["items"]} == {
        "alpha": 5, "beta": 4, "gamma": 5,
    }  # fmt: skip
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after-restart"))
    )
    assert node.component("kube-apiserver")["restarts"] == 0

    pids = [c["pid"] for c in node.status()["components"]]
    assert node.terminate() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    stops = re.findall(r"k0s_node: (\S+) stopped \(", node.stderr_path.read_text())
    assert stops == ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "store"]

    # Outgrowing one machine: `k0s-store migrate` copies the store into a real
    # etcd (mutual TLS), and a node on `storage.type: external` serves every object.
    etcd = servers("etcd", tls=tls_files).wait_ready()
    source = ServerProcess("ours", node.workdir / "migrate-source")
    source.data_dir = node.data_dir / "store"  # the launcher's store, served plainly
    try:
        source.start().wait_ready()
        tls = [f"--to-cacert={tls_files.ca}", f"--to-cert={tls_files.client_cert}",
               f"--to-key={tls_files.client_key}"]  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "k0s_store", "migrate", f"--from={source.url}",
             f"--to={etcd.url}", "--quiet", *tls],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        source.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copied and verified ")
    external = {"endpoints": [etcd.url], "caFile": str(tls_files.ca),
                "clientCertFile": str(tls_files.client_cert),
                "clientKeyFile": str(tls_files.client_key)}  # fmt: skip
    moved = launchers({"storage": {"type": "external", "external": external}}, name="moved")
    (moved.bin_dir / "kube-apiserver").symlink_to(KUBE_APISERVER)
    moved.start().wait_line("kube-apiserver ready", timeout=90)
    api2 = config.new_client_from_config(config_file=str(moved.data_dir / "admin.conf"))
    core2, custom2 = client.CoreV1Api(api2), client.CustomObjectsApi(api2)
    listed = core2.list_namespaced_config_map(NS)
    assert sorted(cm.metadata.name for cm in listed.items) == sorted([*names, "after-restart"])
    widgets = custom2.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert sorted(w["metadata"]["name"] for w in widgets["items"]) == ["alpha", "beta", "gamma"]
    assert moved.terminate() == 0
