"""``openssl verify`` and ``k0s-pki verify`` agree on good and broken sets.

openssl checks chains and validity only; key/cert mismatch and permissions
are problems only ``k0s-pki verify`` sees.
"""

import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from k0s_pki import certs
from k0s_pki.authority import load_authority
from k0s_pki.catalog import ca_spec
from k0s_pki.cli import main
from k0s_pki.files import read_file
from k0s_pki.keys import generate_key, load_private_key, private_key_pem

PAIRS = [
    ("apiserver", "ca"),
    ("apiserver-kubelet-client", "ca"),
    ("front-proxy-client", "front-proxy-ca"),
    ("etcd/server", "etcd/ca"),
    ("etcd/peer", "etcd/ca"),
    ("etcd/healthcheck-client", "etcd/ca"),
    ("apiserver-etcd-client", "etcd/ca"),
]


def _openssl_ok(layout) -> bool:
    for stem, ca in PAIRS:
        result = subprocess.run(
            ["openssl", "verify", "-CAfile", layout.cert(ca), layout.cert(stem)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return False
    return True


def _k0s_verify(layout, capsys) -> tuple[int, str]:
    code = main(["verify", "--pki-dir", str(layout.pki_dir)])
    return code, capsys.readouterr().out


def _reissue_server(layout, ca_name, now=None, validity=timedelta(days=365)):
    """Replace etcd/server.crt by a certificate of the same key from ``ca_name``."""
    authority = load_authority(layout, ca_spec(ca_name))
    key = load_private_key(read_file(layout.key("etcd/server")), "key")
    old = certs.load_certs(read_file(layout.cert("etcd/server")), "crt")[0]
    cert = certs.issue_leaf(
        authority.signer,
        authority.key,
        key.public_key(),
        old.subject,
        certs.san_strings(old),
        certs.Usage.SERVER_AND_CLIENT,
        validity,
        now,
    )
    layout.cert("etcd/server").write_bytes(certs.certs_pem([cert]))


def test_good_set(layout, capsys):
    assert _openssl_ok(layout)
    assert _k0s_verify(layout, capsys) == (0, "all certificates verified\n")


def test_expired(layout, capsys):
    _reissue_server(layout, "etcd-ca", datetime.now(UTC) - timedelta(days=3), timedelta(days=1))
    assert not _openssl_ok(layout)
    code, out = _k0s_verify(layout, capsys)
    assert code == 1
    assert out.startswith("etcd-server: expired on ")


def test_wrong_ca(layout, capsys):
    _reissue_server(layout, "ca")
    assert not _openssl_ok(layout)
    assert _k0s_verify(layout, capsys) == (
        1,
        "etcd-server: not issued by CA etcd-ca (etcd/ca.crt)\n",
    )


def test_key_mismatch_seen_by_verify_only(layout, capsys):
    layout.key("etcd/server").write_bytes(private_key_pem(generate_key()))
    assert _openssl_ok(layout)
    code, out = _k0s_verify(layout, capsys)
    assert code == 1
    mismatch = "private key does not match the certificate"
    assert out == f"etcd-server: {layout.cert('etcd/server')}: {mismatch}\n"


@pytest.mark.parametrize(("stem", "mode"), [("etcd/server.key", 0o644), ("apiserver.crt", 0o666)])
def test_bad_permissions_seen_by_verify_only(layout, capsys, stem, mode):
    os.chmod(layout.pki_dir / stem, mode)
    assert _openssl_ok(layout)
    code, out = _k0s_verify(layout, capsys)
    assert code == 1
    assert out.endswith(
        f"{layout.pki_dir / stem}: mode {mode:04o} is too open (want "
        f"{'0600' if stem.endswith('.key') else '0644'})\n"
    )
    assert out.count("\n") == 1
