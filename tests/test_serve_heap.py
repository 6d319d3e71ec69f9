"""The server's heap settings (engine/serve/heap.py), in a fresh interpreter each: glibc's state is
per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, numpy as np
from dyadic.engine.serve import heap

NAMES = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(n, ctypes.c_size_t) for n in NAMES.split()]

libc = heap._libc()
libc.mallinfo2.restype = MallInfo2
if FIX:
    assert heap.fix_mmap_threshold()
picture = np.ones(640 * 480 * 3, np.uint8)  # mapped: over glibc's 128 KB start
del picture  # glibc raises its threshold to this size unless it was fixed
mapped = libc.mallinfo2().hblkhd
picture = np.ones(640 * 480 * 3, np.uint8)  # the next picture
print(libc.mallinfo2().hblkhd - mapped)
"""


def _mapped_bytes_of_the_second_picture(fix: bool) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.replace("FIX", str(fix))], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_pictures_are_mapped_on_their_own_so_freeing_one_returns_it():
    assert _mapped_bytes_of_the_second_picture(fix=False) == 0  # glibc alone: from the heap, kept there
    assert _mapped_bytes_of_the_second_picture(fix=True) >= 640 * 480 * 3
