"""The command line of every component, built from the configuration.

Flags are kept as ``{name: value}`` so that ``extraArgs`` from the
configuration override the defaults one by one; they are rendered as
``--name=value``. The flag sets follow what kubeadm gives each component
(its static pod manifests), adapted to the launcher's data directory.
"""

import ipaddress
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from k0s_node.config import NodeConfig
from k0s_node.paths import NodePaths


@dataclass(frozen=True)
class EtcdClient:
    """How clients (kube-apiserver, health checks, etcdctl) reach the datastore."""

    endpoints: tuple[str, ...]
    ca_file: Path
    cert_file: Path
    key_file: Path

    def etcdctl_line(self) -> str:
        """An ``etcdctl`` command line that reaches the datastore."""
        return (
            f"etcdctl --endpoints={','.join(self.endpoints)} --cacert={self.ca_file} "
            f"--cert={self.cert_file} --key={self.key_file} endpoint status -w table"
        )


def find_binary(name: str, bin_dir: Path | None, paths: NodePaths) -> Path | None:
    """``name`` in ``--bin-dir``, then ``D/bin``, then ``PATH``; None if nowhere."""
    for directory in (bin_dir, paths.bin_dir):
        if directory is not None:
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate.absolute()
    found = shutil.which(name)
    return Path(found).absolute() if found else None


def render_flags(flags: dict[str, str]) -> list[str]:
    """``{"a": "1"}`` -> ``["--a=1"]``, in insertion order."""
    return [f"--{name}={value}" for name, value in flags.items()]


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def datastore_client(config: NodeConfig, paths: NodePaths) -> EtcdClient:
    """The datastore's endpoints and the client certificate kube-apiserver uses."""
    storage, pki = config.spec.storage, paths.pki
    if storage.type == "external":
        ext = storage.external
        return EtcdClient(
            ext.endpoints,
            Path(ext.ca_file),
            Path(ext.client_cert_file),
            Path(ext.client_key_file),
        )
    port = storage.store.client_port if storage.type == "k0s-store" else storage.etcd.client_port
    return EtcdClient(
        (_url("127.0.0.1", port),),
        pki.cert("etcd/ca"),
        pki.cert("apiserver-etcd-client"),
        pki.key("apiserver-etcd-client"),
    )


def store_argv(config: NodeConfig, paths: NodePaths) -> list[str]:
    """k0s-store with mutual TLS on loopback, using the etcd certificates."""
    store, pki = config.spec.storage.store, paths.pki
    url = _url("127.0.0.1", store.client_port)
    flags = {
        "name": config.spec.node.name,
        "data-dir": str(paths.store_dir),
        "listen-client-urls": url,
        "advertise-client-urls": url,
        "cert-file": str(pki.cert("etcd/server")),
        "key-file": str(pki.key("etcd/server")),
        "trusted-ca-file": str(pki.cert("etcd/ca")),
        "client-cert-auth": "true",
    }
    flags.update(store.extra_args)
    return [sys.executable, "-m", "k0s_store", "serve", *render_flags(flags)]


def apiserver_argv(binary: Path, config: NodeConfig, paths: NodePaths) -> list[str]:
    """kube-apiserver pointed at the datastore, with kubeadm's certificate flags."""
    spec, pki = config.spec, paths.pki
    etcd = datastore_client(config, paths)
    flags = {
        "advertise-address": spec.api.address,
        "bind-address": spec.api.address,
        "secure-port": str(spec.api.port),
        "allow-privileged": "true",
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "client-ca-file": str(pki.cert("ca")),
        "tls-cert-file": str(pki.cert("apiserver")),
        "tls-private-key-file": str(pki.key("apiserver")),
        "etcd-servers": ",".join(etcd.endpoints),
        "etcd-cafile": str(etcd.ca_file),
        "etcd-certfile": str(etcd.cert_file),
        "etcd-keyfile": str(etcd.key_file),
        "kubelet-client-certificate": str(pki.cert("apiserver-kubelet-client")),
        "kubelet-client-key": str(pki.key("apiserver-kubelet-client")),
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": str(pki.cert("front-proxy-client")),
        "proxy-client-key-file": str(pki.key("front-proxy-client")),
        "requestheader-client-ca-file": str(pki.cert("front-proxy-ca")),
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "service-account-issuer": f"https://kubernetes.default.svc.{spec.network.cluster_domain}",
        "service-account-key-file": str(pki.sa_pub),
        "service-account-signing-key-file": str(pki.sa_key),
        "service-cluster-ip-range": spec.network.service_cidr,
    }
    if ipaddress.ip_address(spec.api.address).is_loopback:
        # A loopback address cannot be an endpoint of the `kubernetes` service;
        # the reconciler would fail on it every 10 s.
        flags["endpoint-reconciler-type"] = "none"
    flags.update(spec.api.extra_args)
    return [str(binary), *render_flags(flags)]


def controller_manager_argv(binary: Path, config: NodeConfig, paths: NodePaths) -> list[str]:
    """kube-controller-manager with its kubeconfig and the signing keys."""
    spec, pki = config.spec, paths.pki
    kubeconfig = str(pki.kubeconfig("controller-manager.conf"))
    flags = {
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "bind-address": "127.0.0.1",
        "client-ca-file": str(pki.cert("ca")),
        "requestheader-client-ca-file": str(pki.cert("front-proxy-ca")),
        "root-ca-file": str(pki.cert("ca")),
        "cluster-name": "kubernetes",
        "cluster-signing-cert-file": str(pki.cert("ca")),
        "cluster-signing-key-file": str(pki.key("ca")),
        "controllers": "*,bootstrapsigner,tokencleaner",
        "leader-elect": "true",
        "service-account-private-key-file": str(pki.sa_key),
        "service-cluster-ip-range": spec.network.service_cidr,
        "cluster-cidr": spec.network.pod_cidr,
        "allocate-node-cidrs": "true",
        "use-service-account-credentials": "true",
    }
    flags.update(spec.controller_manager.extra_args)
    return [str(binary), *render_flags(flags)]


def scheduler_argv(binary: Path, config: NodeConfig, paths: NodePaths) -> list[str]:
    """kube-scheduler with its kubeconfig."""
    kubeconfig = str(paths.pki.kubeconfig("scheduler.conf"))
    flags = {
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "bind-address": "127.0.0.1",
        "leader-elect": "true",
    }
    flags.update(config.spec.scheduler.extra_args)
    return [str(binary), *render_flags(flags)]
