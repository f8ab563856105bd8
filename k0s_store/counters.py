"""Counters and histograms cheap enough for the hot path, read at scrape time.

No Prometheus object is touched per request: the metrics collector
(`k0s_store.ops.metrics`) turns these into metric families when scraped.

`Count` is safe to bump from any thread without a lock (compiled, or its
pure twin; see `k0s_store.core`). `Histogram` is for a single writer thread
(the commit timings of the writer).
"""

import bisect

from k0s_store.core import counters

Count = counters.Count


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Prometheus' ExponentialBuckets: `count` upper bounds from `start`, each `factor` apart."""
    return tuple(start * factor**i for i in range(count))


class Histogram:
    """Observations in fixed buckets (upper bounds, +Inf implied); one writer thread.

    Readers get a consistent-enough view: each field is read once at scrape
    time, as Prometheus' own client does without a lock across fields.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) per bucket, +Inf last."""
        total, out = 0, []
        for bound, n in zip((*self.bounds, float("inf")), list(self.counts), strict=True):
            total += n
            out.append((bound, total))
        return out
