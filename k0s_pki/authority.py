"""A loaded certificate authority: its trust bundle, its signer, its key.

``<ca>.crt`` is what servers and clients read as their CA, so during a CA
rotation it is a bundle of two CAs; the signer is whichever of them matches
``<ca>.key``. Without ``<ca>.key`` the CA is external: it is trusted, never
used to sign. While a rotation is in its ``switched`` phase, leaves carry the
cross-signed new CA after themselves (see :mod:`k0s_pki.ca_rotation`).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509

from k0s_pki import certs
from k0s_pki.catalog import CaSpec
from k0s_pki.errors import PkiError
from k0s_pki.files import read_file, recover_pair
from k0s_pki.keys import PrivateKey, PublicKey, load_private_key, matches
from k0s_pki.layout import Layout

STATE_FILE = "state.json"
CROSS_CERT = "cross.crt"


@dataclass
class Authority:
    """A CA as found on disk.

    Attributes:
        spec: which CA.
        bundle: every certificate in ``<ca>.crt`` (the trust bundle).
        signer: the one matching the key, None if external.
        key: the CA key, None if external.
        chain: certificates to append after each issued leaf.
    """

    spec: CaSpec
    bundle: list[x509.Certificate]
    signer: x509.Certificate | None = None
    key: PrivateKey | None = None
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def external(self) -> bool:
        """True when there is no CA key: nothing can be signed here."""
        return self.key is None

    def bundle_pem(self) -> bytes:
        """The trust bundle as PEM."""
        return certs.certs_pem(self.bundle)

    def issue(
        self,
        public_key: PublicKey,
        subject: x509.Name,
        sans: Sequence[str],
        usage: certs.Usage,
        validity: timedelta,
    ) -> list[x509.Certificate]:
        """Sign a leaf; returns it followed by :attr:`chain`.

        Raises:
            PkiError: the CA is external or expired.
        """
        if self.signer is None or self.key is None:
            raise PkiError(
                f"CA {self.spec.name} is external (no {self.spec.path}.key): cannot sign"
            )
        if self.signer.not_valid_after_utc <= datetime.now(UTC):
            raise PkiError(f"CA {self.spec.name} expired on {self.signer.not_valid_after_utc}")
        leaf = certs.issue_leaf(self.signer, self.key, public_key, subject, sans, usage, validity)
        return [leaf, *self.chain]

    def trusts(self, cert: x509.Certificate) -> bool:
        """True if a certificate in the bundle issued ``cert`` (or a cross-signed
        CA in :attr:`chain` did)."""
        return any(certs.issued_by(cert, ca) for ca in [*self.bundle, *self.chain])


def load_authority(layout: Layout, spec: CaSpec) -> Authority:
    """Read a CA from the PKI directory.

    Raises:
        PkiError: ``<ca>.crt`` missing or corrupt, or the key matches none of it.
    """
    cert_path, key_path = layout.cert(spec.path), layout.key(spec.path)
    recover_pair(key_path, cert_path)
    bundle = certs.load_certs(read_file(cert_path), str(cert_path))
    if not key_path.exists():
        return Authority(spec, bundle)
    key = load_private_key(read_file(key_path), str(key_path))
    signer = next((c for c in bundle if matches(c, key)), None)
    if signer is None:
        raise PkiError(f"{key_path}: key does not match any certificate in {cert_path}")
    return Authority(spec, bundle, signer, key, _rotation_chain(layout, spec.name, signer))


def rotation_state(layout: Layout, name: str) -> dict | None:
    """The state of a CA/SA rotation in progress, or None.

    ``rotation/<name>/state.json`` holds ``{"phase": "prepared"|"switched",
    "started": ISO time, "old": fingerprint, "new": fingerprint}``.
    """
    path = layout.rotation_dir(name) / STATE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(read_file(path))
    except ValueError:
        raise PkiError(f"{path}: corrupt rotation state") from None


def _rotation_chain(layout: Layout, name: str, signer: x509.Certificate) -> list[x509.Certificate]:
    """The cross-signed CA to send after leaves, when ``signer`` is a new CA mid-rotation."""
    state = rotation_state(layout, name)
    if not state or state.get("new") != certs.fingerprint(signer):
        return []
    path = layout.rotation_dir(name) / CROSS_CERT
    return certs.load_certs(read_file(path), str(path))
