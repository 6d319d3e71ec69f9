"""The shipped weights against the reference rows on held-out data: `python bench/shipped_quality.py
[--formats seamless react] [--seamless FILE] [--react FILE] [--work build/quality] [--json FILE]`.

Budget (issue 20): on generated interactions from seeds never used in training (the embedded
sample and models/quality.py HELD_OUT_SEEDS, generated into --work on first use), for both formats,
the model beats the mirror and random rows on FRCorr and FRDist by at least 5 % each. `dyadic eval`
with `--samples 10`, seed 0, on a local Ray. `make weights` prints the same after training; this
scores the files as they are, in about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", nargs="+", default=["seamless", "react"], choices=["seamless", "react"])
    ap.add_argument("--seamless", help="the Seamless model to score (default: the shipped weights)")
    ap.add_argument("--react", help="the REACT model to score (default: the shipped weights)")
    ap.add_argument("--work", default=str(ROOT / "build" / "quality"), help="held-out data and reports")
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)

    from dyadic.datasets.fanout import ray_cluster
    from dyadic.models.quality import QUALITY_MARGIN, margins_line, score_held_out
    from dyadic.models.shipped import default_model_path

    results, sets = [], {}
    t0 = time.perf_counter()
    with ray_cluster():  # one local Ray for every evaluation
        for fmt in args.formats:
            model = getattr(args, fmt) or str(default_model_path(fmt))
            for name, scored in score_held_out(fmt, model, Path(args.work) / fmt, log=lambda _: None).items():
                report, better = scored["report"], scored["margins"]
                print(f"{fmt} {name} ({len(report['interactions'])} interactions): {margins_line(better)}", flush=True)
                sets[f"{fmt} {name}"] = {"model": model, "rows": report["rows"], "margins": better}
                for row, by_metric in better.items():
                    for metric, value in by_metric.items():
                        results.append(
                            {
                                "name": f"{fmt} {name}: {metric} better than {row}",
                                "median": round(100 * value, 1),
                                "p95": None,
                                "unit": "%",
                                "budget": f">= {100 * QUALITY_MARGIN:g}",
                                "ok": value >= QUALITY_MARGIN,
                            }
                        )
    met = all(r["ok"] for r in results)
    print(
        f"budget (>= {QUALITY_MARGIN:.0%} better on FRCorr and FRDist than mirror and random, every held-out set): "
        f"{'met' if met else 'NOT met'} ({time.perf_counter() - t0:.0f} s)"
    )
    write_json(args.json, {"benchmark": "shipped_quality", "machine": machine_info(), "sets": sets, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
