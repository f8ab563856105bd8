"""CA rotation without downtime, in three phases an admin runs one by one.

Servers and clients read a CA *file* (``ca.crt``, ``etcd/ca.crt``,
``front-proxy-ca.crt``, the CA data of kubeconfigs) and trust every
certificate in it. So a CA can be replaced without a moment in which some
pair of peers disagrees, if trust always moves ahead of use:

``prepare``
    make the new CA (key, self-signed certificate named ``<CN>@<unix time>``,
    as Kubernetes names its self-signed CAs) and a *cross-signed* copy of it
    (the new CA's name and key, signed by the old CA); publish the trust
    bundle ``[old, new]`` in the CA file (and kubeconfigs). The old CA still
    signs. Then reload every component, so that all trust both.
``switch``
    the new CA becomes the signer (``<ca>.key``, bundle ``[new, old]``) and
    every leaf under it is re-issued from it, its file carrying the
    cross-signed CA after the leaf. Restart components as their leaves change;
    in any order: a peer with a new leaf and a peer with an old one trust
    each other through the bundle.
``finish``
    only once every leaf is from the new CA (checked): the bundle becomes
    ``[new]``, the cross-signed CA is dropped from leaf files, and the old
    CA's key and certificate go to ``pki/backup/``.

Why cross-sign: the bundle alone suffices when every component reloaded its
CA file after ``prepare``. One that did not (a forgotten kubeconfig copy, a
client off-node, a component that reads its CA only at start and was not
restarted) still trusts only the old CA; with the cross-signed CA in the
chain it verifies new leaves as ``leaf -> new (signed by old) -> old``, so
``switch`` cannot break it. Peers trusting the new CA find it in their trust
store first and ignore the cross-signed copy. The cost is one more
certificate per handshake during ``switch`` only.

The service-account key pair rotates the same way under the name ``sa``:
``prepare`` puts the new public key beside the old one in ``sa.pub`` (tokens
of either verify), ``switch`` makes the new key sign (``sa.key``), ``finish``
leaves only the new public key. Tokens signed by the old key stop verifying
at ``finish``; wait for bound tokens to be refreshed (about an hour) first.

State lives in ``pki/rotation/<name>/`` (``state.json``, ``new.key``,
``new.crt``, ``cross.crt``, ``old.key``, ``old.crt``). Every phase computes
its whole plan first and can be re-run after a crash; the directory moves to
``pki/backup/`` at ``finish``.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from k0s_pki import certs
from k0s_pki.authority import CROSS_CERT, STATE_FILE, Authority, load_authority, rotation_state
from k0s_pki.catalog import SA_NAME, ClusterConfig, LeafSpec, ca_spec
from k0s_pki.errors import PkiError
from k0s_pki.files import (
    KEY_MODE,
    PUBLIC_MODE,
    atomic_write,
    fsync_dir,
    read_file,
    write_pair,
)
from k0s_pki.keys import (
    PrivateKey,
    generate_key,
    key_type_of,
    load_private_key,
    private_key_pem,
    public_key_pem,
)
from k0s_pki.layout import Layout
from k0s_pki.leaf_files import leaf_paths, read_leaf, write_leaf
from k0s_pki.plan import Plan
from k0s_pki.provision import plan_issue
from k0s_pki.rotate import existing_leaves

PHASES = ("prepare", "switch", "finish")


def plan_phase(
    layout: Layout, name: str, phase: str, config: ClusterConfig, key_type: str | None = None
) -> Plan:
    """Plan one phase of the rotation of CA ``name`` (or ``sa``).

    Args:
        layout: the PKI directory.
        name: ``ca``, ``front-proxy-ca``, ``etcd-ca`` or ``sa``.
        phase: ``prepare``, ``switch`` or ``finish``.
        config: validities (the new CA gets ``ca_validity``, leaves ``leaf_validity``).
        key_type: the new CA's key type (default: the old one's).

    Raises:
        PkiError: the phase does not follow the current one, or files are broken.
    """
    if phase not in PHASES:
        raise PkiError(f"unknown phase {phase!r}: use prepare, switch, finish or status")
    state = rotation_state(layout, name)
    current = state["phase"] if state else None
    allowed = {
        "prepare": (None, "prepared"),
        "switch": ("prepared", "switched"),
        "finish": ("switched",),
    }[phase]
    if current not in allowed:
        raise PkiError(f"cannot {phase} {name}: rotation is {_describe(current)}")
    if name == SA_NAME:
        return _SA_PHASES[phase](layout, key_type)
    spec = ca_spec(name)
    steps = {"prepare": _prepare, "switch": _switch, "finish": _finish}[phase]
    return steps(layout, spec.name, config, key_type)


def status(layout: Layout, name: str) -> str:
    """One line on where the rotation of ``name`` stands and what to do next."""
    state = rotation_state(layout, name)
    if state is None:
        return f"{name}: no rotation in progress"
    hints = _SA_HINTS if name == SA_NAME else _CA_HINTS
    return f"{name}: {state['phase']} since {state['started']}; next: {hints[state['phase']]}"


_CA_HINTS = {
    "prepared": "reload every component, then run --phase switch",
    "switched": "restart components on their new leaves, then run --phase finish",
}
# sa is a key pair, not a CA: the API servers verify tokens with sa.pub; the
# API servers and controller-manager sign them with sa.key.
_SA_HINTS = {
    "prepared": "restart the API servers (to load the new sa.pub), then run --phase switch",
    "switched": "restart the API servers and controller-manager (to sign with the new "
    "sa.key), wait about an hour for tokens to be refreshed, then run --phase finish",
}


@dataclass(frozen=True)
class _Staged:
    """The new CA of a rotation, as kept in its rotation directory."""

    old: x509.Certificate
    new: x509.Certificate
    new_key: PrivateKey
    cross: x509.Certificate


def _prepare(layout: Layout, name: str, config: ClusterConfig, key_type: str | None) -> Plan:
    authority = _own_authority(layout, name)
    old, old_key = authority.signer, authority.key
    _require_leaves_from(layout, name, config, old)
    plan = Plan(layout)
    rdir = layout.rotation_dir(name)
    if rotation_state(layout, name):  # re-run: publish the same new CA again
        staged = _load_staged(layout, name)
    else:
        new_key = generate_key(key_type or key_type_of(old_key))
        base = certs.common_name(old.subject).split("@")[0]
        new = certs.issue_ca(
            new_key, f"{base}@{int(datetime.now(UTC).timestamp())}", config.ca_validity
        )
        staged = _Staged(old, new, new_key, certs.cross_sign(new, old, old_key))
        _add_pair(plan, "stage new CA", rdir / "new.key", rdir / "new.crt", new_key, [new])
        _add_pair(plan, "keep old CA", rdir / "old.key", rdir / "old.crt", old_key, [old])
        _add_file(plan, "stage cross-signed CA", rdir / CROSS_CERT, certs.certs_pem([staged.cross]))
        _add_state(plan, layout, name, "prepared", certs.fingerprint(old), certs.fingerprint(new))
    bundle = [staged.old, staged.new]
    spec = ca_spec(name)
    _add_file(
        plan,
        f"trust bundle {spec.path}.crt = old + new",
        layout.cert(spec.path),
        certs.certs_pem(bundle),
    )
    _republish_kubeconfigs(plan, layout, name, config, bundle, keep_chain=True)
    return plan


def _switch(layout: Layout, name: str, config: ClusterConfig, key_type: str | None) -> Plan:
    staged = _load_staged(layout, name)
    spec = ca_spec(name)
    bundle = [staged.new, staged.old]
    plan = Plan(layout)
    key_pem = private_key_pem(staged.new_key)
    plan.add(
        f"new CA signs: {spec.path}.key, bundle new + old",
        [layout.key(spec.path), layout.cert(spec.path)],
        lambda: write_pair(
            layout.key(spec.path), layout.cert(spec.path), key_pem, certs.certs_pem(bundle)
        ),
    )
    new_authority = Authority(spec, bundle, staged.new, staged.new_key, [staged.cross])
    for leaf_spec in _leaves_under(layout, name, config):
        leaf = read_leaf(layout, leaf_spec)
        conf = leaf.kubeconfig
        plan_issue(
            plan,
            leaf_spec,
            new_authority,
            leaf.cert.subject,
            certs.san_strings(leaf.cert),
            key_type or key_type_of(leaf.key),
            config.leaf_validity,
            conf.server if conf else config.api_server_url(),
            conf.cluster_name if conf else config.cluster_name,
            "re-issue from new CA",
        )
    _add_state(
        plan, layout, name, "switched", certs.fingerprint(staged.old), certs.fingerprint(staged.new)
    )
    return plan


def _finish(layout: Layout, name: str, config: ClusterConfig, key_type: str | None) -> Plan:
    staged = _load_staged(layout, name)
    spec = ca_spec(name)
    plan = Plan(layout)
    for leaf_spec in _leaves_under(layout, name, config):
        leaf = read_leaf(layout, leaf_spec)
        if not certs.issued_by(leaf.cert, staged.new):
            raise PkiError(
                f"cannot finish {name}: {leaf_spec.name} is not issued by the new CA "
                "yet: run --phase switch again"
            )
        if not leaf_spec.kubeconfig:
            _add_file(
                plan,
                f"drop cross-signed CA from {leaf_spec.name}",
                layout.cert(leaf_spec.path),
                certs.certs_pem([leaf.cert]),
            )
    _add_file(
        plan,
        f"trust bundle {spec.path}.crt = new",
        layout.cert(spec.path),
        certs.certs_pem([staged.new]),
    )
    _republish_kubeconfigs(plan, layout, name, config, [staged.new], keep_chain=False)
    _add_archive(plan, layout, name)
    return plan


def _sa_prepare(layout: Layout, key_type: str | None) -> Plan:
    old_key = load_private_key(read_file(layout.sa_key), str(layout.sa_key))
    rdir = layout.rotation_dir(SA_NAME)
    plan = Plan(layout)
    if rotation_state(layout, SA_NAME):
        new_key = load_private_key(read_file(rdir / "new.key"), str(rdir / "new.key"))
        old_key = load_private_key(read_file(rdir / "old.key"), str(rdir / "old.key"))
    else:
        new_key = generate_key(key_type or key_type_of(old_key))
        _add_file(plan, "stage new SA key", rdir / "new.key", private_key_pem(new_key), KEY_MODE)
        _add_file(plan, "keep old SA key", rdir / "old.key", private_key_pem(old_key), KEY_MODE)
        _add_state(plan, layout, SA_NAME, "prepared", _key_id(old_key), _key_id(new_key))
    _add_file(
        plan, "sa.pub = old + new", layout.sa_pub, public_key_pem(old_key) + public_key_pem(new_key)
    )
    return plan


def _sa_switch(layout: Layout, key_type: str | None) -> Plan:
    rdir = layout.rotation_dir(SA_NAME)
    old_key = load_private_key(read_file(rdir / "old.key"), str(rdir / "old.key"))
    new_key = load_private_key(read_file(rdir / "new.key"), str(rdir / "new.key"))
    plan = Plan(layout)
    _add_file(plan, "new key signs: sa.key", layout.sa_key, private_key_pem(new_key), KEY_MODE)
    _add_state(plan, layout, SA_NAME, "switched", _key_id(old_key), _key_id(new_key))
    return plan


def _sa_finish(layout: Layout, key_type: str | None) -> Plan:
    rdir = layout.rotation_dir(SA_NAME)
    new_key = load_private_key(read_file(rdir / "new.key"), str(rdir / "new.key"))
    plan = Plan(layout)
    _add_file(plan, "sa.pub = new", layout.sa_pub, public_key_pem(new_key))
    _add_archive(plan, layout, SA_NAME)
    return plan


_SA_PHASES = {"prepare": _sa_prepare, "switch": _sa_switch, "finish": _sa_finish}


def _own_authority(layout: Layout, name: str) -> Authority:
    authority = load_authority(layout, ca_spec(name))
    if authority.external:
        raise PkiError(f"CA {name} is external (no key here): rotate it where its key is")
    if len(authority.bundle) > 1 and not rotation_state(layout, name):
        raise PkiError(
            f"{layout.cert(authority.spec.path)} holds several CAs but no rotation "
            "is in progress: clean it up first"
        )
    return authority


def _require_leaves_from(
    layout: Layout, name: str, config: ClusterConfig, signer: x509.Certificate
) -> None:
    """Refuse to start a rotation that ``switch`` could not carry through.

    ``switch`` re-issues every leaf under ``name`` keeping its key type,
    subject and SANs, so each must load (readable PEM, key matching its
    certificate). Each must also come from ``signer``, the CA being rotated:
    the no-downtime argument above holds only for such leaves, and ``switch``
    would silently replace one from elsewhere; the admin should look first.

    Raises:
        PkiError: the first leaf that is broken or issued by another CA.
    """
    for spec in _leaves_under(layout, name, config):
        try:
            leaf = read_leaf(layout, spec)
        except PkiError as exc:
            raise PkiError(
                f"cannot prepare {name}: {exc}: restore or remove {spec.name} "
                "(init re-creates it), then prepare again"
            ) from None
        if not certs.issued_by(leaf.cert, signer):
            path = leaf_paths(layout, spec)[-1]
            raise PkiError(
                f"cannot prepare {name}: {spec.name} ({path}) is not issued by the CA "
                "being rotated: run init (it re-issues such a leaf), then prepare again"
            )


def _load_staged(layout: Layout, name: str) -> _Staged:
    rdir = layout.rotation_dir(name)

    def cert(file: str) -> x509.Certificate:
        return certs.load_certs(read_file(rdir / file), str(rdir / file))[0]

    new_key = load_private_key(read_file(rdir / "new.key"), str(rdir / "new.key"))
    return _Staged(cert("old.crt"), cert("new.crt"), new_key, cert(CROSS_CERT))


def _leaves_under(layout: Layout, name: str, config: ClusterConfig) -> list[LeafSpec]:
    return [s for s in existing_leaves(layout, config) if s.ca == name]


def _republish_kubeconfigs(
    plan: Plan,
    layout: Layout,
    name: str,
    config: ClusterConfig,
    bundle: list[x509.Certificate],
    keep_chain: bool,
) -> None:
    """Rewrite the CA data of the kubeconfigs under CA ``name`` (same client key)."""
    bundle_pem = certs.certs_pem(bundle)
    for spec in _leaves_under(layout, name, config):
        if not spec.kubeconfig:
            continue
        leaf = read_leaf(layout, spec)
        chain = leaf.certs if keep_chain else [leaf.cert]
        conf = leaf.kubeconfig

        def write(spec=spec, leaf=leaf, chain=chain, conf=conf) -> None:
            write_leaf(layout, spec, leaf.key, chain, bundle_pem, conf.server, conf.cluster_name)

        plan.add(f"CA data of {spec.name}", [layout.kubeconfig(spec.path)], write)


def _add_pair(plan: Plan, what: str, key_path, cert_path, key: PrivateKey, chain) -> None:
    key_pem, cert_pem = private_key_pem(key), certs.certs_pem(chain)
    plan.add(
        what, [key_path, cert_path], lambda: write_pair(key_path, cert_path, key_pem, cert_pem)
    )


def _add_file(plan: Plan, what: str, path, data: bytes, mode: int = PUBLIC_MODE) -> None:
    plan.add(what, [path], lambda: atomic_write(path, data, mode))


def _add_state(plan: Plan, layout: Layout, name: str, phase: str, old: str, new: str) -> None:
    previous = rotation_state(layout, name)
    started = previous["started"] if previous else datetime.now(UTC).isoformat(timespec="seconds")
    state = {"phase": phase, "started": started, "old": old, "new": new}
    data = (json.dumps(state, indent=2) + "\n").encode()
    _add_file(plan, f"{name} rotation: {phase}", layout.rotation_dir(name) / STATE_FILE, data)


def _add_archive(plan: Plan, layout: Layout, name: str) -> None:
    """Move the rotation directory (old key and certificate included) to the backups."""
    rdir = layout.rotation_dir(name)
    stamp = layout.new_backup_dir()
    target = stamp.with_name(f"{stamp.name}-{name}-rotation")

    def archive() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(rdir, target)
        except OSError as exc:
            raise PkiError(f"cannot archive {rdir} to {target}: {exc.strerror}") from None
        fsync_dir(target.parent)
        fsync_dir(rdir.parent)

    plan.add(f"archive old {name} to {target}", [target / STATE_FILE], archive)


def _key_id(key: PrivateKey) -> str:
    return hashlib.sha256(public_key_pem(key)).hexdigest()


def _describe(phase: str | None) -> str:
    return "not started" if phase is None else f"in phase {phase!r}"
