# cython: language_level=3
"""Hot-path counters, compiled (twin: k0s_store/pure/counters.py).

`inc()` and `add(n)` are a few C instructions run holding the GIL, with no
point inside where another thread could run: concurrent updates are never
lost, and no lock is taken.
"""

__all__ = ["Count"]


cdef class Count:
    """A monotonic counter; `inc()` or `add(n)` from any thread, `value` when scraped."""

    cdef unsigned long long _value

    def inc(self) -> None:
        """Count one."""
        self._value += 1

    def add(self, unsigned long long n) -> None:
        """Count `n` (bytes, say)."""
        self._value += n

    @property
    def value(self) -> int:
        """The total so far."""
        return self._value
