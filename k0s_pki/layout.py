"""Where every file lives: a kubeadm-compatible PKI directory.

Default PKI directory: the node's data directory's ``pki/``, that is
``$K0S_STORE_DATA_DIR/pki`` when that variable is set, else
``/var/lib/k0s-store/pki``. Kubeconfigs go to the PKI directory's parent,
as kubeadm puts them in ``/etc/kubernetes`` beside ``/etc/kubernetes/pki``::

    <data>/admin.conf ... scheduler.conf         kubeconfigs (0600)
    <data>/pki/ca.crt, ca.key                    CA (ca.crt may be a bundle)
    <data>/pki/apiserver.crt, apiserver.key      leaves (0644 / 0600)
    <data>/pki/etcd/ca.crt, etcd/server.crt ...  the etcd set
    <data>/pki/sa.key, sa.pub                    service-account key pair
    <data>/pki/backup/<UTC time>/...             files replaced by rotations
    <data>/pki/rotation/<CA>/                    state of a CA rotation
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/k0s-store")
DATA_DIR_ENV = "K0S_STORE_DATA_DIR"


def default_pki_dir() -> Path:
    """``$K0S_STORE_DATA_DIR/pki``, or ``/var/lib/k0s-store/pki``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / "pki"


@dataclass(frozen=True)
class Layout:
    """Paths of a PKI directory and of the kubeconfigs that go with it."""

    pki_dir: Path
    kubeconfig_dir: Path

    @classmethod
    def at(cls, pki_dir: Path, kubeconfig_dir: Path | None = None) -> "Layout":
        """A layout with kubeconfigs in ``kubeconfig_dir`` (default: beside ``pki_dir``)."""
        pki_dir = Path(pki_dir).absolute()
        return cls(pki_dir, Path(kubeconfig_dir).absolute() if kubeconfig_dir else pki_dir.parent)

    def cert(self, stem: str) -> Path:
        """``<pki>/<stem>.crt``."""
        return self.pki_dir / f"{stem}.crt"

    def key(self, stem: str) -> Path:
        """``<pki>/<stem>.key``."""
        return self.pki_dir / f"{stem}.key"

    def csr(self, stem: str) -> Path:
        """``<pki>/<stem>.csr`` (written by generate-csr)."""
        return self.pki_dir / f"{stem}.csr"

    def kubeconfig(self, name: str) -> Path:
        """``<kubeconfig dir>/<name>``."""
        return self.kubeconfig_dir / name

    @property
    def sa_key(self) -> Path:
        """The service-account signing key."""
        return self.pki_dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """The service-account verification keys (one or, mid-rotation, two)."""
        return self.pki_dir / "sa.pub"

    def rotation_dir(self, name: str) -> Path:
        """State and new key material of a CA (or SA) rotation in progress."""
        return self.pki_dir / "rotation" / name

    def new_backup_dir(self) -> Path:
        """A fresh ``backup/<UTC time>`` directory name (not created)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return self.pki_dir / "backup" / stamp
