"""How `k0s-store serve` stops: SIGTERM or SIGINT, then a shutdown with a deadline.

The signals are awaited (`sigwait` in the main thread), not handled: a Python
signal handler runs between two bytecodes of the main thread, possibly while
that thread holds the lock the handler needs (`threading.Event.set` from a
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


def hold_stop_signals() -> None:
    """Keep SIGTERM and SIGINT pending in this thread and every thread it starts
    from now on, for `wait_for_stop_signal`. Call before any thread starts."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def wait_for_stop_signal() -> signal.Signals:
    """Block (GIL released) until SIGTERM or SIGINT arrives; which one."""
    return signal.Signals(signal.sigwait(STOP_SIGNALS))


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
