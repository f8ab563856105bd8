"""`storage.type: external`: the launcher runs no datastore and watches the given one."""

import pytest
from harness.processes import etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd binary not installed")


def test_external_etcd_is_probed_with_the_given_certificates(launchers, servers, tls_files):
    etcd = servers("etcd", tls=tls_files).wait_ready()
    external = {
        "endpoints": [etcd.url],
        "caFile": str(tls_files.ca),
        "clientCertFile": str(tls_files.client_cert),
        "clientKeyFile": str(tls_files.client_key),
    }
    node = launchers({"storage": {"type": "external", "external": external}}).start()
    line = node.wait_line("external ready; try: etcdctl")
    assert f"--endpoints={etcd.url} --cacert={tls_files.ca}" in line
    _, text = node.wait_for(
        lambda: (r := node.get("/readyz"))[0] == 200 and r, "readyz", timeout=30
    )
    assert text.startswith("[+]external-etcd ok\n")
    status = node.status()
    assert [c["name"] for c in status["components"]] == ["external-etcd"]
    assert status["store"]["endpoint"] == etcd.url and status["store"]["version"].startswith("3.4")
    assert not (node.data_dir / "store").exists() and not (node.data_dir / "etcd").exists()

    etcd.stop()
    _, text = node.wait_for(
        lambda: (r := node.get("/readyz"))[0] == 503 and r, "readyz failing", timeout=30
    )
    assert "[-]external-etcd Status failed: UNAVAILABLE" in text
    assert node.terminate() == 0
