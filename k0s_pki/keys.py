"""Private keys: generation per key type, PEM in and out, key/cert matching.

Key types are named as admins write them: ``ecdsa-p256`` (the default: fast
and small), ``ecdsa-p384``, ``rsa-2048``, ``rsa-3072``, ``rsa-4096``.
Private keys are written as unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``),
public keys as SubjectPublicKeyInfo PEM (``BEGIN PUBLIC KEY``), which is what
kube-apiserver, etcd and Go's ``tls.LoadX509KeyPair`` read.
"""

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from k0s_pki.errors import PkiError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

DEFAULT_KEY_TYPE = "ecdsa-p256"
_CURVES = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
KEY_TYPES = (*_CURVES, *_RSA_BITS)


def check_key_type(key_type: str) -> str:
    """Return ``key_type`` if it is supported.

    Raises:
        PkiError: it is not one of :data:`KEY_TYPES`.
    """
    if key_type not in KEY_TYPES:
        raise PkiError(f"unsupported key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")
    return key_type


def generate_key(key_type: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    """Generate a fresh private key.

    Args:
        key_type: one of :data:`KEY_TYPES`.

    Returns:
        The new private key.
    """
    check_key_type(key_type)
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """Name the key type of an existing key (used to renew a key like for like)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for name, curve in _CURVES.items():
            if isinstance(key.curve, curve):
                return name
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        for name, bits in _RSA_BITS.items():
            if key.key_size == bits:
                return name
    raise PkiError(f"unsupported key: {type(key).__name__}")


def private_key_pem(key: PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """Serialise the public half of a key as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(data: bytes, source: str) -> PrivateKey:
    """Parse a PEM private key (PKCS#8, PKCS#1 or SEC1).

    Args:
        data: the PEM bytes.
        source: where they came from, for the error message.

    Raises:
        PkiError: not a usable, unencrypted private key.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{source}: not a valid unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{source}: unsupported key type {type(key).__name__}")
    return key


def load_public_keys(data: bytes, source: str) -> list[PublicKey]:
    """Parse every PEM public key in ``data`` (``sa.pub`` may hold several).

    Raises:
        PkiError: a block is corrupt, or there is none.
    """
    blocks = _pem_blocks(data, b"PUBLIC KEY")
    if not blocks:
        raise PkiError(f"{source}: no PEM public key found")
    keys = []
    for block in blocks:
        try:
            keys.append(serialization.load_pem_public_key(block))
        except ValueError as exc:
            raise PkiError(f"{source}: corrupt PEM public key ({exc})") from None
    return keys


def same_public_key(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    """True if two keys (private or public) share one public key."""
    return public_key_pem(a) == public_key_pem(b)


def matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True if ``key`` is the private key of ``cert``."""
    return same_public_key(cert.public_key(), key)


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    """Split ``data`` into its PEM blocks with the given label."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks, pos = [], 0
    while (start := data.find(begin, pos)) != -1:
        stop = data.find(end, start)
        if stop == -1:
            break
        blocks.append(data[start : stop + len(end)] + b"\n")
        pos = stop + len(end)
    return blocks
