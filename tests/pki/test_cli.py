"""``k0s-pki`` commands: check-expiration, rotate, external CA, kubeconfigs, bad input."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pki_tls import Side, handshake, side_from_files

from k0s_pki import certs
from k0s_pki.authority import load_authority
from k0s_pki.catalog import ca_spec
from k0s_pki.cli import main
from k0s_pki.files import read_file
from k0s_pki.kubeconfig import parse


def run(layout, *args) -> int:
    return main([*args, "--pki-dir", str(layout.pki_dir)])


def cert_of(layout, stem):
    return certs.load_certs(read_file(layout.cert(stem)), stem)[0]


def snapshot(root) -> dict:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_check_expiration_table_json_and_status(layout, capsys):
    assert run(layout, "check-expiration") == 0
    out = capsys.readouterr().out
    header = (
        "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY"
    )
    assert out.startswith(header)
    assert "\netcd-server                " in out and "364d" in out and "9y" in out
    assert "\nCERTIFICATE AUTHORITY   EXPIRES" in out
    assert run(layout, "check-expiration", "--warn-within", "400d") == 1
    capsys.readouterr()
    assert run(layout, "check-expiration", "-o", "json") == 0
    data = json.loads(capsys.readouterr().out)
    names = {c["name"] for c in data["certificates"]}
    assert {"apiserver", "etcd-server", "admin.conf", "scheduler.conf"} <= names
    assert {c["name"] for c in data["certificateAuthorities"]} == {
        "ca",
        "etcd-ca",
        "front-proxy-ca",
    }


def test_check_expiration_expired_exits_2(layout, capsys):
    authority = load_authority(layout, ca_spec("etcd-ca"))
    old = cert_of(layout, "etcd/peer")
    from k0s_pki.files import read_file as rf
    from k0s_pki.keys import load_private_key

    key = load_private_key(rf(layout.key("etcd/peer")), "k")
    expired = certs.issue_leaf(
        authority.signer,
        authority.key,
        key.public_key(),
        old.subject,
        [],
        certs.Usage.SERVER_AND_CLIENT,
        timedelta(days=1),
        datetime.now(UTC) - timedelta(days=5),
    )
    layout.cert("etcd/peer").write_bytes(certs.certs_pem([expired]))
    assert run(layout, "check-expiration") == 2
    assert "<invalid>" in capsys.readouterr().out


def test_rotate_keeps_subject_and_sans_backs_up_and_kubeconfigs_follow(layout, capsys):
    before = {s: cert_of(layout, s) for s in ("apiserver", "etcd/server")}
    admin_before = parse(layout.kubeconfig("admin.conf").read_bytes(), "admin.conf")
    old_key = layout.key("apiserver").read_bytes()
    assert run(layout, "rotate", "all") == 0
    out = capsys.readouterr().out
    assert "rotate admin.conf" in out and "backed up in" in out
    for stem, old in before.items():
        new = cert_of(layout, stem)
        assert new.subject == old.subject
        assert certs.san_strings(new) == certs.san_strings(old)
        assert new.serial_number != old.serial_number
    assert layout.key("apiserver").read_bytes() != old_key
    backup = next((layout.pki_dir / "backup").iterdir())
    assert (backup / "apiserver.key").read_bytes() == old_key
    assert (backup / "admin.conf").exists()
    admin = parse(layout.kubeconfig("admin.conf").read_bytes(), "admin.conf")
    assert admin.cert_pem != admin_before.cert_pem and admin.server == admin_before.server
    handshake(
        side_from_files(layout.cert("apiserver"), layout.key("apiserver"), layout.cert("ca")),
        Side(admin.cert_pem, admin.key_pem, admin.ca_pem),
        "kubernetes.default.svc",
    )


def test_rotate_adds_configured_sans_and_filters(layout, capsys):
    old_peer = cert_of(layout, "etcd/peer")
    assert (
        run(
            layout,
            "rotate",
            "apiserver",
            "--extra-san",
            "new.example.com",
            "--node-name",
            "node1",
            "--advertise-address",
            "192.0.2.10",
        )
        == 0
    )
    sans = certs.san_strings(cert_of(layout, "apiserver"))
    assert "new.example.com" in sans and "api.example.com" in sans
    assert cert_of(layout, "etcd/peer").serial_number == old_peer.serial_number
    capsys.readouterr()
    assert run(layout, "rotate", "--expiring-within", "30d") == 0
    assert capsys.readouterr().out == "nothing to do\n"
    snap = snapshot(layout.pki_dir)
    assert run(layout, "rotate", "--dry-run") == 0
    assert snapshot(layout.pki_dir) == snap


def test_init_keeps_what_is_valid(layout, capsys):
    snap = snapshot(layout.pki_dir.parent)
    assert (
        run(
            layout,
            "init",
            "--node-name",
            "node1",
            "--advertise-address",
            "192.0.2.10",
            "--extra-san",
            "api.example.com",
        )
        == 0
    )
    assert capsys.readouterr().out == "nothing to do\n"
    assert snapshot(layout.pki_dir.parent) == snap


def test_external_ca_and_generate_csr(tmp_path, capsys):
    pki = tmp_path / "pki"
    args = ["--pki-dir", str(pki), "--node-name", "node1"]
    assert main(["init", *args]) == 0
    (pki / "etcd" / "ca.key").rename(tmp_path / "outside-etcd-ca.key")
    for stem in ("server", "peer", "healthcheck-client"):
        (pki / "etcd" / f"{stem}.crt").unlink()
        (pki / "etcd" / f"{stem}.key").unlink()
    capsys.readouterr()
    assert main(["init", *args]) == 1
    assert "etcd-server: missing, and CA etcd-ca is external" in capsys.readouterr().err
    assert main(["generate-csr", *args]) == 0
    for stem in ("server", "peer", "healthcheck-client"):
        csr = pki / "etcd" / f"{stem}.csr"
        # The outside CA signs with openssl.
        subprocess.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                pki / "etcd" / "ca.crt",
                "-CAkey",
                tmp_path / "outside-etcd-ca.key",
                "-copy_extensions",
                "copy",
                "-extfile",
                "/dev/stdin",
                "-days",
                "90",
                "-out",
                pki / "etcd" / f"{stem}.crt",
            ],
            input=b"extendedKeyUsage=serverAuth,clientAuth\n",
            check=True,
            capture_output=True,
        )
    assert main(["init", *args]) == 0
    assert main(["verify", *args]) == 0
    assert main(["check-expiration", "--pki-dir", str(pki)]) == 0
    out = capsys.readouterr().out
    assert "\netcd-ca                 " in out and out.rstrip().endswith("yes")
    assert main(["rotate", "etcd-server", *args]) == 1
    assert "CA etcd-ca is external" in capsys.readouterr().err


def test_kubeconfig_create(layout, capsys):
    out = layout.pki_dir.parent / "alice.conf"
    assert (
        run(
            layout,
            "kubeconfig",
            "create",
            "alice",
            "--groups",
            "dev,ops",
            "--expires-after",
            "2d",
            "--out",
            str(out),
        )
        == 0
    )
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    conf = parse(out.read_bytes(), "alice.conf")
    cert = certs.load_certs(conf.cert_pem, "alice")[0]
    assert certs.common_name(cert.subject) == "alice"
    assert certs.organizations(cert.subject) == ["dev", "ops"]
    assert cert.not_valid_after_utc - datetime.now(UTC) < timedelta(days=2, minutes=1)
    handshake(
        side_from_files(layout.cert("apiserver"), layout.key("apiserver"), layout.cert("ca")),
        Side(conf.cert_pem, conf.key_pem, conf.ca_pem),
        "kubernetes",
    )


BAD_INPUTS = [
    (
        ["init", "--extra-san", "bad_name!"],
        "invalid SAN 'bad_name!': not an IP address or a DNS name",
    ),
    (["init", "--advertise-address", "nowhere"], "invalid advertise address 'nowhere'"),
    (["rotate", "--leaf-validity", "soon"], "invalid duration 'soon': use e.g. 1y, 90d, 720h, 30m"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_flags_one_line_nothing_changed(layout, capsys, args, message):
    snap = snapshot(layout.pki_dir.parent)
    assert run(layout, *args) == 1
    assert capsys.readouterr().err == f"k0s-pki: error: {message}\n"
    assert snapshot(layout.pki_dir.parent) == snap


@pytest.mark.parametrize(
    ("command", "code"), [(["init"], 1), (["rotate"], 1), (["check-expiration"], 3)]
)
def test_corrupt_pem_one_line_nothing_changed(layout, capsys, command, code):
    layout.cert("apiserver").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    snap = snapshot(layout.pki_dir.parent)
    assert run(layout, *command) == code
    err = capsys.readouterr().err
    assert err.startswith(f"k0s-pki: error: {layout.cert('apiserver')}: corrupt PEM certificate")
    assert err.count("\n") == 1
    assert snapshot(layout.pki_dir.parent) == snap


@pytest.mark.parametrize("command", [["init"], ["rotate"]])
def test_mismatched_key_one_line_nothing_changed(layout, capsys, command):
    layout.key("etcd/peer").write_bytes(layout.key("etcd/server").read_bytes())
    snap = snapshot(layout.pki_dir.parent)
    assert run(layout, *command) == 1
    assert capsys.readouterr().err == (
        f"k0s-pki: error: {layout.cert('etcd/peer')}: private key does not match the certificate\n"
    )
    assert snapshot(layout.pki_dir.parent) == snap


def test_unwritable_directory_one_line_nothing_changed(layout, capsys):
    """A directory that cannot take files (here: the etcd dir replaced by a file)
    fails the whole init before any write."""
    for p in (layout.pki_dir / "etcd").iterdir():
        p.unlink()
    (layout.pki_dir / "etcd").rmdir()
    (layout.pki_dir / "etcd").write_bytes(b"")
    layout.key("apiserver").unlink()
    layout.cert("apiserver").unlink()
    snap = snapshot(layout.pki_dir.parent)
    assert run(layout, "init") == 1
    err = capsys.readouterr().err
    assert err.startswith("k0s-pki: error: ") and err.count("\n") == 1
    assert snapshot(layout.pki_dir.parent) == snap


def test_unwritable_directory_as_unprivileged_user(tmp_path, capsys):
    """chmod 0555 on the PKI dir stops a non-root admin with one line, nothing changed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    import tempfile

    base = tempfile.mkdtemp()
    os.chmod(base, 0o755)
    pki = os.path.join(base, "pki")
    assert main(["init", "--pki-dir", pki, "--node-name", "node1"]) == 0
    os.remove(os.path.join(pki, "apiserver.crt"))
    os.remove(os.path.join(pki, "apiserver.key"))
    subprocess.run(["chown", "-R", "65534", base], check=True)
    os.chmod(pki, 0o555)
    from pathlib import Path

    snap = snapshot(Path(base))
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(Path(sys.executable).with_name("k0s-pki")),
            "init",
            "--pki-dir",
            pki,
            "--node-name",
            "node1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"k0s-pki: error: cannot write to {pki}: Permission denied\n"
    assert snapshot(Path(base)) == snap
    subprocess.run(["rm", "-rf", base], check=True)
