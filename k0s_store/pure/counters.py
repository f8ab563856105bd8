"""Hot-path counters, pure Python (twin of src_ext/counters.pyx)."""

import itertools
import threading

__all__ = ["Count"]


class Count:
    """A monotonic counter; `inc()` or `add(n)` from any thread, `value` when scraped.

    `inc` is `next()` on an `itertools.count`, which runs entirely in C under
    the GIL, so concurrent increments are never lost (a plain `x += 1` can
    lose one when a thread switch falls between the load and the store);
    `add` takes a lock.
    """

    __slots__ = ("_added", "_count", "_lock", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc = self._count.__next__
        self._lock = threading.Lock()
        self._added = 0

    def add(self, n: int) -> None:
        """Count `n` (bytes, say)."""
        with self._lock:
            self._added += n

    @property
    def value(self) -> int:
        """The total so far."""
        # repr is "count(N)": N is the next value, i.e. the number of increments.
        return int(repr(self._count)[6:-1]) + self._added
