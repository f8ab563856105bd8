"""Logs as etcd's zap logger writes them: one JSON object a line.

Keys in zap's order: `level` (lowercase), `ts` (ISO 8601 with milliseconds
and the zone offset, "2026-11-28T10:25:43.123Z"), `caller` (dir/file:line),
`msg`, then the record's fields. Fields are passed as
`log.info("msg", extra={"fields": {...}})`.

`--logger capnslog` keeps etcd 3.4's older plain-text logger as plain text.
"""

import json
import logging
import os
import sys
import time
from collections.abc import Sequence

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
LOGGERS = ("zap", "capnslog")
_ZAP_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def zap_timestamp(created: float) -> str:
    """zapcore.ISO8601TimeEncoder: local time, milliseconds, "Z" or "+hhmm"."""
    local = time.localtime(created)
    millis = int(created * 1000) % 1000
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else offset
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{millis:03d}{zone}"


class ZapJSONFormatter(logging.Formatter):
    """A record as one zap JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "level": _ZAP_LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "ts": zap_timestamp(record.created),
            "caller": _short_caller(record.pathname, record.lineno),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str)


def _short_caller(path: str, line: int) -> str:
    """zapcore.ShortCallerEncoder: the file's directory and name, and the line."""
    directory, name = os.path.split(path)
    return f"{os.path.basename(directory)}/{name}:{line}"


def check_outputs(outputs: Sequence[str]) -> None:
    """Refuse outputs we cannot write to (ValueError naming the output)."""
    for output in outputs:
        if output == "systemd/journal":
            raise ValueError(f"log output {output!r} is not supported")
        if output in ("", "default", "stderr", "stdout"):
            continue
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise ValueError(f"cannot open log output {output!r}: no directory {directory}")


def configure(logger: str, level: str, outputs: Sequence[str]) -> None:
    """Route every log record of the process as etcd's --logger, --log-level
    and --log-outputs say ("default" and "stderr" are standard error; other
    names are files, appended to)."""
    formatter = ZapJSONFormatter() if logger == "zap" else logging.Formatter(_PLAIN_FORMAT)
    handlers: list[logging.Handler] = []
    for output in dict.fromkeys(outputs or ("default",)):  # once each, in order
        if output in ("default", "stderr"):
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        elif output == "stdout":
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.FileHandler(output, encoding="utf-8")
        handler.setFormatter(formatter)
        handlers.append(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(LOG_LEVELS[level])
