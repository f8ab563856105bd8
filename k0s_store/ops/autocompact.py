"""etcd 3.4's auto-compaction (--auto-compaction-mode, --auto-compaction-retention).

Periodic mode (etcdserver/api/v3compactor/periodic.go), retention P: the
revision is sampled every P/10 (at most every 6 minutes: the interval is
capped at 1 h / 10); once P has passed, the store is compacted to the
revision sampled P ago, then again every min(P, 1 h) to the revision of
that long ago. Revision mode (revision.go), retention N: every 5 minutes
the store is compacted to (current revision - N) if that is positive and
new. A failed compaction is retried at the next tick; "already compacted"
counts as done, as in etcd.
"""

import logging
import threading
import time
from collections.abc import Callable

from k0s_store.errors import CompactedError, EtcdError
from k0s_store.go_duration import format_duration, parse_duration

log = logging.getLogger("k0s_store.compactor")

MODES = ("periodic", "revision")
REVISION_CHECK_SECONDS = 300.0  # etcd's revInterval
_MAX_PERIODIC_INTERVAL = 3600.0
_RETRY_DIVISOR = 10


def parse_retention(mode: str, text: str) -> float:
    """etcd's parseCompactionRetention: a number is hours (periodic) or a
    revision count (revision); periodic also takes a Go duration. Seconds
    (periodic) or revisions; 0 turns auto-compaction off. ValueError if bad."""
    if mode not in MODES:
        raise ValueError(f"unknown auto-compaction-mode {mode!r} (want periodic or revision)")
    if text.isdigit():
        return int(text) * 3600.0 if mode == "periodic" else float(int(text))
    if mode == "revision":
        raise ValueError(f"revision retention must be a number of revisions, not {text!r}")
    try:
        return parse_duration(text)
    except Exception as exc:
        raise ValueError(f"invalid auto-compaction-retention {text!r}: {exc}") from None


class AutoCompactor:
    """The thread compacting `store` as etcd's compactor of `mode` would.

    Args:
        store: has `revision` and `compact(revision)`.
        mode: "periodic" or "revision".
        retention: seconds (periodic) or revisions (revision); must be > 0.
        revision_check_seconds: revision mode's polling period (etcd: 5 min).
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        store,
        mode: str,
        retention: float,
        *,
        revision_check_seconds: float = REVISION_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES or retention <= 0:
            raise ValueError(f"bad auto-compaction settings: {mode} {retention}")
        self._store = store
        self._mode = mode
        self._retention = retention
        self._revision_check = revision_check_seconds
        self._clock = clock
        self._stop = threading.Event()
        run = self._run_periodic if mode == "periodic" else self._run_revision
        self._thread = threading.Thread(target=run, name="k0s-store-autocompact", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a compaction under way finishes first)."""
        self._stop.set()
        self._thread.join()

    def _run_periodic(self) -> None:
        period = self._retention
        compact_interval = min(period, _MAX_PERIODIC_INTERVAL)
        retry_interval = compact_interval / _RETRY_DIVISOR
        retentions = int(period / retry_interval) + 1
        revisions: list[int] = []
        last_success = self._clock()
        base_interval = period
        fields = {"compact-period": format_duration(period)}
        while True:
            revisions.append(self._store.revision)
            if len(revisions) > retentions:
                del revisions[0]  # revisions[0] is the revision of one period ago
            if self._stop.wait(retry_interval):
                return
            if self._clock() - last_success < base_interval:
                continue
            base_interval = compact_interval
            started = self._clock()
            if self._compact(revisions[0], "periodic", fields, retry_interval):
                log.info(
                    "completed auto periodic compaction",
                    extra={
                        "fields": {
                            "revision": revisions[0],
                            **fields,
                            "took": format_duration(self._clock() - started),
                        }
                    },
                )
                last_success = self._clock()

    def _run_revision(self) -> None:
        retention = int(self._retention)
        fields = {"revision-compaction-retention": retention}
        previous = 0
        while not self._stop.wait(self._revision_check):
            revision = self._store.revision - retention
            if revision <= 0 or revision == previous:
                continue
            started = self._clock()
            if self._compact(revision, "revision", fields, self._revision_check):
                previous = revision
                log.info(
                    "completed auto revision compaction",
                    extra={
                        "fields": {
                            "revision": revision,
                            **fields,
                            "took": format_duration(self._clock() - started),
                        }
                    },
                )

    def _compact(self, revision: int, mode: str, fields: dict, retry: float) -> bool:
        """Compact to `revision`; True when done (or already done)."""
        log.info(
            f"starting auto {mode} compaction", extra={"fields": {"revision": revision, **fields}}
        )
        try:
            self._store.compact(revision)
        except CompactedError:
            return True
        except EtcdError as exc:
            log.warning(
                f"failed auto {mode} compaction",
                extra={
                    "fields": {
                        "revision": revision,
                        **fields,
                        "retry-interval": format_duration(retry),
                        "error": exc.message,
                    }
                },
            )
            return False
        return True
