"""Skinning and rendering cost per frame: `python bench/render.py [--frames 300] [--json FILE]`.

Skinning: one avatar, and the two avatars of a dyad in one batched call. Rendering: DyadRenderer at
640x480 and 1280x720, with the full mesh (replay) and, rendering in software, the live render's
decimated bodies (`_live`, renderer/lod.py), timed in alternating blocks of frames (EGL; OSMesa
too with --osmesa, in a subprocess since one process can hold only one GL platform). Poses and
faces change every frame; warm-up frames are excluded.
Budget (docs/architecture.md; BENCHMARKS.md): skinning + render <= 15 ms per frame at 640x480 on 2 CPU cores,
measured as one sequential step per frame (skin both avatars, then render), not as a sum of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

BUDGET_MS = 15.0


def _stats(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1e3
    return {
        "median_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "frames": len(ms),
    }


def _timed(fn, frames: int, warmup: int) -> dict[str, float]:
    samples = []
    for k in range(warmup + frames):
        t0 = time.perf_counter()
        fn(k)
        if k >= warmup:
            samples.append(time.perf_counter() - t0)
    return _stats(samples)


def _timed_alternating(fns: dict, frames: int, warmup: int, block: int = 30) -> dict[str, dict[str, float]]:
    """Like _timed for several variants at once, in alternating blocks of frames, so that the
    machine's slow spells fall on every variant alike and their ratio is measured fairly."""
    for fn in fns.values():
        for k in range(warmup):
            fn(k)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for start in range(warmup, warmup + frames, block):
        for name, fn in fns.items():
            for k in range(start, min(start + block, warmup + frames)):
                t0 = time.perf_counter()
                fn(k)
                samples[name].append(time.perf_counter() - t0)
    return {name: _stats(s) for name, s in samples.items()}


def run(frames: int, warmup: int, backend: str, sizes: list[tuple[int, int]], body_model: str | None = None) -> dict:
    import torch

    from dyadic.renderer.avatar import Avatar
    from dyadic.renderer.idle import idle_pose
    from dyadic.renderer.offscreen import DyadRenderer

    avatar = Avatar(body_model)
    n = warmup + frames
    speakers = [idle_pose(k / 30, seed=1, talking=True) for k in range(n)]
    listeners = [idle_pose(k / 30, seed=2) for k in range(n)]
    results = {
        "skin_one": _timed(lambda k: avatar.skin_with_normals([speakers[k]]), frames, warmup),
        "skin_dyad": _timed(lambda k: avatar.skin_with_normals([speakers[k], listeners[k]]), frames, warmup),
    }
    skinned = [avatar.skin_with_normals([s, li]) for s, li in zip(speakers, listeners)]

    def render(r, k):
        v, n = skinned[k]
        r.render(v[0], v[1], normals=None if n is None else (n[0], n[1]))

    def step(r, k):  # what one frame of a dyad costs: skin both, then render
        v, n = avatar.skin_with_normals([speakers[k], listeners[k]])
        r.render(v[0], v[1], normals=None if n is None else (n[0], n[1]))

    info = {}
    for w, h in sizes:
        # the full mesh (dyadic replay) and the live render's (dyadic serve: decimate="auto")
        with (
            DyadRenderer(avatar, size=(w, h), backend=backend) as r,
            DyadRenderer(avatar, size=(w, h), backend=backend, decimate="auto") as live,
        ):
            variants = {f"render_{w}x{h}": lambda k: render(r, k), f"skin+render_{w}x{h}": lambda k: step(r, k)}
            if live.decimate > 0:
                variants[f"render_{w}x{h}_live"] = lambda k: render(live, k)
                variants[f"skin+render_{w}x{h}_live"] = lambda k: step(live, k)
            results.update(_timed_alternating(variants, frames, warmup))
            info = {
                "backend": r.backend,
                "gl_renderer": r.gl_renderer,
                "gl_version": r.gl_version,
                "live_decimate": live.decimate,
                "live_faces": live.triangles,
            }
    return {
        "results": results,
        **info,
        "torch_threads": torch.get_num_threads(),
        "body_model": avatar.kind,
        "num_vertices": avatar.num_vertices,
        "num_faces": len(avatar.faces),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--backend", default="egl", choices=["auto", "egl", "osmesa"])
    ap.add_argument("--osmesa", action="store_true", help="also measure OSMesa (subprocess)")
    ap.add_argument("--body-model", help="a real SMPL-H/SMPL-X folder (default: the embedded avatar)")
    ap.add_argument("--json", help="write the numbers and machine info here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [(640, 480), (1280, 720)]
    report = run(args.frames, args.warmup, args.backend, sizes, args.body_model)
    if args.child:
        print(json.dumps(report))
        return 0
    report["machine"] = machine_info()
    if args.osmesa:
        model = ["--body-model", args.body_model] if args.body_model else []
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--backend",
                "osmesa",
                "--frames",
                str(args.frames),
                "--warmup",
                str(args.warmup),
                *model,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        other = json.loads(out.stdout.strip().splitlines()[-1])
        report["osmesa"] = {k: other[k] for k in ("results", "gl_renderer", "gl_version")}
    res = report["results"]
    print(
        f"{report['body_model']} body model, {report['num_vertices']} vertices and "
        f"{report['num_faces']} triangles per avatar, torch threads {report['torch_threads']}, "
        f"{report['backend']}: {report['gl_renderer']} | {report['machine']['cpu']} x{report['machine']['cores']}"
    )
    print(
        f"_live: the live render (dyadic serve, --decimate auto): decimate {report['live_decimate']:g}, "
        f"{report['live_faces']} triangles per avatar"
    )
    print(f"{'stage':<28}{'median ms':>10}{'p95 ms':>10}")
    rows = [(k, v) for k, v in res.items()] + [
        (f"osmesa {k}", v) for k, v in report.get("osmesa", {}).get("results", {}).items() if k.startswith("render")
    ]
    for name, s in rows:
        print(f"{name:<28}{s['median_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    total = res["skin+render_640x480"]
    print(
        f"dyad skin + render 640x480: median {total['median_ms']:.2f} ms (budget {BUDGET_MS:g} ms): "
        f"{'OK' if total['median_ms'] <= BUDGET_MS else 'OVER BUDGET'}"
    )
    report["benchmark"] = "render"
    report["results"] = [
        {
            "name": f"{name} [{report['backend']}]" if name.startswith(("render", "skin+")) else name,
            "median": s_["median_ms"],
            "p95": s_["p95_ms"],
            "unit": "ms",
            "budget": f"<= {BUDGET_MS:g}" if name == "skin+render_640x480" else "-",
            "ok": (s_["median_ms"] <= BUDGET_MS) if name == "skin+render_640x480" else None,
        }
        for name, s_ in rows
    ]
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
