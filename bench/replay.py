"""How much faster than real time `dyadic replay` renders an interaction to MP4.

Budget (issue 2): at 640x480 on CPU, at least 2x faster than real time.
Runs the same code as the command (load, adapt, skin, render, encode, mux) on the embedded sample,
several times, and reports the median speed.

    python bench/replay.py [--seconds 10] [--repeats 3] [--size 640x480] [--json FILE]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_json  # noqa: E402

from dyadic.datasets import default_sample_root, load_interaction  # noqa: E402
from dyadic.engine.cli import parse_size  # noqa: E402
from dyadic.engine.replay import replay  # noqa: E402
from dyadic.renderer.avatar import Avatar  # noqa: E402
from dyadic.renderer.offscreen import DyadRenderer  # noqa: E402

BUDGET_SPEED = 2.0


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
    speeds = []
    with DyadRenderer(avatar, size=args.size, backend=args.gl) as renderer, tempfile.TemporaryDirectory() as tmp:
        replay(interaction, Path(tmp) / "warmup.mp4", avatar=avatar, renderer=renderer, seconds=1.0)
        for i in range(args.repeats):
            r = replay(interaction, Path(tmp) / f"run{i}.mp4", avatar=avatar, renderer=renderer,
                       seconds=args.seconds)
            speeds.append(r.speed)
            print(f"run {i}: {r.frames} frames in {r.wall_seconds:.2f} s = {r.speed:.2f}x real time", flush=True)
        backend, gl_renderer = renderer.backend, renderer.gl_renderer
    median = statistics.median(speeds)
    w, h = args.size
    print(f"\nreplay {w}x{h} [{backend}: {gl_renderer}]: median {median:.2f}x real time "
          f"over {args.repeats} runs of {args.seconds:g} s (budget >= {BUDGET_SPEED:g}x): "
          f"{'OK' if median >= BUDGET_SPEED else 'OVER BUDGET'}")
    write_json(args.json, {
            "benchmark": "replay", "machine": machine_info(), "gl": backend, "gl_renderer": gl_renderer,
            "size": f"{w}x{h}", "seconds": args.seconds, "speeds": speeds,
            "results": [{"name": f"replay {w}x{h} speed (x real time)", "median": median,
                         "budget": f">= {BUDGET_SPEED:g}", "ok": median >= BUDGET_SPEED}]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
