"""``init``: create what is missing, keep what is valid.

For each CA: an existing one is kept (it must load and be unexpired); a
missing one is created, unless only half of it is there. A certificate
without a key marks an external CA. The service-account pair is kept or
created. For each leaf: a valid one (chains to its CA, unexpired, has every
SAN and usage the configuration asks for) is kept; a missing or invalid one
is issued, keeping the SANs it already had; a kubeconfig whose embedded CA is
out of date is rewritten with its certificate kept. Under an external CA an
invalid or missing leaf is an error pointing at ``generate-csr``. A corrupt
file or a key that does not match its certificate is an error, never
silently replaced.
"""

from collections.abc import Sequence
from datetime import timedelta

from cryptography import x509

from k0s_pki import certs
from k0s_pki.authority import Authority, load_authority
from k0s_pki.catalog import CAS, CaSpec, ClusterConfig, LeafSpec, leaves
from k0s_pki.errors import PkiError
from k0s_pki.external import csr_paths, signed_kubeconfig_material
from k0s_pki.files import PUBLIC_MODE, atomic_write, read_file, recover_pair, write_pair
from k0s_pki.keys import (
    PrivateKey,
    generate_key,
    load_private_key,
    load_public_keys,
    matches,
    private_key_pem,
    public_key_pem,
    same_public_key,
)
from k0s_pki.layout import Layout
from k0s_pki.leaf_files import leaf_paths, read_leaf, write_leaf
from k0s_pki.plan import Plan
from k0s_pki.validity import leaf_problems, time_problems


def plan_init(layout: Layout, config: ClusterConfig) -> Plan:
    """Plan everything ``init`` would write (nothing is written yet).

    Raises:
        PkiError: bad configuration or a broken file in the directory.
    """
    config.validate()
    plan = Plan(layout)
    authorities = {spec.name: _ensure_ca(plan, layout, spec, config) for spec in CAS}
    _ensure_sa(plan, layout, config)
    for spec in leaves(config):
        _ensure_leaf(plan, layout, spec, authorities[spec.ca], config)
    return plan


def plan_issue(
    plan: Plan,
    spec: LeafSpec,
    authority: Authority,
    subject: x509.Name,
    sans: Sequence[str],
    key_type: str,
    validity: timedelta,
    server: str,
    cluster_name: str,
    why: str,
) -> None:
    """Sign a leaf with a fresh key now and add the step writing it to ``plan``."""
    key = generate_key(key_type)
    chain = authority.issue(key.public_key(), subject, sans, spec.usage, validity)
    _add_leaf_write(plan, spec, key, chain, authority, server, cluster_name, why)


def _add_leaf_write(
    plan: Plan,
    spec: LeafSpec,
    key: PrivateKey,
    chain: list[x509.Certificate],
    authority: Authority,
    server: str,
    cluster_name: str,
    why: str,
) -> None:
    bundle, layout = authority.bundle_pem(), plan.layout

    def write() -> None:
        write_leaf(layout, spec, key, chain, bundle, server, cluster_name)

    plan.add(f"{why} {spec.name}", leaf_paths(layout, spec), write)


def _ensure_ca(plan: Plan, layout: Layout, spec: CaSpec, config: ClusterConfig) -> Authority:
    cert_path, key_path = layout.cert(spec.path), layout.key(spec.path)
    if cert_path.exists():
        authority = load_authority(layout, spec)
        problems = time_problems(authority.signer or authority.bundle[0])
        if problems:
            raise PkiError(f"CA {spec.name} ({cert_path}) {problems[0]}: rotate it with rotate-ca")
        return authority
    if key_path.exists():
        raise PkiError(
            f"{key_path} exists without {cert_path}: restore the certificate or remove the key"
        )
    key = generate_key(config.key_type)
    cert = certs.issue_ca(key, spec.common_name, config.ca_validity)
    key_pem, cert_pem = private_key_pem(key), certs.certs_pem([cert])
    plan.add(
        f"create CA {spec.name}",
        [key_path, cert_path],
        lambda: write_pair(key_path, cert_path, key_pem, cert_pem),
    )
    return Authority(spec, [cert], cert, key)


def _ensure_sa(plan: Plan, layout: Layout, config: ClusterConfig) -> None:
    key_path, pub_path = layout.sa_key, layout.sa_pub
    recover_pair(key_path, pub_path)
    if key_path.exists():
        key = load_private_key(read_file(key_path), str(key_path))
        if pub_path.exists():
            if not any(
                same_public_key(key, p)
                for p in load_public_keys(read_file(pub_path), str(pub_path))
            ):
                raise PkiError(f"{pub_path} does not hold the public key of {key_path}")
            return
        pub = public_key_pem(key)
        plan.add("create sa.pub", [pub_path], lambda: atomic_write(pub_path, pub, PUBLIC_MODE))
        return
    if pub_path.exists():
        raise PkiError(f"{pub_path} exists without {key_path}: restore the key or remove sa.pub")
    key = generate_key(config.key_type)
    key_pem, pub = private_key_pem(key), public_key_pem(key)
    plan.add(
        "create service-account key pair sa",
        [key_path, pub_path],
        lambda: write_pair(key_path, pub_path, key_pem, pub),
    )


def _ensure_leaf(
    plan: Plan, layout: Layout, spec: LeafSpec, authority: Authority, config: ClusterConfig
) -> None:
    server, cluster = config.api_server_url(), config.cluster_name
    leaf = read_leaf(layout, spec)
    if leaf is None and spec.kubeconfig and authority.external:
        leaf = signed_kubeconfig_material(layout, spec)
        if leaf is not None and not matches(leaf.cert, leaf.key):
            raise PkiError(
                f"{csr_paths(layout, spec)[2]}: does not match {csr_paths(layout, spec)[0]}"
            )
    if leaf is not None:
        problems = leaf_problems(leaf.certs, spec, authority)
        if not problems:
            stale = leaf.kubeconfig is None or leaf.kubeconfig.ca_pem != authority.bundle_pem()
            if stale and spec.kubeconfig:
                if leaf.kubeconfig is not None:
                    server, cluster = leaf.kubeconfig.server, leaf.kubeconfig.cluster_name
                _add_leaf_write(
                    plan, spec, leaf.key, leaf.certs, authority, server, cluster, "write"
                )
            return
        if authority.external:
            raise PkiError(
                f"{spec.name}: {problems[0]}, and CA {spec.ca} is external: "
                f"have {csr_paths(layout, spec)[1]} signed again"
            )
        sans = _union(certs.san_strings(leaf.cert), spec.sans)
        plan_issue(
            plan,
            spec,
            authority,
            _subject(spec),
            sans,
            config.key_type,
            config.leaf_validity,
            server,
            cluster,
            f"re-issue ({problems[0]})",
        )
        return
    if authority.external:
        csr = csr_paths(layout, spec)[1]
        raise PkiError(
            f"{spec.name}: missing, and CA {spec.ca} is external (no "
            f"{authority.spec.path}.key): run generate-csr and have {csr} signed"
        )
    plan_issue(
        plan,
        spec,
        authority,
        _subject(spec),
        spec.sans,
        config.key_type,
        config.leaf_validity,
        server,
        cluster,
        "create",
    )


def _subject(spec: LeafSpec) -> x509.Name:
    return certs.subject_name(spec.common_name, spec.organizations)


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """``first`` then what ``second`` adds (case-blind), in order."""
    seen = {s.lower() for s in first}
    return [*first, *(s for s in second if s.lower() not in seen)]
