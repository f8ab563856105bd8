"""Issuing certificates: CAs, leaves, cross-signed CAs and CSRs.

Every certificate gets a random 159-bit serial, a SubjectKeyIdentifier and
(unless self-signed) an AuthorityKeyIdentifier taken from its issuer, and a
validity that starts :data:`BACKDATE` in the past so that a node whose clock
is slightly behind still accepts it. A leaf never outlives its issuer: its
notAfter is capped at the CA's.

Key usages follow kubeadm: CAs ``keyCertSign, cRLSign, digitalSignature``
with no path length limit (so a cross-signed CA can sit under the old root
during a CA rotation); leaves ``digitalSignature`` (plus
``keyEncipherment`` for RSA keys, which RSA key exchange needs) and the
extended key usages of their :class:`Usage`.
"""

import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k0s_pki.errors import PkiError
from k0s_pki.keys import PrivateKey, PublicKey

BACKDATE = timedelta(minutes=5)
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


class Usage(enum.Enum):
    """What a leaf certificate is for (its extended key usage)."""

    SERVER = (ExtendedKeyUsageOID.SERVER_AUTH,)
    CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def parse_san(text: str) -> x509.GeneralName:
    """Turn ``10.0.0.1``, ``::1`` or ``api.example.com`` into a SAN entry.

    Raises:
        PkiError: neither an IP address nor a valid DNS name (``*.`` allowed first).
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if len(text) > 253 or not labels or not all(_DNS_LABEL.match(label) for label in labels):
        raise PkiError(f"invalid SAN {text!r}: not an IP address or a DNS name")
    return x509.DNSName(text.lower())


def san_strings(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for, as text."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    ]


def subject_name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    """Build a subject: the organizations (groups, for Kubernetes) then the CN."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def common_name(name: x509.Name) -> str:
    """The CN of a name, or ``""``."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def organizations(name: x509.Name) -> list[str]:
    """The O attributes of a name (Kubernetes reads them as groups)."""
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def issue_ca(
    key: PrivateKey, name: str, validity: timedelta, now: datetime | None = None
) -> x509.Certificate:
    """Make a self-signed CA certificate.

    Args:
        key: the CA's private key.
        name: its common name.
        validity: how long it is valid from now.
        now: the issuing time (tests pass one to make expired certificates).

    Returns:
        The CA certificate.
    """
    start = (now or datetime.now(UTC)) - BACKDATE
    subject = subject_name(name)
    builder = _ca_builder(subject, subject, key.public_key(), start, start + BACKDATE + validity)
    return builder.sign(key, _hash_for(key))


def cross_sign(
    new_ca: x509.Certificate, old_ca: x509.Certificate, old_key: PrivateKey
) -> x509.Certificate:
    """Certify the new CA's key with the old CA (used during a CA rotation).

    A peer that still trusts only the old CA accepts a leaf of the new CA if
    the leaf's chain carries this certificate. It is valid as long as both CAs are.

    Returns:
        A CA certificate with the new CA's subject and key, issued by the old CA.
    """
    start = datetime.now(UTC) - BACKDATE
    end = min(new_ca.not_valid_after_utc, old_ca.not_valid_after_utc)
    builder = _ca_builder(new_ca.subject, old_ca.subject, new_ca.public_key(), start, end)
    builder = builder.add_extension(_aki(old_ca), critical=False)
    return builder.sign(old_key, _hash_for(old_key))


def issue_leaf(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    public_key: PublicKey,
    subject: x509.Name,
    sans: Sequence[str],
    usage: Usage,
    validity: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """Issue a leaf certificate.

    Args:
        issuer: the CA certificate; issuer_key: its key.
        public_key: the leaf's public key.
        subject: see :func:`subject_name`.
        sans: DNS names and IPs (see :func:`parse_san`); may be empty.
        usage: server, client or both.
        validity: how long from now (capped at the CA's notAfter).
        now: the issuing time (tests pass one to make expired certificates).

    Returns:
        The signed leaf certificate.
    """
    start = (now or datetime.now(UTC)) - BACKDATE
    end = min(start + BACKDATE + validity, issuer.not_valid_after_utc)
    key_usage = dict.fromkeys(_KEY_USAGE_FIELDS, False) | {"digital_signature": True}
    key_usage["key_encipherment"] = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**key_usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usage.value)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    if sans:
        names = [parse_san(s) for s in sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, _hash_for(issuer_key))


def make_csr(key: PrivateKey, subject: x509.Name, sans: Sequence[str]) -> bytes:
    """A PEM certificate signing request for an outside CA."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        names = [parse_san(s) for s in sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, _hash_for(key)).public_bytes(serialization.Encoding.PEM)


def load_certs(data: bytes, source: str) -> list[x509.Certificate]:
    """Parse every PEM certificate in ``data`` (a leaf plus chain, or a CA bundle).

    Raises:
        PkiError: corrupt, or no certificate at all.
    """
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise PkiError(f"{source}: no PEM certificate found")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PkiError(f"{source}: corrupt PEM certificate ({exc})") from None


def certs_pem(certs: Iterable[x509.Certificate]) -> bytes:
    """Concatenate certificates as PEM (a leaf then its chain, or a bundle)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer`` signed ``cert`` (names match and the signature verifies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as hex, to name a certificate in state files and messages."""
    return cert.fingerprint(hashes.SHA256()).hex()


_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, public_key: PublicKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    """The parts common to a root CA and a cross-signed CA."""
    key_usage = dict.fromkeys(_KEY_USAGE_FIELDS, False) | {
        "digital_signature": True,
        "key_cert_sign": True,
        "crl_sign": True,
    }
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**key_usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AuthorityKeyIdentifier pointing at ``issuer``'s SKI."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:  # an outside CA may lack one
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384 keys, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()
