"""The C heap's policy for the server process (glibc's malloc, through mallopt).

A LIST answers with a response of megabytes (a 10k-key LIST: ~3 MB).
With glibc's defaults such blocks are often fresh memory: the first big
block comes from mmap, and later ones, freed together (concurrent LISTs),
pass the dynamic trim threshold (twice the largest block freed so far) and
go back to the kernel, so the next LISTs fault their pages in again and the
kernel zeroes them (at 16 clients ~180 faults and ~12% of a LIST's CPU).
Fixed thresholds keep freed blocks in the heap for the next response.

The cost is memory kept after a burst of big responses: up to
TRIM_THRESHOLD_BYTES of free space at the top of each malloc arena before
it is trimmed. Measured after 300 10k-key LISTs at 100 clients: RssAnon
99 MB (glibc's defaults: 50 MB; a 64 MiB threshold: 292 MB). Blocks past
MMAP_THRESHOLD_BYTES (glibc's ceiling for it) are still mapped apart.
"""

import ctypes

# mallopt parameters (<malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD_BYTES = 8 * 1024 * 1024  # over two LIST responses
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit


def keep_freed_memory() -> bool:
    """Have malloc reuse freed big blocks instead of returning them to the
    kernel at once. False when the C library does not take the thresholds
    (no mallopt, or it refused them): big responses then use fresh memory."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
