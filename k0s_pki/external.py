"""External-CA mode: keys and CSRs for an outside CA, and picking up what it signed.

A CA whose ``<ca>.crt`` is present without ``<ca>.key`` is external: nothing
under it is signed here. ``generate-csr`` writes, for every leaf of such a
CA (or of every CA, with ``all_cas``), a fresh key and a CSR carrying the
subject and SANs the catalog asks for:

- pair leaves: ``<pki>/<stem>.key`` and ``<pki>/<stem>.csr``; the signed
  certificate goes to ``<pki>/<stem>.crt``;
- kubeconfigs: ``<kubeconfig dir>/<name>.key`` and ``<name>.csr``; the signed
  certificate goes to ``<name>.crt``, and ``init`` then writes the kubeconfig.

An existing key is reused, so a CSR can be regenerated without invalidating
one already sent out.
"""

from pathlib import Path

from k0s_pki import certs
from k0s_pki.catalog import CAS, ClusterConfig, LeafSpec, leaves
from k0s_pki.files import KEY_MODE, PUBLIC_MODE, atomic_write, read_file
from k0s_pki.keys import generate_key, load_private_key, private_key_pem
from k0s_pki.layout import Layout
from k0s_pki.leaf_files import Leaf
from k0s_pki.plan import Plan


def csr_paths(layout: Layout, spec: LeafSpec) -> tuple[Path, Path, Path]:
    """(key, csr, signed cert) paths for a leaf signed outside."""
    if spec.kubeconfig:
        base = layout.kubeconfig(spec.path)
        return tuple(base.with_name(f"{base.name}.{ext}") for ext in ("key", "csr", "crt"))
    return layout.key(spec.path), layout.csr(spec.path), layout.cert(spec.path)


def plan_generate_csr(layout: Layout, config: ClusterConfig, all_cas: bool = False) -> Plan:
    """Plan keys and CSRs for the leaves of external CAs (or of all CAs).

    Args:
        all_cas: make CSRs for every leaf, even where a CA key is present.
    """
    config.validate()
    external = {ca.name for ca in CAS if all_cas or not layout.key(ca.path).exists()}
    plan = Plan(layout)
    for spec in leaves(config):
        if spec.ca not in external:
            continue
        key_path, csr_path, _ = csr_paths(layout, spec)
        if key_path.exists():
            key = load_private_key(read_file(key_path), str(key_path))
        else:
            key = generate_key(config.key_type)
            plan.add(
                f"key {key_path}", [key_path], _writer(key_path, private_key_pem(key), KEY_MODE)
            )
        subject = certs.subject_name(spec.common_name, spec.organizations)
        csr = certs.make_csr(key, subject, spec.sans)
        plan.add(f"CSR {csr_path}", [csr_path], _writer(csr_path, csr, PUBLIC_MODE))
    return plan


def signed_kubeconfig_material(layout: Layout, spec: LeafSpec) -> Leaf | None:
    """The key and outside-signed certificate of a kubeconfig, if both are there."""
    key_path, _, cert_path = csr_paths(layout, spec)
    if not (key_path.exists() and cert_path.exists()):
        return None
    key = load_private_key(read_file(key_path), str(key_path))
    chain = certs.load_certs(read_file(cert_path), str(cert_path))
    return Leaf(chain, key)


def _writer(path: Path, data: bytes, mode: int):
    return lambda: atomic_write(path, data, mode)
