"""Every certificate of a fresh PKI works in a real TLS handshake, and only with its CA."""

import ssl

import pytest
from pki_tls import Side, handshake, side_from_files

from k0s_pki.kubeconfig import parse


def _pair(layout, stem, ca_stem) -> Side:
    return side_from_files(layout.cert(stem), layout.key(stem), layout.cert(ca_stem))


def _kubeconfig_side(layout, name) -> Side:
    conf = parse(layout.kubeconfig(name).read_bytes(), name)
    return Side(conf.cert_pem, conf.key_pem, conf.ca_pem)


SERVER_NAMES = [
    ("apiserver", "ca", "kubernetes.default.svc", "127.0.0.1"),
    ("apiserver", "ca", "kubernetes.default.svc.cluster.local", "127.0.0.1"),
    ("apiserver", "ca", "kubernetes", "127.0.0.1"),
    ("apiserver", "ca", "10.96.0.1", "127.0.0.1"),
    ("apiserver", "ca", "192.0.2.10", "127.0.0.1"),
    ("apiserver", "ca", "127.0.0.1", "127.0.0.1"),
    ("apiserver", "ca", "node1", "127.0.0.1"),
    ("apiserver", "ca", "api.example.com", "127.0.0.1"),
    ("etcd/server", "etcd/ca", "localhost", "127.0.0.1"),
    ("etcd/server", "etcd/ca", "127.0.0.1", "127.0.0.1"),
    ("etcd/server", "etcd/ca", "::1", "::1"),
    ("etcd/peer", "etcd/ca", "node1", "127.0.0.1"),
    ("etcd/peer", "etcd/ca", "192.0.2.10", "127.0.0.1"),
]


@pytest.mark.parametrize(("server", "ca", "hostname", "address"), SERVER_NAMES)
def test_server_certificate_verified_by_name(layout, server, ca, hostname, address):
    client = "apiserver-etcd-client" if ca == "etcd/ca" else "apiserver-kubelet-client"
    handshake(_pair(layout, server, ca), _pair(layout, client, ca), hostname, address)


@pytest.mark.parametrize(
    ("server", "ca", "hostname"),
    [("apiserver", "ca", "evil.example.com"), ("etcd/server", "etcd/ca", "10.0.0.99")],
)
def test_server_certificate_rejected_for_other_names(layout, server, ca, hostname):
    client = "apiserver-etcd-client" if ca == "etcd/ca" else "apiserver-kubelet-client"
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(_pair(layout, server, ca), _pair(layout, client, ca), hostname)


CLIENTS = [
    ("apiserver", "ca", "kubernetes.default.svc", "apiserver-kubelet-client", "ca"),
    ("apiserver", "front-proxy-ca", "localhost", "front-proxy-client", "front-proxy-ca"),
    ("etcd/server", "etcd/ca", "localhost", "apiserver-etcd-client", "etcd/ca"),
    ("etcd/server", "etcd/ca", "localhost", "etcd/healthcheck-client", "etcd/ca"),
    ("etcd/server", "etcd/ca", "localhost", "etcd/peer", "etcd/ca"),
    ("etcd/peer", "etcd/ca", "node1", "etcd/server", "etcd/ca"),
]


@pytest.mark.parametrize(("server", "server_trust", "hostname", "client", "ca"), CLIENTS)
def test_client_certificate_accepted(layout, server, server_trust, hostname, client, ca):
    server_side = side_from_files(
        layout.cert(server), layout.key(server), layout.cert(server_trust)
    )
    client_side = Side(
        layout.cert(client).read_bytes(),
        layout.key(client).read_bytes(),
        layout.cert("ca" if server == "apiserver" else "etcd/ca").read_bytes(),
    )
    handshake(server_side, client_side, hostname)


@pytest.mark.parametrize(
    "kubeconfig", ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"]
)
def test_kubeconfig_client_talks_to_apiserver(layout, kubeconfig):
    handshake(
        _pair(layout, "apiserver", "ca"),
        _kubeconfig_side(layout, kubeconfig),
        "kubernetes.default.svc",
    )


@pytest.mark.parametrize(
    ("client", "client_ca"),
    [("apiserver-etcd-client", "etcd/ca"), ("front-proxy-client", "front-proxy-ca")],
)
def test_client_of_another_ca_rejected(layout, client, client_ca):
    """The API server (trusting ca) refuses a client certificate of another CA."""
    client_side = Side(
        layout.cert(client).read_bytes(),
        layout.key(client).read_bytes(),
        layout.cert("ca").read_bytes(),
    )
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(_pair(layout, "apiserver", "ca"), client_side, "kubernetes.default.svc")


def test_server_of_another_ca_rejected(layout):
    """A client trusting etcd-ca refuses the API server's certificate (issued by ca)."""
    client_side = _pair(layout, "apiserver-etcd-client", "etcd/ca")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(_pair(layout, "apiserver", "ca"), client_side, "localhost")


def test_rsa_keys_handshake(tmp_path, config):
    """RSA keys work too (one test: RSA generation is slow)."""
    from dataclasses import replace

    from k0s_pki.layout import Layout
    from k0s_pki.provision import plan_init

    layout = Layout.at(tmp_path / "pki")
    plan_init(layout, replace(config, key_type="rsa-2048")).apply()
    handshake(
        _pair(layout, "etcd/server", "etcd/ca"),
        _pair(layout, "apiserver-etcd-client", "etcd/ca"),
        "127.0.0.1",
    )
