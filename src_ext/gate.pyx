# cython: language_level=3
"""A reader gate, compiled (twin: k0s_store/pure/gate.py).

Many readers at once, or one exclusive holder. LMDB forbids resizing the
map or closing the environment while any transaction of the process is
open. Every read transaction passes this gate, so the rare exclusive holder
(map growth, defragmentation swap) waits for running readers to finish and
holds new ones back.

Readers take no lock: enter() and leave() run as C code holding the GIL, so
the check of `exclusive` and the change of the reader count are atomic with
respect to every other Python thread. Only when an exclusive holder is
waiting or inside do they touch the condition (the holder checks the count
and waits under it, and the last reader out notifies under it, so no
wake-up is lost).
"""

import threading

__all__ = ["ReaderGate"]


cdef class ReaderGate:
    """Shared entry for readers, exclusive entry for environment maintenance."""

    cdef object _cond
    cdef Py_ssize_t _readers
    cdef bint _exclusive

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False

    def enter(self) -> None:
        """Enter as a reader; waits only while an exclusive holder is inside."""
        if not self._exclusive:
            self._readers += 1
            return
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        """Leave as a reader."""
        self._readers -= 1
        if self._readers == 0 and self._exclusive:
            with self._cond:
                self._cond.notify_all()

    def exclusive(self) -> "Exclusive":
        """Hold the gate alone (a context manager): waits for readers inside,
        blocks new ones."""
        return Exclusive(self)

    cdef void acquire(self) except *:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()

    cdef void release(self) except *:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()


cdef class Exclusive:
    """`with gate.exclusive():` the gate held alone."""

    cdef ReaderGate _gate

    def __init__(self, ReaderGate gate):
        self._gate = gate

    def __enter__(self) -> None:
        self._gate.acquire()

    def __exit__(self, *exc_info) -> None:
        self._gate.release()
