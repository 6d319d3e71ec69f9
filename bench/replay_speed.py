"""How much faster than real time `dyadic replay` renders an interaction to MP4.

Budget (issue 2): at 640x480 on CPU, at least 2x faster than real time.
Runs the same code as the command (load, adapt, skin, render, encode, mux) on the embedded sample,
several times, and reports the median speed: with the recorded listener (two avatars, the budget)
and as the command runs by default (the reaction model's listener, the real one as a ghost: the
model's steps and a third, translucent avatar).

    python bench/replay_speed.py [--seconds 10] [--repeats 3] [--size 640x480] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_json

from dyadic.datasets import default_sample_root, load_interaction
from dyadic.engine.cli.options import parse_size
from dyadic.engine.offline.replay import replay
from dyadic.renderer.avatar import Avatar
from dyadic.renderer.offscreen import DyadRenderer

BUDGET_SPEED = 2.0
# name -> (the reaction model drives the listener, the real listener drawn as a ghost)
SETTINGS = {"recorded listener": (False, False), "model listener + ghost (the default)": (True, True)}


def _speeds(interaction, avatar, args, tmp: Path, use_model: bool, ghost: bool):
    model = None
    if use_model:
        from dyadic.models.runtime import load_runtime
        from dyadic.models.shipped import default_model_path

        model = load_runtime(default_model_path(interaction.dataset), device="cpu")
    speeds = []
    with DyadRenderer(avatar, size=args.size, backend=args.gl, ghost=ghost) as renderer:
        replay(interaction, tmp / "warmup.mp4", avatar=avatar, renderer=renderer, seconds=1.0, model=model)
        for i in range(args.repeats):
            r = replay(
                interaction, tmp / f"run{i}.mp4", avatar=avatar, renderer=renderer, seconds=args.seconds, model=model
            )
            speeds.append(r.speed)
            print(f"  run {i}: {r.frames} frames in {r.wall_seconds:.2f} s = {r.speed:.2f}x real time", flush=True)
        return speeds, renderer.backend, renderer.gl_renderer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=parse_size, default=(640, 480))
    p.add_argument("--gl", default="auto")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()

    interaction = load_interaction(default_sample_root())
    avatar = Avatar()
    w, h = args.size
    results, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (use_model, ghost) in SETTINGS.items():
            print(f"{name}:", flush=True)
            speeds, backend, gl_renderer = _speeds(interaction, avatar, args, Path(tmp), use_model, ghost)
            median = statistics.median(speeds)
            runs[name] = speeds
            budgeted = name == "recorded listener"  # issue 2's budget: the two avatars of a dyad
            print(
                f"replay {w}x{h}, {name} [{backend}: {gl_renderer}]: median {median:.2f}x real time over "
                f"{args.repeats} runs of {args.seconds:g} s"
                + (
                    f" (budget >= {BUDGET_SPEED:g}x): {'OK' if median >= BUDGET_SPEED else 'OVER BUDGET'}"
                    if budgeted
                    else ""
                ),
                flush=True,
            )
            results.append(
                {
                    "name": f"replay {w}x{h} speed, {name} (x real time)",
                    "median": median,
                    "budget": f">= {BUDGET_SPEED:g}" if budgeted else "-",
                    "ok": (median >= BUDGET_SPEED) if budgeted else None,
                }
            )
    write_json(
        args.json,
        {
            "benchmark": "replay",
            "machine": machine_info(),
            "gl": backend,
            "gl_renderer": gl_renderer,
            "size": f"{w}x{h}",
            "seconds": args.seconds,
            "speeds": runs,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
