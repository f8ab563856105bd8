"""How `k0s-store serve` stops: SIGTERM or SIGINT, then a shutdown with a deadline.

The main thread waits on a pipe that the interpreter's C-level signal handler
writes the signal number to (`signal.set_wakeup_fd`), whichever thread the
kernel hands the signal to. The Python-level handler does nothing: one that
did real work would run between two bytecodes of the main thread, possibly
while that thread holds the lock it needs (`threading.Event.set` from a
handler deadlocks when the signal lands inside `Event.wait`'s bookkeeping),
and a process wedged that way keeps serving after its launcher asked it to
stop. The shutdown that follows is bounded: past `limit` seconds the process
logs why and exits 1 without closing the store, which loses nothing (every
acknowledged write is already fsynced) and is what a supervisor's SIGKILL
would do, only sooner and with a reason in the log.
"""

import logging
import os
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORCED_EXIT_CODE = 1

log = logging.getLogger("k0s_store")


def _noted(signum, frame) -> None:
    """The Python-level handler: the wakeup pipe carries the signal, nothing to do."""


class StopSignals:
    """SIGTERM and SIGINT, caught from now on (construct in the main thread) and
    kept until `wait` takes the first; later ones change nothing."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(write, False)  # a burst of signals must never block a handler
        for signum in STOP_SIGNALS:
            signal.signal(signum, _noted)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def wait(self) -> signal.Signals:
        """Block until SIGTERM or SIGINT has arrived (at once if one already has)."""
        while True:
            for number in os.read(self._read, 64):
                if number in STOP_SIGNALS:
                    return signal.Signals(number)


def exit_unless_stopped_within(limit: float) -> threading.Timer:
    """Start the shutdown's deadline: if the process still runs `limit` seconds
    from now (a call, a reader or a thread that never ends), log it and exit
    with FORCED_EXIT_CODE. The timer is a daemon: a clean exit just ends it."""

    def give_up() -> None:
        log.error(
            "shutdown did not finish within %.0fs; exiting without closing the store "
            "(acknowledged writes are on disk)",
            limit,
        )
        os._exit(FORCED_EXIT_CODE)

    timer = threading.Timer(limit, give_up)
    timer.daemon = True
    timer.name = "shutdown-deadline"
    timer.start()
    return timer
