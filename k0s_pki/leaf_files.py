"""Reading and writing one leaf: a ``.crt``/``.key`` pair or a kubeconfig."""

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from k0s_pki import certs
from k0s_pki.catalog import LeafSpec
from k0s_pki.errors import PkiError
from k0s_pki.files import KEY_MODE, atomic_write, read_file, recover_pair, write_pair
from k0s_pki.keys import PrivateKey, load_private_key, matches, private_key_pem
from k0s_pki.kubeconfig import Kubeconfig, parse, render
from k0s_pki.layout import Layout


@dataclass(frozen=True)
class Leaf:
    """A leaf as found on disk.

    Attributes:
        certs: the certificate then its chain.
        key: its private key.
        kubeconfig: the parsed kubeconfig, for kubeconfig leaves.
    """

    certs: list[x509.Certificate]
    key: PrivateKey
    kubeconfig: Kubeconfig | None = None

    @property
    def cert(self) -> x509.Certificate:
        """The leaf certificate itself."""
        return self.certs[0]


def leaf_paths(layout: Layout, spec: LeafSpec) -> list[Path]:
    """The files a leaf occupies."""
    if spec.kubeconfig:
        return [layout.kubeconfig(spec.path)]
    return [layout.key(spec.path), layout.cert(spec.path)]


def read_leaf(layout: Layout, spec: LeafSpec) -> Leaf | None:
    """Load a leaf, or None if it does not exist.

    Raises:
        PkiError: a file is corrupt, half there, or the key does not match.
    """
    if spec.kubeconfig:
        path = layout.kubeconfig(spec.path)
        if not path.exists():
            return None
        conf = parse(read_file(path), str(path))
        chain = certs.load_certs(conf.cert_pem, f"{path} client-certificate-data")
        key = load_private_key(conf.key_pem, f"{path} client-key-data")
        source = str(path)
    else:
        key_path, cert_path = layout.key(spec.path), layout.cert(spec.path)
        recover_pair(key_path, cert_path)
        if not key_path.exists() and not cert_path.exists():
            return None
        chain = certs.load_certs(read_file(cert_path), str(cert_path))
        key = load_private_key(read_file(key_path), str(key_path))
        conf, source = None, str(cert_path)
    if not matches(chain[0], key):
        raise PkiError(f"{source}: private key does not match the certificate")
    return Leaf(chain, key, conf)


def write_leaf(
    layout: Layout,
    spec: LeafSpec,
    key: PrivateKey,
    chain: list[x509.Certificate],
    ca_bundle_pem: bytes,
    server: str,
    cluster_name: str,
) -> None:
    """Write a leaf crash-safely (a pair via :func:`k0s_pki.files.write_pair`,
    a kubeconfig in one atomic write).

    Args:
        ca_bundle_pem, server, cluster_name: used for kubeconfigs only.
    """
    cert_pem, key_pem = certs.certs_pem(chain), private_key_pem(key)
    if spec.kubeconfig:
        user = certs.common_name(chain[0].subject)
        conf = Kubeconfig(cluster_name, server, ca_bundle_pem, user, cert_pem, key_pem)
        atomic_write(layout.kubeconfig(spec.path), render(conf), KEY_MODE)
    else:
        write_pair(layout.key(spec.path), layout.cert(spec.path), key_pem, cert_pem)
