"""Glass to glass: `python bench/latency.py [--mic] [--render server|client] [--seconds 60] [--out DIR] [--json FILE]`.

`dyadic profile` with one 640x480 session and headless Chromium on loopback (frame ids on), as a
user runs it, playing the first recording or, with --mic, listening to the browser's microphone
(Chromium's fake capture device: the live path, whose audio arrives over WebRTC); prints the
per-stage table and checks the issue-5 budget: glass to glass (the end of the speaker's audio ->
the frame presented by the page) median <= 60 ms and p95 <= 90 ms, the A/V offset within +/- 40 ms
over the whole run, and the latency of the last third of the run no higher than the first third
(profile.GROWTH_TOLERANCE_MS of noise allowed). The report (trace.jsonl, summary.json, report.html)
is kept in --out. `--render client`: browser mode (issue 19), to the animation frame that drew each
pose (three.js on SwiftShader here), the same budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

from dyadic.engine.profiling import report as profile
from dyadic.engine.profiling.run import ProfileRequest

LABELS = {
    "glass_to_glass_median_ms": ("glass to glass median", "ms"),
    "glass_to_glass_p95_ms": ("glass to glass p95", "ms"),
    "av_offset_max_abs_ms": ("A/V offset, largest |x|", "ms"),
    "latency_end_vs_start_ms": ("latency last - first third", "ms"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="profiled window (default: 60, the issue's)")
    ap.add_argument("--mic", action="store_true", help="profile the browser microphone instead of a recording")
    ap.add_argument(
        "--render", choices=("server", "client"), default="server", help="server video (default) or browser mode"
    )
    ap.add_argument("--out", help="where the report goes (default: out/bench-profile[-client][-mic])")
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)
    suffix = ("-client" if args.render == "client" else "") + ("-mic" if args.mic else "")
    out = Path(args.out or f"out/bench-profile{suffix}")
    request = ProfileRequest(
        seconds=args.seconds,
        client="chromium",
        frame_ids=args.render == "server",
        microphone=args.mic,
        render=args.render,
    )
    run = profile.run_profile(request)
    summary = profile.write_all(run, out)
    print(profile.table(summary))
    print(f"report: {out / 'report.html'}")
    results = []
    for key, b in summary["budget"].items():
        name, unit = LABELS[key]
        results.append(
            {
                "name": name,
                "median": b["value"],
                "p95": None,
                "unit": unit,
                "budget": f"<= {b['budget']:g}",
                "ok": b["ok"],
            }
        )
    stages = summary["stages_ms"]
    results += [
        {"name": f"stage {n}", "median": s["median"], "p95": s["p95"], "unit": "ms", "budget": "-", "ok": None}
        for n, s in stages.items()
    ]
    results.append(
        {
            "name": "audio underruns",
            "median": summary.get("audio_underruns", 0),
            "p95": None,
            "unit": "count",
            "budget": "-",
            "ok": None,
        }
    )
    write_json(args.json, {"benchmark": "profile", "machine": machine_info(), "summary": summary, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
