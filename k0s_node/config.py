"""The node's configuration: a YAML file in the spirit of k0s's ClusterConfig.

Every key is optional; an empty file (or none) is a working single-node
control plane on loopback::

    apiVersion: k0s.k0sproject.io/v1beta1    # optional, checked when given
    kind: ClusterConfig                      # optional, checked when given
    spec:
      api:
        address: 127.0.0.1                   # advertised and bound by kube-apiserver
        port: 6443
        sans: [api.example.com]              # extra SANs of the apiserver certificate
        extraArgs: {v: "2"}                  # flag name (no dashes) -> value
      network:
        serviceCIDR: 10.96.0.0/12
        podCIDR: 10.244.0.0/16
        clusterDomain: cluster.local
      storage:
        type: k0s-store                      # k0s-store | etcd | external
        store: {clientPort: 2379, extraArgs: {}}
        etcd: {peerAddress: 127.0.0.1, clientPort: 2379, peerPort: 2380, extraArgs: {}}
        external:
          endpoints: [https://10.0.0.1:2379]
          caFile: /etc/etcd/ca.crt
          clientCertFile: /etc/etcd/client.crt
          clientKeyFile: /etc/etcd/client.key
      pki:
        keyType: ecdsa-p256
        leafValidity: 1y
        caValidity: 10y
        renewBefore: 90d                     # leaves expiring within this are renewed
        checkInterval: 1h                    # how often the launcher looks
      controllerManager: {extraArgs: {}}
      scheduler: {extraArgs: {}}
      node:
        name: <hostname>
        healthPort: 10290                    # /healthz /readyz /metrics /status (0: any free)

Unknown keys and bad values are refused with the path of the key
(``spec.network.serviceCIDR: invalid CIDR 'x'``).
"""

import ipaddress
import re
import socket
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from k0s_pki.errors import PkiError
from k0s_pki.keys import DEFAULT_KEY_TYPE, KEY_TYPES
from k0s_pki.units import parse_duration

API_VERSION = "k0s.k0sproject.io/v1beta1"
KIND = "ClusterConfig"
STORAGE_TYPES = ("k0s-store", "etcd", "external")
_FLAG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ConfigError(ValueError):
    """A configuration problem, prefixed with the path of the key at fault."""


# Field metadata: "key" is the YAML name, "check" turns the raw value into the
# field's value (raising ValueError with a message that the path is put before).
def _key(name: str, check=None) -> dict:
    return {"key": name, "check": check}


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"invalid port {value!r}: want an integer 0-65535")
    return value


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def _cidr(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=True))
    except ValueError as exc:
        raise ValueError(f"invalid CIDR {value!r}: {exc}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"want a non-empty string, got {value!r}")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"want a list of strings, got {value!r}")
    return tuple(_text(v) for v in value)


def _duration(value: Any) -> timedelta:
    try:
        delta = parse_duration(str(value))
    except PkiError as exc:
        raise ValueError(str(exc)) from None
    if delta <= timedelta(0):
        raise ValueError(f"duration {value!r} must be positive")
    return delta


def _one_of(*choices: str):
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"invalid value {value!r}: choose one of {', '.join(choices)}")
        return value

    return check


def _extra_args(value: Any) -> dict[str, str]:
    """``{flag: value}``; a flag is given without dashes, values become strings."""
    if not isinstance(value, dict):
        raise ValueError(f"want a mapping of flag name to value, got {value!r}")
    args = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not _FLAG_NAME.match(name):
            raise ValueError(f"invalid flag name {name!r}: write it without dashes, e.g. v")
        if isinstance(raw, dict | list) or raw is None:
            raise ValueError(f"flag {name!r}: want a scalar value, got {raw!r}")
        args[name] = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return args


@dataclass(frozen=True)
class ApiSpec:
    """kube-apiserver: where it listens and what its certificate names."""

    address: str = field(default="127.0.0.1", metadata=_key("address", _ip))
    port: int = field(default=6443, metadata=_key("port", _port))
    sans: tuple[str, ...] = field(default=(), metadata=_key("sans", _texts))
    extra_args: dict[str, str] = field(
        default_factory=dict, metadata=_key("extraArgs", _extra_args)
    )


@dataclass(frozen=True)
class NetworkSpec:
    """Service and pod networks and the DNS domain of services."""

    service_cidr: str = field(default="10.96.0.0/12", metadata=_key("serviceCIDR", _cidr))
    pod_cidr: str = field(default="10.244.0.0/16", metadata=_key("podCIDR", _cidr))
    cluster_domain: str = field(default="cluster.local", metadata=_key("clusterDomain", _text))


@dataclass(frozen=True)
class StoreSpec:
    """The embedded k0s-store (mutual TLS on loopback)."""

    client_port: int = field(default=2379, metadata=_key("clientPort", _port))
    extra_args: dict[str, str] = field(
        default_factory=dict, metadata=_key("extraArgs", _extra_args)
    )


@dataclass(frozen=True)
class EtcdSpec:
    """A real etcd member run by the launcher."""

    peer_address: str = field(default="127.0.0.1", metadata=_key("peerAddress", _ip))
    client_port: int = field(default=2379, metadata=_key("clientPort", _port))
    peer_port: int = field(default=2380, metadata=_key("peerPort", _port))
    extra_args: dict[str, str] = field(
        default_factory=dict, metadata=_key("extraArgs", _extra_args)
    )


@dataclass(frozen=True)
class ExternalSpec:
    """An etcd cluster run by someone else."""

    endpoints: tuple[str, ...] = field(default=(), metadata=_key("endpoints", _texts))
    ca_file: str = field(default="", metadata=_key("caFile", _text))
    client_cert_file: str = field(default="", metadata=_key("clientCertFile", _text))
    client_key_file: str = field(default="", metadata=_key("clientKeyFile", _text))


@dataclass(frozen=True)
class StorageSpec:
    """Which datastore the control plane uses."""

    type: str = field(default="k0s-store", metadata=_key("type", _one_of(*STORAGE_TYPES)))
    store: StoreSpec = field(default_factory=StoreSpec, metadata=_key("store"))
    etcd: EtcdSpec = field(default_factory=EtcdSpec, metadata=_key("etcd"))
    external: ExternalSpec = field(default_factory=ExternalSpec, metadata=_key("external"))


@dataclass(frozen=True)
class PkiSpec:
    """Key type, lifetimes and the renewal window of the certificates."""

    key_type: str = field(default=DEFAULT_KEY_TYPE, metadata=_key("keyType", _one_of(*KEY_TYPES)))
    leaf_validity: timedelta = field(
        default=timedelta(days=365), metadata=_key("leafValidity", _duration)
    )
    ca_validity: timedelta = field(
        default=timedelta(days=3650), metadata=_key("caValidity", _duration)
    )
    renew_before: timedelta = field(
        default=timedelta(days=90), metadata=_key("renewBefore", _duration)
    )
    check_interval: timedelta = field(
        default=timedelta(hours=1), metadata=_key("checkInterval", _duration)
    )


@dataclass(frozen=True)
class ExtraArgsSpec:
    """A Kubernetes component with no settings but its extra flags."""

    extra_args: dict[str, str] = field(
        default_factory=dict, metadata=_key("extraArgs", _extra_args)
    )


@dataclass(frozen=True)
class NodeSpec:
    """This node: its name and the port of the launcher's own HTTP endpoints."""

    name: str = field(
        default_factory=lambda: socket.gethostname().lower(), metadata=_key("name", _text)
    )
    health_port: int = field(default=10290, metadata=_key("healthPort", _port))


@dataclass(frozen=True)
class Spec:
    """Everything under ``spec``."""

    api: ApiSpec = field(default_factory=ApiSpec, metadata=_key("api"))
    network: NetworkSpec = field(default_factory=NetworkSpec, metadata=_key("network"))
    storage: StorageSpec = field(default_factory=StorageSpec, metadata=_key("storage"))
    pki: PkiSpec = field(default_factory=PkiSpec, metadata=_key("pki"))
    controller_manager: ExtraArgsSpec = field(
        default_factory=ExtraArgsSpec, metadata=_key("controllerManager")
    )
    scheduler: ExtraArgsSpec = field(default_factory=ExtraArgsSpec, metadata=_key("scheduler"))
    node: NodeSpec = field(default_factory=NodeSpec, metadata=_key("node"))


@dataclass(frozen=True)
class NodeConfig:
    """The whole file."""

    api_version: str = field(default=API_VERSION, metadata=_key("apiVersion", _one_of(API_VERSION)))
    kind: str = field(default=KIND, metadata=_key("kind", _one_of(KIND)))
    metadata: dict[str, Any] = field(default_factory=dict, metadata=_key("metadata", dict))
    spec: Spec = field(default_factory=Spec, metadata=_key("spec"))


def load_config(path: Path | None) -> NodeConfig:
    """Read and check the configuration file (None: all defaults).

    Raises:
        ConfigError: unreadable file, bad YAML, unknown key or bad value.
    """
    if path is None:
        return NodeConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw if raw is not None else {}, str(path))


def parse_config(raw: Any, source: str = "config") -> NodeConfig:
    """Build a :class:`NodeConfig` from parsed YAML, checking every key.

    Raises:
        ConfigError: unknown key or bad value, with the key's path.
    """
    config = _build(NodeConfig, raw, "")
    _check_together(config)
    return config


def _build(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'the file'}: want a mapping, got {raw!r}")
    by_key = {f.metadata["key"]: f for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        spec = by_key.get(key)
        if spec is None:
            known = ", ".join(by_key)
            raise ConfigError(f"{where}: unknown key (known here: {known})")
        check = spec.metadata["check"]
        if check is None:  # a nested section
            values[spec.name] = _build(spec.type, value if value is not None else {}, where)
            continue
        try:
            values[spec.name] = check(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return cls(**values)


def _check_together(config: NodeConfig) -> None:
    """Rules that involve more than one key."""
    spec = config.spec
    pki = spec.pki
    if pki.renew_before >= pki.leaf_validity:
        raise ConfigError(
            "spec.pki.renewBefore: must be shorter than spec.pki.leafValidity "
            "(else every leaf is renewed at every check)"
        )
    if spec.storage.type == "external":
        ext = spec.storage.external
        if not ext.endpoints:
            raise ConfigError("spec.storage.external.endpoints: required for type external")
        for name in ("caFile", "clientCertFile", "clientKeyFile"):
            value = getattr(ext, {f.metadata["key"]: f.name for f in fields(ext)}[name])
            if not value:
                raise ConfigError(f"spec.storage.external.{name}: required for type external")
    if spec.storage.type == "etcd":
        etcd = spec.storage.etcd
        if etcd.client_port == etcd.peer_port:
            raise ConfigError("spec.storage.etcd.peerPort: must differ from clientPort")
