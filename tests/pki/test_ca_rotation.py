"""CA rotation without downtime: handshakes succeed at every step, mixed states included.

Each phase is snapshotted as the files a server and a client would read at
that moment. Phase 0 is before ``prepare``, 1 after ``prepare``, 2 after
``switch``, 3 after ``finish``. A server at phase i and a client at phase j
(each reloaded its files at a different time) must handshake whenever
|i - j| <= 1: that is every state a correctly run rotation passes through.
Cross-signing also covers a peer that missed ``prepare`` entirely (0 vs 2).
"""

import ssl

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pki_tls import Side, handshake

from k0s_pki.ca_rotation import plan_phase, status
from k0s_pki.check import verify
from k0s_pki.cli import main
from k0s_pki.errors import PkiError
from k0s_pki.files import read_file
from k0s_pki.keys import load_private_key, load_public_keys
from k0s_pki.kubeconfig import parse
from k0s_pki.provision import plan_init

PHASES = ("prepare", "switch", "finish")


def _files_side(layout, stem, ca_stem) -> Side:
    return Side(
        layout.cert(stem).read_bytes(),
        layout.key(stem).read_bytes(),
        layout.cert(ca_stem).read_bytes(),
    )


def _kubeconfig_side(layout, name) -> Side:
    conf = parse(layout.kubeconfig(name).read_bytes(), name)
    return Side(conf.cert_pem, conf.key_pem, conf.ca_pem)


# (CA, server side reader, client side reader, hostname)
SCENARIOS = {
    "etcd-ca": (
        lambda lo: _files_side(lo, "etcd/server", "etcd/ca"),
        lambda lo: _files_side(lo, "apiserver-etcd-client", "etcd/ca"),
        "localhost",
    ),
    "ca": (
        lambda lo: _files_side(lo, "apiserver", "ca"),
        lambda lo: _kubeconfig_side(lo, "admin.conf"),
        "kubernetes.default.svc",
    ),
    "front-proxy-ca": (
        # The API server checks front-proxy clients against front-proxy-ca.crt;
        # the client (an aggregated-API proxy) checks the server against ca.crt.
        lambda lo: _files_side(lo, "apiserver", "front-proxy-ca"),
        lambda lo: Side(
            lo.cert("front-proxy-client").read_bytes(),
            lo.key("front-proxy-client").read_bytes(),
            lo.cert("ca").read_bytes(),
        ),
        "kubernetes.default.svc",
    ),
}


def _snapshots(layout, config, name):
    server_of, client_of, _ = SCENARIOS[name]
    snaps = [(server_of(layout), client_of(layout))]
    for phase in PHASES:
        plan_phase(layout, name, phase, config).apply()
        assert verify(layout, config) == []
        snaps.append((server_of(layout), client_of(layout)))
    return snaps


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_handshakes_at_every_step(layout, config, name):
    snaps = _snapshots(layout, config, name)
    hostname = SCENARIOS[name][2]
    for i, (server, _) in enumerate(snaps):
        for j, (_, client) in enumerate(snaps):
            if abs(i - j) <= 1:
                handshake(server, client, hostname)
    # Cross-signing: a peer that never reloaded after prepare still works after switch.
    handshake(snaps[2][0], snaps[0][1], hostname)
    handshake(snaps[0][0], snaps[2][1], hostname)


def test_finish_drops_the_old_ca(layout, config):
    """After finish, a peer still on an old leaf is refused: finish comes last."""
    snaps = _snapshots(layout, config, "etcd-ca")
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(snaps[3][0], snaps[1][1], "localhost")
    bundle = layout.cert("etcd/ca").read_bytes()
    assert bundle.count(b"BEGIN CERTIFICATE") == 1
    assert layout.cert("etcd/server").read_bytes().count(b"BEGIN CERTIFICATE") == 1
    assert status(layout, "etcd-ca") == "etcd-ca: no rotation in progress"
    archived = list((layout.pki_dir / "backup").glob("*-etcd-ca-rotation/old.key"))
    assert len(archived) == 1


def test_phases_must_come_in_order(layout, config):
    with pytest.raises(PkiError, match="cannot switch etcd-ca: rotation is not started"):
        plan_phase(layout, "etcd-ca", "switch", config)
    plan_phase(layout, "etcd-ca", "prepare", config).apply()
    assert "prepared since" in status(layout, "etcd-ca")
    with pytest.raises(PkiError, match="cannot finish"):
        plan_phase(layout, "etcd-ca", "finish", config)
    before = layout.cert("etcd/ca").read_bytes()
    plan_phase(layout, "etcd-ca", "prepare", config).apply()  # re-run after a crash: same CA
    assert layout.cert("etcd/ca").read_bytes() == before


def _sign(key, data):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        from cryptography.hazmat.primitives import hashes

        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise AssertionError("ECDSA expected")


def _verifies(pub_file, data, signature) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes

    for pub in load_public_keys(pub_file, "sa.pub"):
        try:
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            continue
    return False


def test_service_account_key_rotation(layout, config):
    """A token signed with sa.key at phase i verifies with sa.pub of phase j, |i-j| <= 1."""
    token = b"header.payload"
    snaps = []
    for phase in (None, *PHASES):
        if phase:
            plan_phase(layout, "sa", phase, config).apply()
        key = load_private_key(read_file(layout.sa_key), "sa.key")
        snaps.append((_sign(key, token), layout.sa_pub.read_bytes()))
    for i, (signature, _) in enumerate(snaps):
        for j, (_, pub) in enumerate(snaps):
            # Phases 0 and 1 sign with the old key; sa.pub holds it until finish (3).
            expected = j <= 2 if i <= 1 else j >= 1
            assert _verifies(pub, token, signature) == expected, (i, j)
            if abs(i - j) <= 1:
                assert expected


def _snapshot(root) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _corrupt_pem(layout):
    layout.cert("etcd/peer").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    return "corrupt PEM certificate"


def _key_of_another_leaf(layout):
    layout.key("etcd/peer").write_bytes(layout.key("etcd/server").read_bytes())
    return "private key does not match the certificate"


def _leaf_of_another_ca(layout):
    # A valid pair, but issued by ca rather than by etcd-ca.
    layout.cert("etcd/peer").write_bytes(layout.cert("apiserver").read_bytes())
    layout.key("etcd/peer").write_bytes(layout.key("apiserver").read_bytes())
    return "etcd-peer (" + str(layout.cert("etcd/peer")) + ") is not issued by the CA being rotated"


@pytest.mark.parametrize("breakage", [_corrupt_pem, _key_of_another_leaf, _leaf_of_another_ca])
def test_prepare_refuses_a_broken_leaf_one_line_nothing_changed(layout, capsys, breakage):
    """What switch could not carry through stops prepare, before any write."""
    expected = breakage(layout)
    snap = _snapshot(layout.pki_dir.parent)
    assert (
        main(["rotate-ca", "etcd-ca", "--phase", "prepare", "--pki-dir", str(layout.pki_dir)]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("k0s-pki: error: cannot prepare etcd-ca: ")
    assert expected in err and err.count("\n") == 1
    assert _snapshot(layout.pki_dir.parent) == snap
    assert status(layout, "etcd-ca") == "etcd-ca: no rotation in progress"


def test_prepare_after_init_reissued_a_leaf_of_another_ca(layout, config):
    """The way out the refusal points at works: init re-issues, the rotation runs."""
    _leaf_of_another_ca(layout)
    plan_init(layout, config).apply()
    for phase in PHASES:
        plan_phase(layout, "etcd-ca", phase, config).apply()
    assert verify(layout, config) == []


def test_service_account_status_speaks_of_keys(layout, config):
    plan_phase(layout, "sa", "prepare", config).apply()
    prepared = status(layout, "sa")
    assert "next: restart the API servers (to load the new sa.pub)" in prepared
    plan_phase(layout, "sa", "switch", config).apply()
    switched = status(layout, "sa")
    assert "controller-manager (to sign with the new sa.key)" in switched
    assert "tokens to be refreshed" in switched
    for line in (prepared, switched):
        assert "leaves" not in line and line.endswith(("--phase switch", "--phase finish"))
    plan_phase(layout, "etcd-ca", "prepare", config).apply()
    assert status(layout, "etcd-ca").endswith(
        "next: reload every component, then run --phase switch"
    )
