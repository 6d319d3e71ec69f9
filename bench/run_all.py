"""`make bench`: runs every benchmark of the project and prints one table against the budgets.

Each benchmark script writes its measured numbers as JSON (`--json FILE`, a list of `results`
rows: name, median, p95, unit, budget, ok); this script runs them one after another (never in
parallel: they would measure each other) and prints the rows together. BENCHMARKS.md records the
numbers with the machine, the command and the date.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# (script, its arguments): glass to glass is measured for a recording and for the live microphone
BENCHMARKS = [
    ("render.py",),
    ("replay_speed.py",),
    ("model.py",),
    ("shipped_quality.py",),  # the shipped weights against the mirror and random rows on held-out data
    ("serve.py",),
    ("serve.py", "--render", "client"),  # browser mode: many sessions, poses and audio only
    ("latency.py",),
    ("latency.py", "--mic"),
    ("latency.py", "--render", "client"),  # browser mode: to the animation frame that drew the pose
    ("network.py",),
    ("scale.py",),  # the catalog index at 1,000-16,000 interactions
    ("jobs.py",),  # prepare / replay --all over Ray, training peak RSS from shards
    ("soak.py", "--minutes", "10"),  # the hour-long and two-session soaks: BENCHMARKS.md
]


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main() -> int:
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (script, *args) in enumerate(BENCHMARKS):
            label = " ".join([script.removesuffix(".py"), *args])
            out = Path(tmp) / f"{k}-{script}.json"
            print(f"== bench/{script} {' '.join(args)}".rstrip(), flush=True)
            proc = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)])
            if proc.returncode != 0 or not out.exists():
                failed.append(label)
                continue
            data = json.loads(out.read_text())
            for r in data["results"]:
                rows.append(
                    (
                        label,
                        r["name"],
                        fmt(r.get("median")),
                        fmt(r.get("p95")),
                        r.get("unit", ""),
                        str(r.get("budget", "-")),
                        {True: "ok", False: "OVER"}.get(r.get("ok"), "-"),
                    )
                )
    header = ("bench", "measure", "median", "p95", "unit", "budget", "")
    table = [header] + rows
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    print()
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
