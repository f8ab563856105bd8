"""The launcher's use of k0s_pki: create what is missing, renew what is due.

At start, ``init`` creates what is missing and keeps what is valid, then
every leaf expiring within ``spec.pki.renewBefore`` is re-issued. The same
renewal runs in the background every ``spec.pki.checkInterval``; the names
it renewed tell the supervisor which components to restart.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from k0s_node.config import NodeConfig
from k0s_pki import check
from k0s_pki.catalog import ClusterConfig
from k0s_pki.layout import Layout
from k0s_pki.provision import plan_init
from k0s_pki.rotate import plan_rotate


@dataclass(frozen=True)
class CertExpiry:
    """When one certificate (leaf or CA) expires."""

    name: str
    not_after: datetime

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return (self.not_after - (now or datetime.now(UTC))).total_seconds()


def cluster_config(config: NodeConfig) -> ClusterConfig:
    """What the certificates depend on, from the node's configuration."""
    spec = config.spec
    etcd_sans: tuple[str, ...] = ()
    if spec.storage.type == "etcd":
        etcd_sans = (spec.storage.etcd.peer_address,)
    return ClusterConfig(
        node_name=spec.node.name,
        advertise_address=spec.api.address,
        service_cidr=spec.network.service_cidr,
        cluster_domain=spec.network.cluster_domain,
        extra_sans=spec.api.sans,
        etcd_extra_sans=etcd_sans,
        key_type=spec.pki.key_type,
        leaf_validity=spec.pki.leaf_validity,
        ca_validity=spec.pki.ca_validity,
        api_port=spec.api.port,
    )


def ensure_pki(layout: Layout, config: NodeConfig) -> list[str]:
    """Create the missing parts of the PKI, then renew leaves that are due.

    Returns:
        One line per change made.

    Raises:
        PkiError: bad settings or a broken PKI directory (nothing written then).
    """
    plan = plan_init(layout, cluster_config(config))
    plan.apply()
    return [step.description for step in plan.steps] + renew_due(layout, config)


def renew_due(layout: Layout, config: NodeConfig) -> list[str]:
    """Re-issue every leaf expiring within ``spec.pki.renewBefore``.

    Returns:
        The names of the leaves renewed (``rotate <name>`` lines).
    """
    plan = plan_rotate(
        layout, cluster_config(config), ["all"], expiring_within=config.spec.pki.renew_before
    )
    plan.apply()
    return [step.description for step in plan.steps]


def renewed_names(lines: list[str]) -> set[str]:
    """Leaf names out of :func:`renew_due`'s ``rotate <name>`` lines."""
    return {line.split(" ", 1)[1] for line in lines if line.startswith("rotate ")}


def expiries(layout: Layout, config: NodeConfig) -> list[CertExpiry]:
    """Every certificate present (leaves, then CAs) with its expiry."""
    rows, ca_rows = check.expirations(layout, cluster_config(config))
    return [CertExpiry(r.name, r.not_after) for r in rows + ca_rows]
