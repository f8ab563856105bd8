"""The heap policy (k0s_store.ops.heap): big buffers freed and allocated again
reuse the same memory instead of faulting fresh pages in, as every LIST's
response and its copy for the transport did with glibc's defaults (freed
together they pass glibc's dynamic trim threshold, twice the largest block
freed so far, and go back to the kernel)."""

import subprocess
import sys

import pytest

# Allocates, fills and frees two 3 MB buffers (a 10k-key LIST's response and
# its copy) 50 times; prints the minor page faults that took.
_CHURN = """
import resource, sys
from k0s_store.ops import heap
if sys.argv[1] == "tuned":
    assert heap.keep_freed_memory()
bytearray(3 << 20)  # the first one is fresh either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    response = bytearray(3 << 20)
    copy = bytearray(3 << 20)
    del response, copy
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_big_buffers_are_reused():
    pages = 50 * 2 * (3 << 20) // 4096
    assert _faults("default") > pages // 2  # each buffer faulted in afresh
    assert _faults("tuned") < pages // 50
