"""A reader gate: the pure-Python twin of src_ext/gate.pyx.

Many readers at once, or one exclusive holder.

LMDB forbids resizing the map or closing the environment while any
transaction of the process is open. Every read transaction passes this
gate, so the rare exclusive holder (map growth, defragmentation swap) waits
for running readers to finish and holds new ones back; otherwise readers
only pay for one small lock round trip on entry and exit (Python code is
not atomic between bytecodes, so this twin counts readers under the lock).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReaderGate:
    """Shared entry for readers, exclusive entry for environment maintenance."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False

    def enter(self) -> None:
        """Enter as a reader; waits only while an exclusive holder is inside."""
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        """Leave as a reader."""
        with self._cond:
            self._readers -= 1
            if self._readers == 0 and self._exclusive:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the gate alone: waits for readers inside, blocks new ones."""
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
