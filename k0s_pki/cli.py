"""``k0s-pki``: the admin's command line.

``--pki-dir`` (default: ``$K0S_STORE_DATA_DIR/pki``, else
``/var/lib/k0s-store/pki``) and ``--kubeconfig-dir`` (default: the PKI
directory's parent) go before or after the subcommand; every subcommand
takes only the flags it uses. Cluster settings come from ``--config FILE`` (TOML, keys
named like the flags with underscores: ``node_name``, ``advertise_address``,
``service_cidr``, ``cluster_domain``, ``extra_sans``, ``etcd_extra_sans``,
``key_type``, ``leaf_validity``, ``ca_validity``, ``konnectivity``,
``cluster_name``, ``api_port``) overridden by flags.

Exit status: 0 success; 1 an error (one line on stderr, nothing changed) or,
for ``verify``, problems found; ``check-expiration``: 0 fine, 1 something
expires within ``--warn-within``, 2 something is expired, 3 error.
"""

import argparse
import dataclasses
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from k0s_pki import ca_rotation, check
from k0s_pki.catalog import CAS, SA_NAME, ClusterConfig
from k0s_pki.errors import PkiError
from k0s_pki.external import plan_generate_csr
from k0s_pki.files import KEY_MODE, atomic_write
from k0s_pki.keys import KEY_TYPES
from k0s_pki.layout import Layout, default_pki_dir
from k0s_pki.plan import Plan
from k0s_pki.provision import plan_init
from k0s_pki.rotate import plan_rotate
from k0s_pki.units import parse_duration
from k0s_pki.users import user_kubeconfig

_DURATION_FIELDS = ("leaf_validity", "ca_validity")
_LIST_FIELDS = ("extra_sans", "etcd_extra_sans")


def main(argv: list[str] | None = None) -> int:
    """Run ``k0s-pki``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except PkiError as exc:
        print(f"k0s-pki: error: {exc}", file=sys.stderr)
        return 3 if args.command == "check-expiration" else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k0s-pki", description=__doc__.split("\n\n")[0])
    # The directory flags are global (before the subcommand) and per subcommand
    # (after it), as kubectl takes its global flags; the subcommands' copies
    # default to "not given" so that they never hide a value given before.
    _directory_flags(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, *groups, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        _directory_flags(p, argparse.SUPPRESS)
        for group in groups:
            group(p)
        return p

    p = command(
        "init",
        "create what is missing, keep what is valid",
        _identity_flags,
        _issue_flags,
        _ca_flags,
        _kubeconfig_flags,
        _konnectivity_flag,
    )
    _dry_run_flag(p)
    p.set_defaults(run=_init)

    p = command("check-expiration", "what expires when")
    p.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    p.add_argument("--warn-within", default="30d", help="exit 1 if anything expires within (30d)")
    p.set_defaults(run=_check_expiration)

    p = command("rotate", "re-issue leaves with fresh keys", _identity_flags, _issue_flags)
    p.add_argument("names", nargs="*", default=["all"], help="leaf names, or all (the default)")
    p.add_argument("--expiring-within", help="only leaves expiring within this duration, e.g. 90d")
    _dry_run_flag(p)
    p.set_defaults(run=_rotate)

    p = command(
        "rotate-ca",
        "rotate a CA (or sa) without downtime",
        _identity_flags,
        _issue_flags,
        _ca_flags,
        _kubeconfig_flags,
    )
    p.add_argument("name", choices=[*(c.name for c in CAS), "etcd/ca", SA_NAME], help="the CA")
    p.add_argument(
        "--phase",
        required=True,
        choices=[*ca_rotation.PHASES, "status"],
        help="prepare (trust both), switch (sign with the new), finish (drop the old), status",
    )
    _dry_run_flag(p)
    p.set_defaults(run=_rotate_ca)

    p = command("status", "where every CA rotation stands")
    p.set_defaults(run=_status)

    p = command(
        "verify", "chains, validity, SANs, keys, modes", _identity_flags, _konnectivity_flag
    )
    p.set_defaults(run=_verify)

    p = command(
        "generate-csr",
        "keys and CSRs for an outside CA",
        _identity_flags,
        _key_type_flag,
        _konnectivity_flag,
    )
    p.add_argument("--all", action="store_true", help="for every leaf, not only external CAs'")
    p.set_defaults(run=_generate_csr)

    p = sub.add_parser("kubeconfig", help="kubeconfigs for users", description="kubeconfigs")
    ksub = p.add_subparsers(dest="kubeconfig_command", required=True)
    p = command(
        "create",
        "a kubeconfig for USER, signed by the cluster CA",
        _config_flag,
        _key_type_flag,
        _kubeconfig_flags,
        parent=ksub,
    )
    p.add_argument("--advertise-address", help="API server address in the kubeconfig")
    p.add_argument("user", help="the user name (certificate CN)")
    p.add_argument("--groups", action="append", default=[], help="group (repeat or comma-separate)")
    p.add_argument("--expires-after", default="1y", help="certificate lifetime (1y)")
    p.add_argument("--out", type=Path, help="write here (0600) instead of stdout")
    p.set_defaults(run=_kubeconfig_create)
    return parser


def _directory_flags(p: argparse.ArgumentParser, default) -> None:
    p.add_argument(
        "--pki-dir",
        type=Path,
        default=default,
        help=f"PKI directory (default: {default_pki_dir()})",
    )
    p.add_argument(
        "--kubeconfig-dir",
        type=Path,
        default=default,
        help="kubeconfig directory (default: the PKI directory's parent)",
    )


def _config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file with cluster settings (flags win)")


def _identity_flags(p: argparse.ArgumentParser) -> None:
    """What decides the SANs of the certificates."""
    _config_flag(p)
    p.add_argument("--node-name", help="this node's name (default: the host name)")
    p.add_argument("--advertise-address", help="IP the API server and etcd are reached at")
    p.add_argument("--service-cidr", help="service network; its first IP is a SAN (10.96.0.0/12)")
    p.add_argument("--cluster-domain", help="DNS domain of services (cluster.local)")
    p.add_argument(
        "--extra-san",
        dest="extra_sans",
        action="append",
        help="extra API server SAN (repeat or comma-separate)",
    )
    p.add_argument(
        "--etcd-extra-san",
        dest="etcd_extra_sans",
        action="append",
        help="extra etcd server/peer SAN (repeat or comma-separate)",
    )


def _key_type_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-type", choices=KEY_TYPES, help="key type of new keys (ecdsa-p256)")


def _issue_flags(p: argparse.ArgumentParser) -> None:
    _key_type_flag(p)
    p.add_argument("--leaf-validity", help="lifetime of leaf certificates, e.g. 1y, 90d (1y)")


def _ca_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ca-validity", help="lifetime of new CA certificates, e.g. 10y (10y)")


def _kubeconfig_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-name", help="cluster name inside kubeconfigs (kubernetes)")
    p.add_argument("--api-port", type=int, help="API server port inside kubeconfigs (6443)")


def _konnectivity_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--konnectivity",
        action="store_true",
        default=None,
        help="also make konnectivity-server.conf",
    )


def _dry_run_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")


def _layout(args: argparse.Namespace) -> Layout:
    return Layout.at(args.pki_dir or default_pki_dir(), args.kubeconfig_dir)


def _config(args: argparse.Namespace) -> tuple[ClusterConfig, bool]:
    """The cluster config from ``--config`` and flags; True if anything was given."""
    values: dict = {}
    if getattr(args, "config", None):
        try:
            values.update(tomllib.loads(args.config.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PkiError(f"{args.config}: cannot read config: {exc}") from None
    names = {f.name for f in dataclasses.fields(ClusterConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PkiError(f"{args.config}: unknown setting {unknown[0]!r}")
    for name in names:
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
    given = bool(values)
    for name in _LIST_FIELDS:
        if name in values:
            raw = values[name]
            items = [raw] if isinstance(raw, str) else raw
            values[name] = tuple(s.strip() for item in items for s in item.split(",") if s.strip())
    for name in _DURATION_FIELDS:
        if name in values:
            values[name] = parse_duration(str(values[name]))
    return ClusterConfig(**values), given


def _apply(plan: Plan, dry_run: bool) -> None:
    for step in plan.steps:
        print(("would " if dry_run else "") + step.description)
    if not plan.steps:
        print("nothing to do")
    if dry_run:
        return
    backup_dir = plan.apply()
    if backup_dir:
        print(f"replaced files backed up in {backup_dir}")


def _init(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    _apply(plan_init(_layout(args), config), args.dry_run)
    return 0


def _check_expiration(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    warn = parse_duration(args.warn_within)
    rows, ca_rows = check.expirations(_layout(args), config)
    now = datetime.now(UTC)
    render = check.render_json if args.output == "json" else check.render_table
    sys.stdout.write(render(rows, ca_rows, now))
    return check.expiration_status(rows + ca_rows, warn, now)


def _rotate(args: argparse.Namespace) -> int:
    config, given = _config(args)
    within = parse_duration(args.expiring_within) if args.expiring_within else None
    plan = plan_rotate(_layout(args), config, args.names, within, args.key_type, given)
    _apply(plan, args.dry_run)
    return 0


def _rotate_ca(args: argparse.Namespace) -> int:
    layout, name = _layout(args), "etcd-ca" if args.name == "etcd/ca" else args.name
    if args.phase == "status":
        print(ca_rotation.status(layout, name))
        return 0
    config, _ = _config(args)
    _apply(ca_rotation.plan_phase(layout, name, args.phase, config, args.key_type), args.dry_run)
    if not args.dry_run:
        print(ca_rotation.status(layout, name))
    return 0


def _status(args: argparse.Namespace) -> int:
    layout = _layout(args)
    for name in [*(c.name for c in CAS), SA_NAME]:
        print(ca_rotation.status(layout, name))
    return 0


def _verify(args: argparse.Namespace) -> int:
    config, given = _config(args)
    problems = check.verify(_layout(args), config if given else None)
    for line in problems:
        print(line)
    if not problems:
        print("all certificates verified")
    return 1 if problems else 0


def _generate_csr(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    _apply(plan_generate_csr(_layout(args), config, args.all), False)
    return 0


def _kubeconfig_create(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    groups = [g.strip() for item in args.groups for g in item.split(",") if g.strip()]
    data = user_kubeconfig(
        _layout(args), config, args.user, groups, parse_duration(args.expires_after)
    )
    if args.out:
        atomic_write(args.out.absolute(), data, KEY_MODE)
    else:
        sys.stdout.write(data.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
