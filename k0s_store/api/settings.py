"""What the services need to know about this server beyond the store.

Everything here comes from the command line (etcd's flag names in
brackets) and is a parameter so tests can change it.
"""

from dataclasses import dataclass

DEFAULT_MAX_TXN_OPS = 128  # --max-txn-ops
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024  # --max-request-bytes: 1.5 MiB
DEFAULT_PROGRESS_NOTIFY_INTERVAL = 600.0  # --experimental-watch-progress-notify-interval: 10m
MIN_PROGRESS_NOTIFY_INTERVAL = 0.1  # etcd raises smaller intervals to 100 ms
# etcd's gRPC layer accepts a message this much larger than --max-request-bytes,
# so that the request-size check happens in etcd, with etcd's error.
GRPC_OVERHEAD_BYTES = 512 * 1024
# The raft term every header reports: etcd's after a single node's first election.
RAFT_TERM = 2
# Reported by Maintenance.Status. kube-apiserver sends RequestProgress only to
# etcd >= 3.4.31 (3.4 line), whose progress semantics the watch service follows.
ETCD_VERSION = "3.4.31"


@dataclass(frozen=True)
class Settings:
    """This member's identity and limits, as etcd's configuration gives them."""

    name: str = "default"  # --name
    client_urls: tuple[str, ...] = ("http://localhost:2379",)  # --advertise-client-urls
    peer_urls: tuple[str, ...] = ("http://localhost:2380",)  # --initial-advertise-peer-urls
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    progress_notify_interval: float = DEFAULT_PROGRESS_NOTIFY_INTERVAL
    raft_term: int = RAFT_TERM
    version: str = ETCD_VERSION
    client_cert_auth: bool = False  # --client-cert-auth: a certificate's CN names the user

    @property
    def max_message_bytes(self) -> int:
        """Largest gRPC message accepted, and the watch fragmentation threshold."""
        return self.max_request_bytes + GRPC_OVERHEAD_BYTES
