"""What every benchmark records with its numbers: the machine (described by the package, which the
profiler reports too) and the JSON file that bench/run_all.py reads."""

import json

from dyadic.engine.profiling.hardware import machine_info  # noqa: F401 (re-exported for the benchmarks)


def write_json(path: str | None, report: dict) -> None:
    """`--json FILE`: the report with its `results` rows (name, median, p95, unit, budget, ok)."""
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
