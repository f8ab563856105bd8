"""``k0s-pki`` as a first-time user types it: global flags anywhere, per-command help."""

import argparse

import pytest

from k0s_pki.cli import _parser, main

COMMANDS = [
    ["init"],
    ["check-expiration"],
    ["rotate"],
    ["rotate-ca"],
    ["status"],
    ["verify"],
    ["generate-csr"],
    ["kubeconfig", "create"],
]
INIT_ONLY = ("--ca-validity", "--konnectivity", "--dry-run")


def _subparser(command: list[str]) -> argparse.ArgumentParser:
    parser = _parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _help(command: list[str]) -> str:
    return _subparser(command).format_help()


def test_pki_dir_before_or_after_the_subcommand(tmp_path, capsys):
    before, after = tmp_path / "b" / "pki", tmp_path / "a" / "pki"
    assert main(["--pki-dir", str(before), "init", "--node-name", "n1"]) == 0
    assert main(["init", "--pki-dir", str(after), "--node-name", "n1"]) == 0
    assert (before / "ca.crt").exists() and (after / "ca.crt").exists()
    assert (tmp_path / "b" / "admin.conf").exists()  # kubeconfigs beside pki/, as ever
    capsys.readouterr()
    assert main(["--pki-dir", str(before), "check-expiration", "-o", "json"]) == 0
    assert '"name": "apiserver"' in capsys.readouterr().out
    # Given in both places, the one after the subcommand wins, as kubectl's do.
    assert main(["--pki-dir", str(tmp_path / "nowhere"), "verify", "--pki-dir", str(before)]) == 0
    assert not (tmp_path / "nowhere").exists()


def test_kubeconfig_dir_before_the_subcommand(tmp_path):
    confs = tmp_path / "confs"
    argv = ["--kubeconfig-dir", str(confs), "init", "--pki-dir", str(tmp_path / "pki")]
    assert main([*argv, "--node-name", "n1"]) == 0
    assert (confs / "admin.conf").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_flag_has_a_help_line(command):
    for action in _subparser(command)._actions:
        assert action.help, (
            f"{' '.join(command)}: {action.option_strings or action.dest} has no help"
        )


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["init"]], ids=" ".join)
def test_subcommands_show_only_their_own_flags(command):
    text = _help(command)
    for flag in INIT_ONLY:
        if flag == "--dry-run" and command[0] in ("rotate", "rotate-ca"):
            continue
        if flag == "--konnectivity" and command[0] in ("verify", "generate-csr"):
            continue
        if flag == "--ca-validity" and command[0] == "rotate-ca":
            continue
        assert flag not in text, f"{' '.join(command)} --help lists {flag}"


def test_kubeconfig_create_help_lists_its_flags_only():
    text = _help(["kubeconfig", "create"])
    for flag in ("--groups", "--expires-after", "--out", "--pki-dir", "--api-port"):
        assert flag in text
    for flag in ("--node-name", "--service-cidr", "--extra-san", "--leaf-validity", "--dry-run"):
        assert flag not in text


def test_init_help_explains_every_flag():
    text = _help(["init"])
    for flag in ("--node-name", "--advertise-address", "--service-cidr", "--cluster-domain",
                 "--etcd-extra-san", "--key-type", "--leaf-validity", "--cluster-name",
                 "--api-port", "--dry-run"):  # fmt: skip
        assert flag in text


def test_a_flag_of_another_subcommand_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check-expiration", "--pki-dir", str(tmp_path), "--ca-validity", "5y"])
    assert info.value.code == 2
    assert "unrecognized arguments: --ca-validity 5y" in capsys.readouterr().err
