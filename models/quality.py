"""The shipped weights' quality budget (issue 20): on generated interactions from seeds never used in
training, for both formats, the model beats the mirror and random rows on FRCorr and FRDist by at
least QUALITY_MARGIN each. `make weights` checks it after training, `bench/shipped_quality.py` on the
files as they are, and a test on the embedded sample.

The held-out sets: the embedded sample (seeds 0 and 1) and HELD_OUT_SEEDS, generated on demand
(HELD_OUT_INTERACTIONS x HELD_OUT_SECONDS each, deterministic in the seed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

QUALITY_ROWS = ("mirror", "random")  # what the shipped weights must beat on held-out data ...
QUALITY_MARGIN = 0.05  # ... by at least 5 % on FRCorr and on FRDist (margins())
HELD_OUT_SEEDS = {"seamless": (300, 301), "react": (400, 401)}  # never used in training
HELD_OUT_INTERACTIONS = 6
HELD_OUT_SECONDS = 60.0


def margins(report: dict) -> dict[str, dict[str, float]]:
    """Reference row -> metric -> how much better the model is than that row on FRCorr and FRDist,
    as a fraction of the row's value, from an `evaluate()` report."""
    model = report["rows"]["model"]
    out = {}
    for row in QUALITY_ROWS:
        base = report["rows"][row]
        out[row] = {
            "FRCorr": (model["FRCorr"] - base["FRCorr"]) / max(abs(base["FRCorr"]), 1e-9),
            "FRDist": (base["FRDist"] - model["FRDist"]) / max(abs(base["FRDist"]), 1e-9),
        }
    return out


def meets_budget(better: dict[str, dict[str, float]]) -> bool:
    return all(v >= QUALITY_MARGIN for row in better.values() for v in row.values())


def generated(folder: Path, fmt: str, interactions: int, seconds: float, seed: int, start: int = 0) -> Path:
    """The sample generator's output for these arguments in `folder`, written once (a `.complete`
    marker tells a finished folder from one a killed run left half written)."""
    from dyadic.datasets.sample import generate_sample

    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate_sample(folder, fmt, interactions=interactions, seconds=seconds, seed=seed, start=start)
        (folder / ".complete").touch()
    return folder


def held_out_sets(fmt: str, work: Path) -> dict[str, Path]:
    """Name -> data folder of each held-out set of `fmt`; the seeds' folders are made under `work`."""
    from dyadic.datasets import default_sample_root

    sets = {"embedded sample": default_sample_root() / fmt}
    for seed in HELD_OUT_SEEDS[fmt]:
        sets[f"seed {seed}"] = generated(
            Path(work) / f"seed-{seed}", fmt, HELD_OUT_INTERACTIONS, HELD_OUT_SECONDS, seed
        )
    return sets


def score_held_out(fmt: str, model: str | Path, work: Path, log=print) -> dict[str, dict]:
    """Evaluate `model` on every held-out set of `fmt` (reports in work/report-<set>/): set name ->
    {"report", "margins", "met"}. Generation runs as Ray tasks (a Ray the caller started is reused)."""
    from .evaluate import evaluate

    out = {}
    for name, folder in held_out_sets(fmt, Path(work) / "held-out").items():
        report = evaluate(folder, model, out=Path(work) / f"report-{name.replace(' ', '-')}", progress=False, log=log)
        better = margins(report)
        out[name] = {"report": report, "margins": better, "met": meets_budget(better)}
    return out


def margins_line(better: dict[str, dict[str, float]]) -> str:
    """'better than mirror / random by: ... -> budget (>= 5 % each) met' for a log."""
    return (
        "better than mirror / random by: "
        + ", ".join(f"{row} {k} {v:+.1%}" for row, d in better.items() for k, v in d.items())
        + f" -> budget (>= {QUALITY_MARGIN:.0%} each) {'met' if meets_budget(better) else 'NOT met'}"
    )
