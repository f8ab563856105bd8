"""Durations as admins type them (``1y``, ``90d``, ``720h``) and as kubeadm prints them."""

import re
from datetime import timedelta

from k0s_pki.errors import PkiError

# A year is 365 days, as in kubeadm's defaults (8760h).
_UNIT_SECONDS = {"y": 365 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([ydhms])")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``1y``, ``30d``, ``12h30m`` or ``90s``.

    Args:
        text: one or more ``<integer><unit>`` parts, units y/d/h/m/s.

    Returns:
        The duration.

    Raises:
        PkiError: the text is not such a duration.
    """
    spec = text.strip()
    if not spec or _PART.sub("", spec) != "":
        raise PkiError(f"invalid duration {text!r}: use e.g. 1y, 90d, 720h, 30m")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(spec)))


def short_duration(delta: timedelta) -> str:
    """Render a residual time like kubeadm's ``duration.ShortHumanDuration``.

    Args:
        delta: time left; negative when already past.

    Returns:
        ``<invalid>`` when past, else e.g. ``45s``, ``12m``, ``30h``, ``364d``, ``9y``.
    """
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    if seconds < 8 * 365 * 86400:
        return f"{seconds // 86400}d"
    return f"{seconds // (365 * 86400)}y"
