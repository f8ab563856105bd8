"""Kubeconfigs whose client certificate an outside CA signed, and konnectivity's.

Each kubeconfig is checked the way the API server would: a real TLS handshake
with the client certificate and key embedded in it, against the API server's
certificate, and the subject Kubernetes authorises by (CN user, O groups).
"""

import subprocess

import pytest
from pki_tls import Side, handshake, side_from_files

from k0s_pki import certs
from k0s_pki.cli import main
from k0s_pki.kubeconfig import parse

# The conftest cluster (so init keeps every other leaf) plus konnectivity.
CLUSTER_FLAGS = [
    "--node-name",
    "node1",
    "--advertise-address",
    "192.0.2.10",
    "--extra-san",
    "api.example.com",
    "--konnectivity",
]
KONNECTIVITY = ("konnectivity-server.conf", "system:konnectivity-server", [])
ADMIN = ("admin.conf", "kubernetes-admin", ["kubeadm:cluster-admins"])


def _run(layout, *args) -> int:
    return main([*args, "--pki-dir", str(layout.pki_dir), *CLUSTER_FLAGS])


def _check_client(layout, name, common_name, groups):
    """The kubeconfig's client authenticates to the API server as ``common_name``."""
    conf = parse(layout.kubeconfig(name).read_bytes(), name)
    cert = certs.load_certs(conf.cert_pem, name)[0]
    assert certs.common_name(cert.subject) == common_name
    assert certs.organizations(cert.subject) == groups
    assert conf.user == common_name
    assert conf.ca_pem == layout.cert("ca").read_bytes()
    apiserver = side_from_files(
        layout.cert("apiserver"), layout.key("apiserver"), layout.cert("ca")
    )
    handshake(apiserver, Side(conf.cert_pem, conf.key_pem, conf.ca_pem), "kubernetes.default.svc")
    return conf


def test_init_konnectivity_makes_a_working_kubeconfig(layout, capsys):
    assert not layout.kubeconfig("konnectivity-server.conf").exists()
    assert _run(layout, "init") == 0
    assert capsys.readouterr().out == "create konnectivity-server.conf\n"
    _check_client(layout, *KONNECTIVITY)
    assert _run(layout, "verify") == 0


def _outside_sign(csr, crt, ca_cert, ca_key) -> None:
    """What the outside CA does: sign the CSR as a client certificate, with openssl."""
    subprocess.run(
        [
            *("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key),
            *("-extfile", "/dev/stdin", "-days", "90", "-out", crt),
        ],
        input=b"extendedKeyUsage=clientAuth\n",
        check=True,
        capture_output=True,
    )


@pytest.fixture
def external_ca(layout):
    """``ca`` made external (its key moved outside); admin.conf gone. Returns the key."""
    outside_key = layout.pki_dir.parent / "outside-ca.key"
    layout.key("ca").rename(outside_key)
    layout.kubeconfig("admin.conf").unlink()
    return outside_key


def _material(layout, name):
    """(key, csr, signed cert) paths of a kubeconfig signed outside."""
    base = layout.kubeconfig(name)
    return [base.with_name(f"{base.name}.{ext}") for ext in ("key", "csr", "crt")]


def test_external_ca_kubeconfigs_from_outside_signed_certs(layout, capsys, external_ca):
    assert _run(layout, "init") == 1
    assert "admin.conf: missing, and CA ca is external" in capsys.readouterr().err
    assert _run(layout, "generate-csr") == 0
    for name, _, _ in (ADMIN, KONNECTIVITY):
        _, csr, crt = _material(layout, name)
        _outside_sign(csr, crt, layout.cert("ca"), external_ca)
    capsys.readouterr()
    assert _run(layout, "init") == 0
    assert capsys.readouterr().out == "write admin.conf\nwrite konnectivity-server.conf\n"
    for name, common_name, groups in (ADMIN, KONNECTIVITY):
        conf = _check_client(layout, name, common_name, groups)
        # Exactly what the outside CA signed, with the key made here.
        key, _, crt = _material(layout, name)
        assert conf.cert_pem == crt.read_bytes() and conf.key_pem == key.read_bytes()
    assert _run(layout, "verify") == 0
    capsys.readouterr()
    assert _run(layout, "init") == 0
    assert capsys.readouterr().out == "nothing to do\n"


def test_external_ca_refuses_a_cert_for_another_key(layout, capsys, external_ca):
    """An outside-signed certificate that does not match the key made here: one line."""
    assert _run(layout, "generate-csr") == 0
    admin_key, _, admin_crt = _material(layout, "admin.conf")
    # admin.conf.crt signed from konnectivity's CSR: right CA, wrong key.
    konnectivity_csr = _material(layout, "konnectivity-server.conf")[1]
    _outside_sign(konnectivity_csr, admin_crt, layout.cert("ca"), external_ca)
    capsys.readouterr()
    assert _run(layout, "init") == 1
    assert capsys.readouterr().err == f"k0s-pki: error: {admin_crt}: does not match {admin_key}\n"
    assert not layout.kubeconfig("admin.conf").exists()


def test_kubeconfig_client_rejected_by_a_server_of_another_ca(layout):
    """The handshake check has teeth: etcd (trusting etcd-ca only) refuses konnectivity."""
    assert _run(layout, "init") == 0
    conf = parse(layout.kubeconfig("konnectivity-server.conf").read_bytes(), "k")
    etcd = side_from_files(
        layout.cert("etcd/server"), layout.key("etcd/server"), layout.cert("etcd/ca")
    )
    with pytest.raises(OSError):  # ssl.SSLError included
        handshake(
            etcd,
            Side(conf.cert_pem, conf.key_pem, layout.cert("etcd/ca").read_bytes()),
            "localhost",
        )
