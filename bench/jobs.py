"""The jobs that fan out: `python bench/jobs.py [--interactions 64] [--json FILE]`.

On a tree of N interactions hard-linked to the embedded sample's complete one (scale.py's tree;
20 s each), each command as a user runs it (its own process, a local Ray it starts itself):

- `dyadic prepare` with --workers 1 and 2 (shards of 4 interactions, so that there are enough to
  share): interaction-hours per minute of the job (the command's wall time, with the Ray start,
  the scan and the reference fit, is reported apart);
- training peak RSS (the process's maximum resident set) for one epoch on 1x and 4x the data:
  from shards (streamed) and, for contrast, from the data folder (decoded into memory);
- `dyadic replay --all` with --workers 1 and 2: clip-seconds rendered per second (--seconds 4 a
  clip, 320x240, the shipped model as listener);
- an extrapolation, labelled as one, of the whole dataset (65,000 interactions, 4,000 h) on N nodes
  from the measured per-unit costs.

Budget (issue 20): training peak RSS on 4x the data <= 1.2x that on 1x.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json
from scale import add_linked

from dyadic.datasets import default_sample_root
from dyadic.datasets.catalog import index_location

DATASET_HOURS, DATASET_INTERACTIONS = 4000.0, 65_000
CLIP_SECONDS = 4.0
SHARD_FRAMES = 2400  # 4 interactions a shard: enough shards for the workers to share (the default is 100)


def run(argv: list[str]) -> tuple[float, str]:
    """(wall seconds, stderr) of one dyadic command in its own process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dyadic.engine.cli", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"dyadic {' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return wall, out.stderr


def job_seconds(stderr: str, what: str) -> float:
    m = re.search(rf"(\d+) {what}\(s\) done, (\d+) failed in ([\d.]+) s", stderr)
    if not m:
        raise SystemExit(f"no job summary in:\n{stderr[-1500:]}")
    return float(m.group(3))


# runs a command and prints its peak RSS: the children's ru_maxrss of a fresh process is that one's
_PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS (MB) of one dyadic command."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "dyadic.engine.cli", *argv], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"dyadic {' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=int, default=64, help="the tree's size, 1x (default: %(default)s)")
    ap.add_argument("--replay-clips", type=int, default=8, help="clips rendered by replay --all (default: 8)")
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dyadic-jobs-", dir=default_sample_root().parent))
    rows: dict = {"interactions": args.interactions}
    try:
        n = args.interactions
        one, four, clips = base / "x1", base / "x4", base / "clips"
        add_linked(one, 0, n)
        add_linked(four, 0, 4 * n)
        add_linked(clips, 0, args.replay_clips)
        for tree in (one, four, clips):
            subprocess.run([sys.executable, "-m", "dyadic.engine.cli", "data", "index", str(tree), "-q"], check=True)
        hours = n * 20.0 / 3600

        # prepare, 1 and 2 workers (the second run of each writes into a fresh folder)
        for workers in (1, 2):
            argv = ["prepare", str(one), "--out", str(base / f"s{workers}"), "--shard-frames", str(SHARD_FRAMES)]
            wall, err = run([*argv, "--workers", str(workers), "-q"])
            job = job_seconds(err, "shard")
            rows[f"prepare {workers}w wall s"] = round(wall, 2)
            rows[f"prepare {workers}w job s"] = round(job, 2)
            rows[f"prepare {workers}w h/min"] = round(hours / (job / 60), 3)
            print(
                f"prepare, {workers} worker(s): {n} interactions ({hours:.2f} h) in {job:.1f} s "
                f"(command {wall:.1f} s): {rows[f'prepare {workers}w h/min']:.3f} interaction-hours/min",
                flush=True,
            )
        run(["prepare", str(four), "--out", str(base / "s4x"), "--shard-frames", str(SHARD_FRAMES), "-q"])

        # training peak RSS, 1x and 4x, from shards and from the folder
        for label, data in (("shards", (base / "s2", base / "s4x")), ("folder", (one, four))):
            for scale, path in zip(("1x", "4x"), data):
                argv = ["train", "--data", str(path), "--out", str(base / f"run-{label}-{scale}"), "--epochs", "1"]
                rows[f"train RSS {label} {scale} MB"] = round(peak_rss_mb([*argv, "-q"]), 1)
            ratio = rows[f"train RSS {label} 4x MB"] / rows[f"train RSS {label} 1x MB"]
            rows[f"train RSS {label} 4x/1x"] = round(ratio, 3)
            print(
                f"train from {label}: peak RSS {rows[f'train RSS {label} 1x MB']:.0f} MB at 1x, "
                f"{rows[f'train RSS {label} 4x MB']:.0f} MB at 4x ({ratio:.2f}x)",
                flush=True,
            )

        # replay --all, 1 and 2 workers
        for workers in (1, 2):
            out = base / f"v{workers}"
            argv = ["replay", "--all", "--data", str(clips), "--out", str(out), "--seconds", str(CLIP_SECONDS)]
            wall, err = run([*argv, "--size", "320x240", "--workers", str(workers), "-q"])
            job = job_seconds(err, "clip")
            rate = args.replay_clips * CLIP_SECONDS / job
            rows[f"replay {workers}w clip-s/s"] = round(rate, 3)
            print(
                f"replay --all, {workers} worker(s): {args.replay_clips} x {CLIP_SECONDS:g} s clips in {job:.1f} s: "
                f"{rate:.2f} clip-seconds per second",
                flush=True,
            )
    finally:
        for tree in ("x1", "x4", "clips"):
            index_location(base / tree).unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)

    # the whole dataset on N nodes like this one (2 cores each): an extrapolation, not a measurement
    prep_node = rows["prepare 2w h/min"] * 60  # interaction-hours per hour on one 2-core node
    replay_node = rows["replay 2w clip-s/s"]
    extrapolation = {}
    for nodes in (1, 16, 64):
        extrapolation[f"prepare 4,000 h on {nodes} node(s), h"] = round(DATASET_HOURS / (prep_node * nodes), 1)
        extrapolation[f"replay 4,000 h at 320x240 on {nodes} node(s), days"] = round(
            DATASET_HOURS * 3600 / (replay_node * nodes) / 86400, 1
        )
    rows["extrapolation (not measured)"] = extrapolation
    print("extrapolation from the per-unit costs above (2-core CPU nodes, no GPU measured):", flush=True)
    for k, v in extrapolation.items():
        print(f"  {k}: {v}", flush=True)
    results = [
        {
            "name": "train peak RSS from shards, 4x / 1x data",
            "median": rows["train RSS shards 4x/1x"],
            "p95": None,
            "unit": "ratio",
            "budget": "<= 1.2",
            "ok": rows["train RSS shards 4x/1x"] <= 1.2,
        },
        *[
            {
                "name": f"prepare, {w} Ray worker(s)",
                "median": rows[f"prepare {w}w h/min"],
                "p95": None,
                "unit": "interaction-h/min",
                "budget": None,
                "ok": None,
            }
            for w in (1, 2)
        ],
        *[
            {
                "name": f"replay --all, {w} Ray worker(s)",
                "median": rows[f"replay {w}w clip-s/s"],
                "p95": None,
                "unit": "clip-s/s",
                "budget": None,
                "ok": None,
            }
            for w in (1, 2)
        ],
    ]
    write_json(args.json, {"benchmark": "jobs", "machine": machine_info(), "rows": rows, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
