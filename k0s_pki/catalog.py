"""The certificate set of a cluster, as data: kubeadm's set plus etcd's.

Names are kubeadm's (``kubeadm certs check-expiration`` prints them); files
are kubeadm's layout under the PKI directory, kubeconfigs beside it::

    CA              file          leaves (file under pki/, or kubeconfig)
    ca              ca            apiserver, apiserver-kubelet-client,
                                  admin.conf, super-admin.conf,
                                  controller-manager.conf, scheduler.conf,
                                  [konnectivity-server.conf]
    front-proxy-ca  front-proxy-ca  front-proxy-client
    etcd-ca         etcd/ca       etcd-server (etcd/server), etcd-peer
                                  (etcd/peer), etcd-healthcheck-client
                                  (etcd/healthcheck-client),
                                  apiserver-etcd-client

plus the service-account key pair ``sa.key``/``sa.pub`` (not a certificate).
"""

import ipaddress
import socket
from dataclasses import dataclass, field
from datetime import timedelta

from k0s_pki.certs import Usage, parse_san
from k0s_pki.errors import PkiError
from k0s_pki.keys import DEFAULT_KEY_TYPE, check_key_type

SA_NAME = "sa"


@dataclass(frozen=True)
class ClusterConfig:
    """What the certificates depend on; every field has a working default.

    Attributes:
        node_name: this node's name (a SAN of apiserver and etcd, etcd's CN).
        advertise_address: the IP the API server and etcd are reached at.
        service_cidr: the service network; its first IP is the ``kubernetes`` service.
        cluster_domain: DNS domain of services (``kubernetes.default.svc.<domain>``).
        extra_sans: more SANs for the API server certificate.
        etcd_extra_sans: more SANs for the etcd server and peer certificates.
        key_type: see :data:`k0s_pki.keys.KEY_TYPES`.
        leaf_validity: lifetime of leaf certificates.
        ca_validity: lifetime of CA certificates.
        konnectivity: also make the konnectivity-server kubeconfig.
        cluster_name: the cluster's name inside kubeconfigs.
        api_port: the API server port inside kubeconfigs.
    """

    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    advertise_address: str = "127.0.0.1"
    service_cidr: str = "10.96.0.0/12"
    cluster_domain: str = "cluster.local"
    extra_sans: tuple[str, ...] = ()
    etcd_extra_sans: tuple[str, ...] = ()
    key_type: str = DEFAULT_KEY_TYPE
    leaf_validity: timedelta = timedelta(days=365)
    ca_validity: timedelta = timedelta(days=3650)
    konnectivity: bool = False
    cluster_name: str = "kubernetes"
    api_port: int = 6443

    def validate(self) -> None:
        """Check every field, so that bad input fails before anything is written.

        Raises:
            PkiError: the first bad field, explained.
        """
        check_key_type(self.key_type)
        try:
            ipaddress.ip_address(self.advertise_address)
        except ValueError:
            raise PkiError(f"invalid advertise address {self.advertise_address!r}") from None
        self.first_service_ip()
        for san in (self.node_name, *self.extra_sans, *self.etcd_extra_sans):
            parse_san(san)
        parse_san(f"kubernetes.default.svc.{self.cluster_domain}")
        if self.leaf_validity <= timedelta(0) or self.ca_validity <= timedelta(0):
            raise PkiError("validity must be positive")

    def first_service_ip(self) -> str:
        """The ``kubernetes`` service IP: the first address of the service CIDR."""
        try:
            return str(ipaddress.ip_network(self.service_cidr, strict=False)[1])
        except (ValueError, IndexError):
            raise PkiError(f"invalid service CIDR {self.service_cidr!r}") from None

    def api_server_url(self) -> str:
        """``https://<advertise address>:<port>`` (IPv6 in brackets)."""
        host = self.advertise_address
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.api_port}"


@dataclass(frozen=True)
class CaSpec:
    """A certificate authority: its name, file stem (``.crt``/``.key``), CN."""

    name: str
    path: str
    common_name: str


@dataclass(frozen=True)
class LeafSpec:
    """A leaf certificate, either a pair of files or the client of a kubeconfig.

    Attributes:
        name: kubeadm's name (``apiserver``, ``etcd-server``, ``admin.conf``).
        path: file stem under the PKI dir, or the kubeconfig's file name.
        ca: name of the issuing :class:`CaSpec`.
        common_name, organizations: the subject.
        usage: server, client or both.
        sans: DNS names and IPs it must carry.
        kubeconfig: True for a kubeconfig client certificate.
    """

    name: str
    path: str
    ca: str
    common_name: str
    organizations: tuple[str, ...]
    usage: Usage
    sans: tuple[str, ...] = ()
    kubeconfig: bool = False


CAS = (
    CaSpec("ca", "ca", "kubernetes"),
    CaSpec("front-proxy-ca", "front-proxy-ca", "front-proxy-ca"),
    CaSpec("etcd-ca", "etcd/ca", "etcd-ca"),
)


def ca_spec(name: str) -> CaSpec:
    """Find a CA by name (``etcd/ca`` is accepted for ``etcd-ca``).

    Raises:
        PkiError: no such CA.
    """
    for spec in CAS:
        if name in (spec.name, spec.path):
            return spec
    raise PkiError(f"unknown CA {name!r}: choose one of {', '.join(c.name for c in CAS)}")


def leaves(config: ClusterConfig) -> list[LeafSpec]:
    """Every leaf of the cluster, with the SANs ``config`` calls for."""
    apiserver_sans = (
        config.node_name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{config.cluster_domain}",
        "localhost",
        config.first_service_ip(),
        config.advertise_address,
        "127.0.0.1",
        *config.extra_sans,
    )
    etcd_sans = (config.node_name, "localhost", "127.0.0.1", "::1", config.advertise_address)
    etcd_sans += config.etcd_extra_sans
    client, both = Usage.CLIENT, Usage.SERVER_AND_CLIENT
    specs = [
        LeafSpec("apiserver", "apiserver", "ca", "kube-apiserver", (), Usage.SERVER,
                 _unique(apiserver_sans)),
        LeafSpec("apiserver-kubelet-client", "apiserver-kubelet-client", "ca",
                 "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",), client),
        LeafSpec("front-proxy-client", "front-proxy-client", "front-proxy-ca",
                 "front-proxy-client", (), client),
        LeafSpec("etcd-server", "etcd/server", "etcd-ca", config.node_name, (), both,
                 _unique(etcd_sans)),
        LeafSpec("etcd-peer", "etcd/peer", "etcd-ca", config.node_name, (), both,
                 _unique(etcd_sans)),
        LeafSpec("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca",
                 "kube-etcd-healthcheck-client", (), client),
        LeafSpec("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca",
                 "kube-apiserver-etcd-client", (), client),
    ]  # fmt: skip
    kubeconfigs = [
        ("admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",)),
        ("super-admin.conf", "kubernetes-super-admin", ("system:masters",)),
        ("controller-manager.conf", "system:kube-controller-manager", ()),
        ("scheduler.conf", "system:kube-scheduler", ()),
    ]
    if config.konnectivity:
        kubeconfigs.append(("konnectivity-server.conf", "system:konnectivity-server", ()))
    specs += [
        LeafSpec(name, name, "ca", cn, orgs, client, kubeconfig=True)
        for name, cn, orgs in kubeconfigs
    ]
    return specs


def leaf_spec(config: ClusterConfig, name: str) -> LeafSpec:
    """Find a leaf by name or file stem (``etcd/server`` for ``etcd-server``).

    Raises:
        PkiError: no such leaf.
    """
    specs = leaves(config)
    for spec in specs:
        if name in (spec.name, spec.path):
            return spec
    raise PkiError(f"unknown certificate {name!r}: choose from {', '.join(s.name for s in specs)}")


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    """Drop repeats (and letter case repeats of DNS names), keeping order."""
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return tuple(seen.values())
