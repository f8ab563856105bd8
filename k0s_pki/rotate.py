"""``rotate``: re-issue leaves with fresh keys, keeping who they are.

A rotated leaf keeps its subject and its SANs, gains the SANs the current
configuration adds (only when a configuration was given), gets a fresh key
of its old key type (or ``key_type``) and the configured validity, and is
signed by its CA's current signer. Kubeconfigs follow: their client
certificate is re-issued the same way and their server and cluster name are
kept. The replaced files go to ``pki/backup/<UTC time>/``.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from k0s_pki import certs
from k0s_pki.authority import Authority, load_authority
from k0s_pki.catalog import ClusterConfig, LeafSpec, ca_spec, leaf_spec, leaves
from k0s_pki.errors import PkiError
from k0s_pki.keys import key_type_of
from k0s_pki.layout import Layout
from k0s_pki.leaf_files import leaf_paths, read_leaf
from k0s_pki.plan import Plan
from k0s_pki.provision import plan_issue


def existing_leaves(layout: Layout, config: ClusterConfig) -> list[LeafSpec]:
    """Every catalog leaf present on disk (the konnectivity kubeconfig included if there)."""
    specs = leaves(replace(config, konnectivity=True))
    return [s for s in specs if any(p.exists() for p in leaf_paths(layout, s))]


def plan_rotate(
    layout: Layout,
    config: ClusterConfig,
    names: list[str],
    expiring_within: timedelta | None = None,
    key_type: str | None = None,
    add_configured_sans: bool = False,
) -> Plan:
    """Plan the re-issue of leaves.

    Args:
        layout: the PKI directory.
        config: validity and, with ``add_configured_sans``, SANs to add.
        names: leaf names, or ``["all"]`` for every leaf present.
        expiring_within: only leaves expiring within this duration.
        key_type: key type of the new keys (default: that of the old key).
        add_configured_sans: add the SANs ``config`` asks for.

    Raises:
        PkiError: unknown or missing leaf, broken files, external CA.
    """
    config.validate()
    if not names or "all" in names:
        specs = existing_leaves(layout, config)
    else:
        full = replace(config, konnectivity=True)
        specs = list({leaf_spec(full, n).name: leaf_spec(full, n) for n in names}.values())
    authorities: dict[str, Authority] = {}
    plan = Plan(layout)
    now = datetime.now(UTC)
    for spec in specs:
        leaf = read_leaf(layout, spec)
        if leaf is None:
            raise PkiError(f"{spec.name}: not found in {layout.pki_dir}: run init first")
        if expiring_within is not None and leaf.cert.not_valid_after_utc - now > expiring_within:
            continue
        if spec.ca not in authorities:
            authorities[spec.ca] = load_authority(layout, ca_spec(spec.ca))
        sans = certs.san_strings(leaf.cert)
        if add_configured_sans:
            sans += [s for s in spec.sans if s.lower() not in {x.lower() for x in sans}]
        conf = leaf.kubeconfig
        server = conf.server if conf else config.api_server_url()
        cluster = conf.cluster_name if conf else config.cluster_name
        plan_issue(
            plan,
            spec,
            authorities[spec.ca],
            leaf.cert.subject,
            sans,
            key_type or key_type_of(leaf.key),
            config.leaf_validity,
            server,
            cluster,
            "rotate",
        )
    return plan
