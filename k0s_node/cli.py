"""``k0s-node``: bring up a control-plane node on k0s-store and k0s-pki.

    k0s-node controller [--config k0s.yaml] [--data-dir D] [--bin-dir DIR] [--join URL]
    k0s-node status [--data-dir D] [-o json]

Exit status: 0 success (``controller``: stopped by SIGTERM/SIGINT); 1 an
error (one line on stderr), or ``status`` found no running launcher.
"""

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from k0s_node.config import ConfigError, load_config
from k0s_node.etcd_cluster import EtcdError
from k0s_node.lock import AlreadyRunning
from k0s_node.paths import NodePaths, default_data_dir
from k0s_node.status import NotRunning, fetch_status, render
from k0s_pki.errors import PkiError


def main(argv: list[str] | None = None) -> int:
    """Run ``k0s-node``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except (ConfigError, PkiError, AlreadyRunning, NotRunning, EtcdError, PermissionError) as exc:
        print(f"k0s-node: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k0s-node", description="Bring up a control-plane node on k0s-store and k0s-pki."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir", type=Path, help=f"the node's data directory (default: {default_data_dir()})"
    )

    what = "run the PKI, the datastore and the control plane, supervised"
    p = sub.add_parser("controller", parents=[data_dir], help=what, description=what)
    p.add_argument("--config", type=Path, help="ClusterConfig YAML (default: built-in defaults)")
    p.add_argument(
        "--bin-dir",
        type=Path,
        help="where to look first for kube-apiserver, kube-controller-manager, kube-scheduler "
        "and etcd (then D/bin, then PATH)",
    )
    p.add_argument(
        "--join",
        metavar="URL",
        help="join the etcd cluster one of whose members serves clients at URL "
        "(storage.type etcd; copy the cluster's CAs into D/pki first)",
    )
    p.set_defaults(run=_controller)

    what = "components, health, datastore and certificates, from the running launcher"
    p = sub.add_parser("status", parents=[data_dir], help=what, description=what)
    p.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    p.set_defaults(run=_status)
    return parser


def _controller(args: argparse.Namespace) -> int:
    from k0s_node.node import Controller  # imported here so `status` stays light

    config = load_config(args.config)
    controller = Controller(config, NodePaths.at(args.data_dir), args.bin_dir, args.join)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: controller.stop())
    return controller.run()


def _status(args: argparse.Namespace) -> int:
    status = fetch_status(NodePaths.at(args.data_dir))
    if args.output == "json":
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        sys.stdout.write(render(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
