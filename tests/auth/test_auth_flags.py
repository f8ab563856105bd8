"""The auth flags of `k0s-store serve` (etcd's names)."""

import pytest

from k0s_store.cli import build_parser


def test_auth_flags_take_etcds_forms():
    args = build_parser().parse_args(
        ["serve", "--auth-token=simple", "--auth-token-ttl", "60", "-bcrypt-cost=12"]
    )
    assert (args.auth_token, args.auth_token_ttl, args.bcrypt_cost) == ("simple", 60, 12)
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.auth_token, defaults.auth_token_ttl, defaults.bcrypt_cost) == (
        "simple",
        300,
        10,
    )


def test_jwt_tokens_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["serve", "--auth-token=jwt,pub-key=k.pub,sign-method=RS256"])
    assert exit_.value.code == 2
    assert "unsupported auth token type" in capsys.readouterr().err
