"""The hot-path counter, both twins: no update lost between threads."""

import sys
import threading

import pytest
from harness.twins import KINDS, twin

THREADS = 4
ROUNDS = 20_000


@pytest.fixture(params=KINDS)
def count(request):
    return twin("counters", request.param).Count()


def test_concurrent_increments_and_adds_are_all_counted(count):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:

        def bump() -> None:
            for _ in range(ROUNDS):
                count.inc()
                count.add(3)

        threads = [threading.Thread(target=bump) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert count.value == THREADS * ROUNDS * 4


def test_starts_at_zero(count):
    assert count.value == 0
    count.add(0)
    assert count.value == 0
