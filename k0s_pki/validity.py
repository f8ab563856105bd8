"""What is wrong with a certificate, as short phrases (empty list: nothing).

Shared by ``init`` (keep what is valid), ``rotate`` and ``verify``.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509

from k0s_pki import certs
from k0s_pki.authority import Authority
from k0s_pki.catalog import LeafSpec


def time_problems(cert: x509.Certificate, now: datetime | None = None) -> list[str]:
    """Expired or not yet valid."""
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        return [f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if cert.not_valid_before_utc > now:
        return [f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"]
    return []


def missing_sans(cert: x509.Certificate, required: Sequence[str]) -> list[str]:
    """The required SANs the certificate lacks (DNS names compared case-blind)."""
    have = {s.lower() for s in certs.san_strings(cert)}
    return [
        s for s in required if s.lower() not in have and str(certs.parse_san(s).value) not in have
    ]


def leaf_problems(
    chain: list[x509.Certificate],
    spec: LeafSpec,
    authority: Authority,
    now: datetime | None = None,
) -> list[str]:
    """Chain, validity, SAN and usage problems of an issued leaf.

    Args:
        chain: the leaf then the certificates sent with it.
        spec: what the leaf must be (its CA, usages, required SANs).
        authority: the CA it must chain to.
    """
    cert = chain[0]
    problems = []
    intermediates = chain[1:]
    if not authority.trusts(cert) and not any(
        certs.issued_by(cert, mid) and authority.trusts(mid) for mid in intermediates
    ):
        problems.append(f"not issued by CA {authority.spec.name} ({authority.spec.path}.crt)")
    problems += time_problems(cert, now)
    missing = missing_sans(cert, spec.sans)
    if missing:
        problems.append(f"missing SAN {', '.join(missing)}")
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    lacking = [oid._name for oid in spec.usage.value if oid not in ekus]
    if lacking:
        problems.append(f"lacks extended key usage {', '.join(lacking)}")
    return problems
