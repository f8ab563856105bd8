"""Certificate renewal: at start within the window, and in the background."""

import socket
import ssl
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from k0s_node.config import parse_config
from k0s_node.pki import ensure_pki
from k0s_pki.catalog import ClusterConfig
from k0s_pki.layout import Layout
from k0s_pki.provision import plan_init


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_start_renews_leaves_within_the_window_and_keeps_cas(tmp_path):
    layout = Layout.at(tmp_path / "pki")
    plan_init(layout, ClusterConfig(node_name="n1", leaf_validity=timedelta(days=20))).apply()
    ca_before = _cert(layout.cert("ca")).serial_number
    old = _cert(layout.cert("apiserver"))

    config = parse_config({"spec": {"node": {"name": "n1"}, "pki": {"renewBefore": "30d"}}})
    changes = ensure_pki(layout, config)

    assert "rotate apiserver" in changes and "rotate admin.conf" in changes
    assert not any(c.startswith("create") for c in changes)
    new = _cert(layout.cert("apiserver"))
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc - datetime.now(UTC) > timedelta(days=364)
    assert _cert(layout.cert("ca")).serial_number == ca_before
    # Nothing due any more: a second start changes nothing.
    assert ensure_pki(layout, config) == []


def _served_cert(port: int, pki) -> bytes:
    context = ssl.create_default_context(cafile=str(pki / "etcd/ca.crt"))
    context.load_cert_chain(pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.getpeercert(binary_form=True)


def test_background_renewal_restarts_the_store_with_new_certificates(launchers):
    # Leaves live 40 s and are renewed within 30 s of expiry: 10 s after start.
    node = launchers({"pki": {"leafValidity": "40s", "renewBefore": "30s", "checkInterval": "1s"}})
    node.start()
    node.wait_line("k0s-store ready")
    pki = node.data_dir / "pki"
    first = _cert(pki / "etcd/server.crt")
    assert _served_cert(node.store_port, pki) == first.public_bytes(Encoding.DER)
    assert node.etcdctl("put", "k", "v").returncode == 0

    node.wait_for(
        lambda: (c := node.component("store"))["restarts"] >= 1 and c["healthy"],
        "store restarted after renewal",
        timeout=40,
    )
    renewed = _cert(pki / "etcd/server.crt")
    assert renewed.serial_number != first.serial_number
    served = _served_cert(node.store_port, pki)
    assert x509.load_der_x509_certificate(served).serial_number in {
        renewed.serial_number,
        _cert(pki / "etcd/server.crt").serial_number,  # a second renewal may have landed
    }
    got = node.etcdctl("get", "k", "--print-value-only")
    assert got.stdout.strip() == "v", got.stderr
    assert "renewed certificates:" in node.stderr_path.read_text()
    assert node.terminate() == 0
