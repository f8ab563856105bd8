"""Kubeconfig files: a small YAML emitter and reader for their one fixed shape.

The shape is kubeadm's: one cluster, one user, one context, with the CA
bundle, the client certificate and the client key embedded as base64 PEM
(``*-data`` fields). Strings are emitted as double-quoted YAML scalars
(JSON string syntax is valid YAML), so names such as ``system:kube-scheduler``
need no further thought; base64 data is a plain scalar.

The reader understands what the emitter writes and kubeadm's unquoted
variant; it is not a YAML parser.
"""

import base64
import json
import re
from dataclasses import dataclass

from k0s_pki.errors import PkiError

_LINE = re.compile(r"^\s*(?:-\s+)?([A-Za-z-]+):\s*(.*?)\s*$")


@dataclass(frozen=True)
class Kubeconfig:
    """The parts of a kubeconfig the PKI cares about (PEM as bytes)."""

    cluster_name: str
    server: str
    ca_pem: bytes
    user: str
    cert_pem: bytes
    key_pem: bytes


def render(config: Kubeconfig) -> bytes:
    """Emit a kubeconfig as YAML.

    Args:
        config: what to embed.

    Returns:
        The file content.
    """
    context = f"{config.user}@{config.cluster_name}"
    lines = [
        "apiVersion: v1",
        "clusters:",
        "- cluster:",
        f"    certificate-authority-data: {_b64(config.ca_pem)}",
        f"    server: {_quote(config.server)}",
        f"  name: {_quote(config.cluster_name)}",
        "contexts:",
        "- context:",
        f"    cluster: {_quote(config.cluster_name)}",
        f"    user: {_quote(config.user)}",
        f"  name: {_quote(context)}",
        f"current-context: {_quote(context)}",
        "kind: Config",
        "preferences: {}",
        "users:",
        f"- name: {_quote(config.user)}",
        "  user:",
        f"    client-certificate-data: {_b64(config.cert_pem)}",
        f"    client-key-data: {_b64(config.key_pem)}",
    ]
    return ("\n".join(lines) + "\n").encode()


def parse(text: bytes, source: str) -> Kubeconfig:
    """Read back a kubeconfig written by :func:`render` (or by kubeadm).

    Args:
        text: the file content.
        source: its path, for error messages.

    Raises:
        PkiError: a field is missing or its base64 is corrupt.
    """
    fields: dict[str, str] = {}
    section = ""
    for raw in text.decode(errors="replace").splitlines():
        match = _LINE.match(raw)
        if not match:
            continue
        key, value = match.groups()
        if not raw.startswith(" ") and not raw.startswith("-"):
            section = key
        qualified = f"{section}.{key}"
        if value and qualified not in fields:
            fields[qualified] = _unquote(value)
    wanted = {
        "cluster_name": "clusters.name",
        "server": "clusters.server",
        "ca_pem": "clusters.certificate-authority-data",
        "user": "users.name",
        "cert_pem": "users.client-certificate-data",
        "key_pem": "users.client-key-data",
    }
    missing = [f for f in wanted.values() if f not in fields]
    if missing:
        raise PkiError(f"{source}: not a kubeconfig with embedded certificates (no {missing[0]})")
    values = {attr: fields[f] for attr, f in wanted.items()}
    for attr in ("ca_pem", "cert_pem", "key_pem"):
        try:
            values[attr] = base64.b64decode(values[attr], validate=True)
        except ValueError:
            raise PkiError(f"{source}: corrupt base64 in {wanted[attr]}") from None
    return Kubeconfig(**values)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _quote(text: str) -> str:
    return json.dumps(text)


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return json.loads(value)
    if value.startswith("'") and value.endswith("'"):
        return value[1:-1].replace("''", "'")
    return value
