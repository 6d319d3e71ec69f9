"""Where does a long-running server's memory go? A launcher for `bench/soak.py --memtrace DIR`.

`python bench/memtrace.py DIR PERIOD_S [--tracemalloc] -- PYTHON -m MODULE ARGS...` runs MODULE (the
server) in this process, and every PERIOD_S writes one line to DIR/memtrace.jsonl: the process's RSS,
glibc's own account of its heap (mallinfo2: in use, free but kept, mmapped) and the count of live
Python objects of each type that changed since the first record after warm-up. RSS that follows
glibc's "free but kept" is the heap fragmenting, not a leak; RSS that rises while glibc's bytes in
use and the object counts stay flat is memory outside malloc (a library's own mappings).

With --tracemalloc the allocation sites that grew most since that record go to
DIR/growth-MINUTES.txt (tracebacks 6 deep). It slows a busy server's Python several times over (a
2-session server saturated its core): use it for where, never for how much or for FPS.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import gc
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


@functools.cache
def _mallinfo2() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None  # not glibc, or older than 2.33
    return libc.mallinfo2


def _glibc_heap() -> dict[str, int] | None:
    mallinfo2 = _mallinfo2()
    if mallinfo2 is None:
        return None
    info = mallinfo2()
    # uordblks: bytes in use; fordblks: free but kept in the heap; hblkhd: in mmapped blocks
    return {"in_use": info.uordblks, "free_kept": info.fordblks, "mmapped": info.hblkhd, "arena": info.arena}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _object_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


class _Baseline:
    """What the first record after warm-up saw."""

    def __init__(self) -> None:
        self.objects: collections.Counter[str] | None = None
        self.snapshot: tracemalloc.Snapshot | None = None


def _record(out: Path, t0: float, base: _Baseline) -> None:
    minutes = (time.monotonic() - t0) / 60
    counts = _object_counts()
    line: dict[str, Any] = {"minutes": round(minutes, 2), "rss": _rss(), "glibc": _glibc_heap()}
    line["objects"] = sum(counts.values())
    if base.objects is not None:
        changed = {k: counts[k] - base.objects[k] for k in counts | base.objects if counts[k] != base.objects[k]}
        line["objects_changed"] = dict(sorted(changed.items(), key=lambda kv: -abs(kv[1]))[:TOP])
    if tracemalloc.is_tracing():
        line["traced"] = tracemalloc.get_traced_memory()[0]
    with (out / "memtrace.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    warm = time.monotonic() - t0 >= WARMUP_S
    snap = None
    if tracemalloc.is_tracing() and (warm or base.snapshot is not None):
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if base.objects is None:
        if warm:
            base.objects, base.snapshot = counts, snap
        return
    if snap is not None and base.snapshot is not None:
        with (out / f"growth-{minutes:05.1f}.txt").open("w") as f:
            for stat in snap.compare_to(base.snapshot, "traceback")[:TOP]:
                f.write(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks\n")
                f.writelines(f"      {frame}\n" for frame in stat.traceback.format())


def _sample(out: Path, period_s: float) -> None:
    t0 = time.monotonic()
    base = _Baseline()
    while True:
        time.sleep(period_s)
        _record(out, t0, base)


def main() -> None:
    args = sys.argv[1:]
    sep = args.index("--") if "--" in args else len(args)
    (out, period_s, *flags), command = args[:sep], args[sep + 1 :]
    # the command as harness/serve_process.py builds it: PYTHON -m MODULE ARGS...
    if len(command) < 3 or command[1] != "-m" or set(flags) - {"--tracemalloc"}:
        sys.exit("usage: memtrace.py DIR PERIOD_S [--tracemalloc] -- PYTHON -m MODULE ARGS...")
    Path(out).mkdir(parents=True, exist_ok=True)
    if flags:
        tracemalloc.start(FRAMES)
    threading.Thread(target=_sample, args=(Path(out), float(period_s)), name="memtrace", daemon=True).start()
    sys.argv = [command[2], *command[3:]]
    runpy.run_module(command[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
