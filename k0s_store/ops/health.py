"""etcd 3.4's /health check (etcdserver/api/etcdhttp/metrics.go).

Unhealthy when an alarm is raised (unless `?exclude=NAME` names it), or
when a write cannot get through within a second: etcd sends a quorum GET
through raft with a 1 s timeout; we send a no-op job through the
group-commit writer, which is what every write waits for. A single member
always has a leader, so etcd's no-leader case cannot happen.
"""

import logging
from typing import NamedTuple

log = logging.getLogger("k0s_store.health")

WRITER_TIMEOUT_SECONDS = 1.0
# etcdserverpb.AlarmType names by value.
ALARM_NAMES = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}


class Health(NamedTuple):
    """The verdict and, when false, why (logged; etcd 3.4's body has no reason).

    `by_alarm`: false because of an alarm, which etcd does not count in
    etcd_server_health_failures (it returns before counting).
    """

    healthy: bool
    reason: str = ""
    by_alarm: bool = False


def check_health(store, excluded_alarms: frozenset[str] = frozenset()) -> Health:
    """etcd's checkHealth over `store`."""
    for alarm in store.alarms():
        name = ALARM_NAMES.get(alarm, str(alarm))
        if name in excluded_alarms:
            log.debug("/health excluded alarm", extra={"fields": {"alarm": name}})
            continue
        return _unhealthy(f"alarm {name} raised", by_alarm=True)
    if not store.writer_responsive(WRITER_TIMEOUT_SECONDS):
        return _unhealthy(f"writer stalled: no commit within {WRITER_TIMEOUT_SECONDS}s")
    return Health(True)


def _unhealthy(reason: str, by_alarm: bool = False) -> Health:
    log.warning("/health error", extra={"fields": {"reason": reason}})
    return Health(False, reason, by_alarm)
