"""Health checks of the components, as the launcher sees them from outside.

- The datastore (k0s-store, etcd, external): Maintenance.Status over mutual
  TLS with the etcd client certificate; it also yields the revision and the
  database size that ``k0s-node status`` shows.
- kube-apiserver: ``GET /readyz`` over TLS, verified against the cluster CA
  (anonymous, as kubeadm's probes do).
- controller-manager and scheduler: their process running.
"""

import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc

from k0s_node.components import EtcdClient
from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StoreStatus:
    """What the datastore reported last."""

    endpoint: str
    revision: int
    db_size: int
    version: str


class DatastoreProbe:
    """Maintenance.Status against the first endpoint, channel kept between calls."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.last: StoreStatus | None = None
        self.last_error: str | None = "not checked yet"
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """None when the datastore answers, else why not (also kept in ``last_error``)."""
        with self._lock:
            self.last_error = self._check()
            return self.last_error

    def _check(self) -> str | None:
        try:
            stub = rpc_pb2_grpc.MaintenanceStub(self._open())
            reply = stub.Status(rpc_pb2.StatusRequest(), timeout=CHECK_TIMEOUT_S)
        except grpc.RpcError as exc:
            self._close()
            return f"Status failed: {exc.code().name}"
        except OSError as exc:
            return f"cannot read the client certificate: {exc}"
        self.last = StoreStatus(
            self.client.endpoints[0], reply.header.revision, reply.dbSize, reply.version
        )
        return None

    def _open(self) -> grpc.Channel:
        if self._channel is None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.client.ca_file.read_bytes(),
                private_key=self.client.key_file.read_bytes(),
                certificate_chain=self.client.cert_file.read_bytes(),
            )
            target = self.client.endpoints[0].split("://", 1)[-1]
            self._channel = grpc.secure_channel(target, credentials)
        return self._channel

    def _close(self) -> None:
        # Certificates may have been renewed: read them again next time.
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def apiserver_ready(url: str, ca_file: Path) -> str | None:
    """None when ``GET <url>/readyz`` answers 200, else why not."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(
            f"{url}/readyz", context=context, timeout=CHECK_TIMEOUT_S
        ) as reply:
            return None if reply.status == 200 else f"/readyz answered {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"/readyz answered {exc.code}"
    except (OSError, ssl.SSLError) as exc:
        return f"/readyz unreachable: {getattr(exc, 'reason', exc)}"
