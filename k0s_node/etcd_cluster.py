"""``storage.type: etcd``: a real etcd member run by the launcher, and joining a cluster.

The member serves clients on ``https://127.0.0.1:<clientPort>`` (and on the
peer address when that is not loopback) and peers on
``https://<peerAddress>:<peerPort>``, both with the etcd CA's certificates
and client-certificate auth.

``--join URL`` adds this node to the cluster one of whose members serves
clients at URL: MemberAdd through the cluster's own API (with this node's
etcd client certificate), then the member starts with
``--initial-cluster-state=existing`` and the member list MemberAdd returned.
Every controller must hold the same CAs, as with ``kubeadm join
--control-plane``: copy ``pki/ca.*``, ``pki/front-proxy-ca.*``,
``pki/etcd/ca.*`` and ``pki/sa.*`` from a controller before joining. Once
the member has data, restarts need no join.
"""

import ipaddress
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from k0s_node.components import EtcdClient, render_flags
from k0s_node.config import NodeConfig
from k0s_node.paths import NodePaths
from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

log = logging.getLogger("k0s_node")

JOIN_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 5.0
CLUSTER_TOKEN = "k0s-node"
SHARED_CA_FILES = ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key",
                   "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub")  # fmt: skip


class EtcdError(RuntimeError):
    """The etcd member cannot be set up: no binary, or it cannot join (one line)."""


@dataclass(frozen=True)
class InitialCluster:
    """``--initial-cluster`` and ``--initial-cluster-state`` of a first start."""

    members: str
    state: str


def _https(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def peer_url(config: NodeConfig) -> str:
    """This member's peer URL."""
    etcd = config.spec.storage.etcd
    return _https(etcd.peer_address, etcd.peer_port)


def has_data(paths: NodePaths) -> bool:
    """True once the member has a data directory (it then ignores initial-cluster)."""
    return (paths.etcd_dir / "member").is_dir()


def new_cluster(config: NodeConfig) -> InitialCluster:
    """A one-member cluster of this node."""
    return InitialCluster(f"{config.spec.node.name}={peer_url(config)}", "new")


def check_join_pki(paths: NodePaths) -> None:
    """Refuse to join without the cluster's CAs (a fresh CA would be a different cluster).

    Raises:
        EtcdError: a shared CA file is missing.
    """
    missing = [name for name in SHARED_CA_FILES if not (paths.pki.pki_dir / name).exists()]
    if missing:
        raise EtcdError(
            f"--join needs the cluster's CAs in {paths.pki.pki_dir} (missing {missing[0]}): "
            f"copy {', '.join(SHARED_CA_FILES)} from a controller first"
        )


def join(config: NodeConfig, client: EtcdClient, url: str) -> InitialCluster:
    """Add this node as a member through the cluster member serving ``url``.

    Retries until :data:`JOIN_TIMEOUT_S` (the cluster may be electing). A
    member with this node's peer URL already there (an earlier join that
    never started) is reused.

    Raises:
        EtcdError: the cluster cannot be reached or refuses the member.
    """
    mine, name = peer_url(config), config.spec.node.name
    credentials = grpc.ssl_channel_credentials(
        root_certificates=client.ca_file.read_bytes(),
        private_key=client.key_file.read_bytes(),
        certificate_chain=client.cert_file.read_bytes(),
    )
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    with grpc.secure_channel(url.split("://", 1)[-1], credentials) as channel:
        cluster = rpc_pb2_grpc.ClusterStub(channel)
        while True:
            try:
                members = cluster.MemberList(
                    rpc_pb2.MemberListRequest(), timeout=RPC_TIMEOUT_S
                ).members
                if not any(mine in m.peerURLs for m in members):
                    reply = cluster.MemberAdd(
                        rpc_pb2.MemberAddRequest(peerURLs=[mine]), timeout=RPC_TIMEOUT_S
                    )
                    members = reply.members
                    log.info("added member %s (%s) through %s", name, mine, url)
                break
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    raise EtcdError(f"cannot join through {url}: {exc.details()}") from None
                time.sleep(1.0)
    pairs = []
    for member in members:
        member_name = name if mine in member.peerURLs else member.name
        if not member_name:
            raise EtcdError(f"member {member.peerURLs[0]} was added but never started")
        pairs += [f"{member_name}={u}" for u in member.peerURLs]
    return InitialCluster(",".join(pairs), "existing")


def etcd_argv(
    binary: Path, config: NodeConfig, paths: NodePaths, initial: InitialCluster
) -> list[str]:
    """The etcd member's command line."""
    etcd, pki = config.spec.storage.etcd, paths.pki
    client_urls = [_https("127.0.0.1", etcd.client_port)]
    if not ipaddress.ip_address(etcd.peer_address).is_loopback:
        client_urls.append(_https(etcd.peer_address, etcd.client_port))
    flags = {
        "name": config.spec.node.name,
        "data-dir": str(paths.etcd_dir),
        "listen-client-urls": ",".join(client_urls),
        "advertise-client-urls": client_urls[-1],
        "listen-peer-urls": peer_url(config),
        "initial-advertise-peer-urls": peer_url(config),
        "initial-cluster": initial.members,
        "initial-cluster-state": initial.state,
        "initial-cluster-token": CLUSTER_TOKEN,
        "cert-file": str(pki.cert("etcd/server")),
        "key-file": str(pki.key("etcd/server")),
        "trusted-ca-file": str(pki.cert("etcd/ca")),
        "client-cert-auth": "true",
        "peer-cert-file": str(pki.cert("etcd/peer")),
        "peer-key-file": str(pki.key("etcd/peer")),
        "peer-trusted-ca-file": str(pki.cert("etcd/ca")),
        "peer-client-cert-auth": "true",
    }
    flags.update(etcd.extra_args)
    return [str(binary), *render_flags(flags)]
