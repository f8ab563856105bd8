"""The reader gate, both twins: shared readers, an exclusive holder that waits
for them and holds new ones back."""

import threading
import time

import pytest
from harness.twins import KINDS, twin


@pytest.fixture(params=KINDS)
def gate(request):
    return twin("gate", request.param).ReaderGate()


def test_readers_share_and_exclusive_waits_for_them(gate):
    gate.enter()
    gate.enter()
    inside = threading.Event()

    def hold() -> None:
        with gate.exclusive():
            inside.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert not inside.wait(0.1)
    gate.leave()
    assert not inside.wait(0.1)
    gate.leave()
    assert inside.wait(5)
    holder.join()


def test_new_readers_wait_while_exclusive_is_held(gate):
    entered = threading.Event()

    def read() -> None:
        gate.enter()
        entered.set()
        gate.leave()

    with gate.exclusive():
        reader = threading.Thread(target=read)
        reader.start()
        assert not entered.wait(0.1)
    assert entered.wait(5)
    reader.join()


def test_many_readers_and_holders_never_overlap(gate):
    state = {"readers": 0, "exclusive": False, "violations": 0}
    lock = threading.Lock()
    stop = time.monotonic() + 0.5

    def reader() -> None:
        while time.monotonic() < stop:
            gate.enter()
            with lock:
                state["readers"] += 1
                state["violations"] += state["exclusive"]
            with lock:
                state["readers"] -= 1
            gate.leave()

    def holder() -> None:
        while time.monotonic() < stop:
            with gate.exclusive():
                with lock:
                    state["violations"] += state["readers"] > 0 or state["exclusive"]
                    state["exclusive"] = True
                time.sleep(0.001)
                with lock:
                    state["exclusive"] = False

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads += [threading.Thread(target=holder) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["violations"] == 0
