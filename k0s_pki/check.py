"""``check-expiration`` and ``verify``: what expires when, and what is wrong.

``check-expiration`` prints kubeadm's two tables (or JSON) and returns a
status monitoring can use: 0 all fine, 1 something expires within the
warning window, 2 something is expired (or not yet valid).

``verify`` checks chains, validity, SANs, key/cert match and permissions and
returns one line per problem, ``<name>: <problem>``.
"""

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from k0s_pki import certs
from k0s_pki.authority import Authority, load_authority
from k0s_pki.catalog import CAS, ClusterConfig, LeafSpec, leaves
from k0s_pki.errors import PkiError
from k0s_pki.files import permission_problem, read_file, recover_pair
from k0s_pki.keys import load_private_key, load_public_keys, same_public_key
from k0s_pki.layout import Layout
from k0s_pki.leaf_files import leaf_paths, read_leaf
from k0s_pki.rotate import existing_leaves
from k0s_pki.units import short_duration
from k0s_pki.validity import leaf_problems, time_problems

OK, WARNING, EXPIRED = 0, 1, 2
# SANs every cluster's certificates carry, whatever the node: checked when no
# configuration says which node-specific SANs to expect.
_FIXED_SANS = {
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "localhost",
    "127.0.0.1",
    "::1",
}


@dataclass(frozen=True)
class Expiry:
    """One row of the expiration tables."""

    name: str
    not_after: datetime
    not_before: datetime
    authority: str
    external: bool


def expirations(layout: Layout, config: ClusterConfig) -> tuple[list[Expiry], list[Expiry]]:
    """(leaf rows, CA rows) for every certificate present.

    Raises:
        PkiError: a file cannot be read.
    """
    authorities: dict[str, Authority] = {}
    ca_rows = []
    for spec in CAS:
        if not layout.cert(spec.path).exists():
            continue
        authority = authorities[spec.name] = load_authority(layout, spec)
        for cert in authority.bundle:
            name = spec.name
            if len(authority.bundle) > 1:
                name += f" ({certs.common_name(cert.subject)})"
            ca_rows.append(_row(name, cert, "", authority.external))
    rows = []
    for spec in existing_leaves(layout, config):
        leaf = read_leaf(layout, spec)
        external = spec.ca in authorities and authorities[spec.ca].external
        rows.append(_row(spec.name, leaf.cert, spec.ca, external))
    return rows, ca_rows


def expiration_status(rows: list[Expiry], warn_within: timedelta, now: datetime) -> int:
    """:data:`OK`, :data:`WARNING` or :data:`EXPIRED` for a set of rows."""
    if any(r.not_after <= now or r.not_before > now for r in rows):
        return EXPIRED
    if any(r.not_after - now <= warn_within for r in rows):
        return WARNING
    return OK


def render_table(rows: list[Expiry], ca_rows: list[Expiry], now: datetime) -> str:
    """kubeadm's two tables, columns aligned."""
    leaf_table = [
        ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED")
    ]
    leaf_table += [
        (
            r.name,
            _when(r.not_after),
            short_duration(r.not_after - now),
            r.authority,
            _yes_no(r.external),
        )
        for r in rows
    ]
    ca_table = [("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED")]
    ca_table += [
        (r.name, _when(r.not_after), short_duration(r.not_after - now), _yes_no(r.external))
        for r in ca_rows
    ]
    return _align(leaf_table) + "\n\n" + _align(ca_table) + "\n"


def render_json(rows: list[Expiry], ca_rows: list[Expiry], now: datetime) -> str:
    """The same data as JSON (times in RFC 3339, residual time in seconds)."""

    def item(r: Expiry) -> dict:
        return {
            "name": r.name,
            "expires": r.not_after.isoformat(),
            "residualSeconds": int((r.not_after - now).total_seconds()),
            "certificateAuthority": r.authority or None,
            "externallyManaged": r.external,
        }

    data = {
        "certificates": [item(r) for r in rows],
        "certificateAuthorities": [item(r) for r in ca_rows],
    }
    return json.dumps(data, indent=2) + "\n"


def verify(layout: Layout, config: ClusterConfig | None) -> list[str]:
    """Every problem of the PKI directory, one line each (empty: all good).

    Args:
        layout: the PKI directory.
        config: what SANs to expect; None checks only SANs every cluster has.
    """
    problems: list[str] = []
    authorities: dict[str, Authority] = {}
    for spec in CAS:
        cert_path, key_path = layout.cert(spec.path), layout.key(spec.path)
        if not cert_path.exists():
            problems.append(f"{spec.name}: {cert_path} missing")
            continue
        try:
            authority = authorities[spec.name] = load_authority(layout, spec)
        except PkiError as exc:
            problems.append(f"{spec.name}: {exc}")
            continue
        for cert in authority.bundle:
            problems += [f"{spec.name}: {p}" for p in time_problems(cert) + _ca_problems(cert)]
        problems += _mode_problems(spec.name, cert_path, key_path)
    problems += _sa_problems(layout)
    specs = leaves(config) if config else [_fixed_sans_only(s) for s in leaves(ClusterConfig())]
    present = {s.name for s in existing_leaves(layout, config or ClusterConfig())}
    specs += [
        s
        for s in leaves(replace(config or ClusterConfig(), konnectivity=True))
        if s.name in present and s.name not in {x.name for x in specs}
    ]
    for spec in specs:
        problems += _leaf_problems(layout, spec, authorities.get(spec.ca))
    return problems


def _leaf_problems(layout: Layout, spec: LeafSpec, authority: Authority | None) -> list[str]:
    try:
        leaf = read_leaf(layout, spec)
    except PkiError as exc:
        return [f"{spec.name}: {exc}"]
    if leaf is None:
        return [f"{spec.name}: missing ({leaf_paths(layout, spec)[-1]})"]
    found = [] if authority is None else leaf_problems(leaf.certs, spec, authority)
    if (
        authority is not None
        and spec.kubeconfig
        and leaf.kubeconfig.ca_pem != authority.bundle_pem()
    ):
        found.append(f"embedded CA differs from {authority.spec.path}.crt")
    problems = [f"{spec.name}: {p}" for p in found]
    if spec.kubeconfig:
        return problems + _mode_problems(spec.name, None, layout.kubeconfig(spec.path))
    return problems + _mode_problems(spec.name, layout.cert(spec.path), layout.key(spec.path))


def _sa_problems(layout: Layout) -> list[str]:
    try:
        recover_pair(layout.sa_key, layout.sa_pub)
        key = load_private_key(read_file(layout.sa_key), str(layout.sa_key))
        pubs = load_public_keys(read_file(layout.sa_pub), str(layout.sa_pub))
    except PkiError as exc:
        return [f"sa: {exc}"]
    problems = (
        []
        if any(same_public_key(key, p) for p in pubs)
        else ["sa: sa.pub lacks sa.key's public key"]
    )
    return problems + _mode_problems("sa", layout.sa_pub, layout.sa_key)


def _ca_problems(cert: x509.Certificate) -> list[str]:
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return [] if is_ca else [f"{certs.common_name(cert.subject)} is not a CA certificate"]


def _mode_problems(name: str, public: Path | None, private: Path | None) -> list[str]:
    found = []
    for path, is_private in ((public, False), (private, True)):
        if path is not None and path.exists():
            problem = permission_problem(path, is_private)
            if problem:
                found.append(f"{name}: {path}: {problem}")
    return found


def _fixed_sans_only(spec: LeafSpec) -> LeafSpec:
    return replace(spec, sans=tuple(s for s in spec.sans if s in _FIXED_SANS))


def _row(name: str, cert: x509.Certificate, authority: str, external: bool) -> Expiry:
    return Expiry(name, cert.not_valid_after_utc, cert.not_valid_before_utc, authority, external)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%b %d, %Y %H:%M UTC")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _align(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
