"""Where does a long-running server's memory go? A launcher for `bench/soak.py --memtrace DIR`.

`python bench/memtrace.py DIR PERIOD_S -- PYTHON -m MODULE ARGS...` runs MODULE (the server) in this
process with tracemalloc on, and every PERIOD_S writes one line to DIR/memtrace.jsonl: the process's
RSS, what tracemalloc traces (Python objects and numpy buffers), and glibc's own account of its heap
(mallinfo2: in use, free but kept, mmapped). The sites that grew most since the first record after
warm-up go to DIR/growth-MINUTES.txt (tracebacks 6 deep). RSS that rises while both stay flat is
native memory outside malloc (a library's own mappings); RSS that follows glibc's free bytes is the
heap fragmenting, not a leak.

Tracing slows Python by about half again: read allocation sites from such a run, never its FPS.
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

FRAMES = 6  # traceback depth kept per allocation
WARMUP_S = 120.0  # the baseline: after start-up, caches and the first loops of the clip
TOP = 25


class _MallInfo2(ctypes.Structure):  # glibc >= 2.33, struct mallinfo2 (all size_t)
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _glibc_heap() -> dict[str, int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None  # not glibc, or older than 2.33
    info = libc.mallinfo2()
    # uordblks: bytes in use; fordblks: free but kept in the heap; hblkhd: in mmapped blocks
    return {"in_use": info.uordblks, "free_kept": info.fordblks, "mmapped": info.hblkhd, "arena": info.arena}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _record(out: Path, t0: float, baseline: tracemalloc.Snapshot | None) -> tracemalloc.Snapshot | None:
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    traced, peak = tracemalloc.get_traced_memory()
    minutes = (time.monotonic() - t0) / 60
    line: dict[str, Any] = {"minutes": round(minutes, 2), "rss": _rss(), "traced": traced, "traced_peak": peak}
    line["glibc"] = _glibc_heap()
    with (out / "memtrace.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    if baseline is None:
        return snap if time.monotonic() - t0 >= WARMUP_S else None
    growth = snap.compare_to(baseline, "traceback")[:TOP]
    with (out / f"growth-{minutes:05.1f}.txt").open("w") as f:
        for stat in growth:
            f.write(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks\n")
            f.writelines(f"      {frame}\n" for frame in stat.traceback.format())
    return baseline


def _sample(out: Path, period_s: float) -> None:
    t0 = time.monotonic()
    baseline = None
    while True:
        time.sleep(period_s)
        baseline = _record(out, t0, baseline)


def main() -> None:
    out, period_s, sep, *command = sys.argv[1:]
    # the command as harness/serve_process.py builds it: PYTHON -m MODULE ARGS...
    if sep != "--" or len(command) < 3 or command[1] != "-m":
        sys.exit("usage: memtrace.py DIR PERIOD_S -- PYTHON -m MODULE ARGS...")
    Path(out).mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    threading.Thread(target=_sample, args=(Path(out), float(period_s)), name="memtrace", daemon=True).start()
    sys.argv = [command[2], *command[3:]]
    runpy.run_module(command[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
