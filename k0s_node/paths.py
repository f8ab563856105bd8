"""Where the launcher keeps things under its data directory ``D``::

    D/pki/...                     the cluster PKI (k0s_pki's layout)
    D/admin.conf ...              kubeconfigs (beside pki/, as kubeadm does)
    D/store/                      k0s-store's data (storage.type k0s-store)
    D/etcd/                       etcd's data (storage.type etcd)
    D/bin/                        kube binaries, looked up after --bin-dir
    D/logs/<component>.log        one log per component, appended across restarts
    D/run/k0s-node.lock           held by the running launcher
    D/run/k0s-node.json           pid and health address of the running launcher

The default ``D`` is the store's: ``$K0S_STORE_DATA_DIR`` or ``/var/lib/k0s-store``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from k0s_pki.layout import DATA_DIR_ENV, DEFAULT_DATA_DIR, Layout


def default_data_dir() -> Path:
    """``$K0S_STORE_DATA_DIR``, or ``/var/lib/k0s-store``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class NodePaths:
    """The files of one node's data directory."""

    root: Path

    @classmethod
    def at(cls, root: Path | None) -> "NodePaths":
        """Paths under ``root`` (default: :func:`default_data_dir`), made absolute."""
        return cls(Path(root or default_data_dir()).absolute())

    @property
    def pki(self) -> Layout:
        """The PKI layout: ``D/pki`` with kubeconfigs in ``D``."""
        return Layout.at(self.root / "pki")

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def etcd_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "k0s-node.lock"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "k0s-node.json"

    def log(self, component: str) -> Path:
        """``D/logs/<component>.log``."""
        return self.log_dir / f"{component}.log"
