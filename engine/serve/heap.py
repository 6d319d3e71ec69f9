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

And buffers of a frame's size (a 640x480 picture is 0.9 MB, its YUV 0.46 MB) are mapped on their
own (`fix_mmap_threshold`): glibc maps blocks above 128 KB by default, but raises that threshold to
the size of each mapped block it frees, after which every picture came from the heaps of aiortc's
encoder threads, and the server's RSS rose in steps of about one picture (1.0-1.2 MB) that
trimming did not return.
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
MMAP_THRESHOLD = 256 * 1024  # blocks from here up are mapped on their own and unmapped when freed
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h); setting it stops the dynamic threshold


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Map every block of `size` bytes and up on its own, from now on; False where unsupported."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, size))


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
