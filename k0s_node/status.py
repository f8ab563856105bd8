"""``k0s-node status``: ask the running launcher and show what it says.

The launcher writes its health address to ``D/run/k0s-node.json``; status
reads ``/status`` there and prints a table (or the JSON with ``-o json``).
"""

import json
import urllib.error
import urllib.request
from datetime import timedelta

from k0s_node.paths import NodePaths
from k0s_pki.units import short_duration

STATUS_TIMEOUT_S = 10.0


class NotRunning(RuntimeError):
    """No launcher answers for this data directory."""


def fetch_status(paths: NodePaths) -> dict:
    """The running launcher's status snapshot.

    Raises:
        NotRunning: no launcher for ``paths`` (or it does not answer).
    """
    try:
        state = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        raise NotRunning(f"k0s-node is not running on {paths.root}") from None
    try:
        with urllib.request.urlopen(state["health"] + "/status", timeout=STATUS_TIMEOUT_S) as r:
            return json.load(r)
    except (OSError, ValueError, KeyError) as exc:
        raise NotRunning(
            f"k0s-node (pid {state.get('pid')}) on {paths.root} does not answer: {exc}"
        ) from None


def render(status: dict) -> str:
    """The human view: components, datastore, soonest certificate expiries."""
    rows = [("COMPONENT", "PID", "STATE", "UPTIME", "RESTARTS", "HEALTH")]
    for comp in status["components"]:
        rows.append(
            (
                comp["name"],
                str(comp["pid"] or "-"),
                comp["state"],
                short_duration(timedelta(seconds=comp["uptimeSeconds"])),
                str(comp["restarts"]),
                comp["health"],
            )
        )
    lines = [
        f"k0s-node pid {status['pid']}, up "
        f"{short_duration(timedelta(seconds=status['uptimeSeconds']))}, "
        f"data dir {status['dataDir']}, storage {status['storage']}",
        "",
        _align(rows),
        "",
    ]
    if status["missingBinaries"]:
        lines += [f"not found (not running): {', '.join(status['missingBinaries'])}", ""]
    store = status.get("store")
    if store:
        lines.append(
            f"datastore {store['endpoint']}: revision {store['revision']}, "
            f"size {store['dbSize']} bytes, version {store['version']}"
        )
    else:
        lines.append("datastore: no answer yet")
    certs = sorted(status["certificates"], key=lambda c: c["residualSeconds"])
    if certs:
        first = certs[0]
        lines.append(
            f"certificates: {len(certs)}, first to expire {first['name']} in "
            f"{short_duration(timedelta(seconds=first['residualSeconds']))} ({first['expires']})"
        )
    return "\n".join(lines) + "\n"


def _align(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
