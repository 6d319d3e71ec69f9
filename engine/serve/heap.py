"""Give the server's free heap back to the system after a slow spell.

Measured (bench/memtrace.py, BENCHMARKS.md "Long sessions"): when the machine is busy for a while,
a session's buffers queue up (audio chunks, frames, aiortc's packets), are freed once it catches up,
and glibc keeps the pages: the server's RSS steps up by ~1-5 MB and stays there, although the bytes
in use and the live Python objects are back where they were. Nothing leaks, but RSS keeps every
slow spell's high-water mark. glibc's malloc_trim(0) returns free pages anywhere in the heap (not
only at its top) to the system; run every TRIM_PERIOD_S in a thread. It costs 4-10 ms on a heap
fragmented on purpose (200,000 blocks), during which other threads wait for malloc: once in 30 s,
well inside a frame.
On a C library without malloc_trim (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import time
from collections.abc import Callable

log = logging.getLogger("dyadic.engine")

TRIM_PERIOD_S = 30.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim_heap() -> float | None:
    """Return the heap's free pages to the system; the seconds it took, or None where unsupported."""
    trim = _malloc_trim()
    if trim is None:
        return None
    t0 = time.perf_counter()
    trim(0)
    return time.perf_counter() - t0


async def trim_heap_forever(period_s: float = TRIM_PERIOD_S) -> None:
    if _malloc_trim() is None:
        log.debug("no malloc_trim in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(period_s)
        await asyncio.to_thread(trim_heap)
