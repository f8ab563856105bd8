"""etcd's --config-file: a YAML file whose keys are the flag names.

The file is read as etcd 3.4 reads it (embed/config.go): top-level keys
named like the flags, TLS settings nested under `client-transport-security`
and `peer-transport-security`, lists for `log-outputs`, and durations
(e.g. `experimental-watch-progress-notify-interval`) in nanoseconds, as Go
marshals a time.Duration. An empty value (`wal-dir:`) leaves the default.

etcd ignores the command line when a config file is given; we refuse the
ambiguity instead: a flag also given on the command line must agree with
the file. Unknown keys and bad values are refused, naming the key.
"""

import argparse
from collections.abc import Iterator
from typing import Any

import yaml

# Nested TLS sections and the flag each of their keys stands for.
_SECTIONS = {
    "client-transport-security": "",
    "peer-transport-security": "peer-",
}
_SECTION_KEYS = ("cert-file", "key-file", "client-cert-auth", "trusted-ca-file", "auto-tls")
# Keys whose Go type is time.Duration: integers of nanoseconds in the file.
DURATION_KEYS = frozenset(
    {
        "experimental-watch-progress-notify-interval",
        "experimental-warning-apply-duration",
    }
)


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming the key."""


def read_config_file(path: str) -> dict[str, Any]:
    """The file's settings by flag name (sections flattened)."""
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path}: {problem}{line}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: expected a mapping of flag names to values")
    return dict(_flatten(path, document))


def _flatten(path: str, document: dict) -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        key = str(key)
        if key in _SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config file {path}: {key} must be a mapping")
            for inner, inner_value in value.items():
                if inner not in _SECTION_KEYS:
                    raise ConfigError(f"config file {path}: unknown key {key}.{inner}")
                yield _SECTIONS[key] + str(inner), inner_value
        else:
            yield key, value


def apply_config_file(
    path: str,
    actions: dict[str, argparse.Action],
    args: argparse.Namespace,
    explicit: argparse.Namespace,
) -> None:
    """Set `args` from the file at `path`.

    Args:
        actions: the serve flags by name (without dashes).
        args: the parsed command line, defaults included; updated in place.
        explicit: the flags actually given on the command line.

    Raises:
        ConfigError: unknown key, bad value, or a disagreeing flag.
    """
    for key, raw in read_config_file(path).items():
        action = actions.get(key)
        if action is None or key == "config-file":
            raise ConfigError(f"config file {path}: unknown key {key}")
        if raw is None:
            continue
        value = _convert(path, key, raw, action)
        given = getattr(explicit, action.dest, None)
        if hasattr(explicit, action.dest) and given != value:
            raise ConfigError(
                f"--{key}={_show(given)} on the command line disagrees with "
                f"{key}: {_show(value)} in config file {path}"
            )
        setattr(args, action.dest, value)


def _convert(path: str, key: str, raw: Any, action: argparse.Action) -> Any:
    """The YAML value as the flag's parsed value (the flag's own parser decides)."""
    bad = ConfigError(f"config file {path}: bad value for {key}: {raw!r}")
    if isinstance(raw, dict):
        raise bad
    if key in DURATION_KEYS:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(
                f"config file {path}: bad value for {key}: {raw!r} (a duration in nanoseconds)"
            )
        text = f"{raw}ns"
    elif isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, list):
        if not all(isinstance(item, str | int) and not isinstance(item, bool) for item in raw):
            raise bad
        text = ",".join(str(item) for item in raw)
    else:
        text = str(raw)
    try:
        value = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        raise bad from None
    if action.choices is not None and value not in action.choices:
        raise bad
    return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)
