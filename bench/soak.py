"""Soak: `python bench/soak.py [--minutes 10] [--sessions 1] [--out out/soak] [--json FILE] [--memtrace DIR]`.

Does anything creep when sessions run for a long time? `dyadic serve` in its own process, N
headless Chromium pages (the engine's page; the first clip, which loops), on loopback. Every 10 s:
the resident memory (RSS) of the server and of each render worker, each page's decoded FPS over
the window, its A/V offset (getStats, sampled every second) and its glass to glass latency
(client/latency.js joins the server's frame traces to the presented frames). Budget (issue 17):
after warm-up the RSS grows by under 1 MB per 10 minutes (least-squares slope of the total), every
10-s window holds >= 29.5 FPS, and latency stays flat (last third no higher than the first third,
profile.GROWTH_TOLERANCE_MS of noise allowed). Writes soak.json and soak.png into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
from machine import machine_info, write_json

from dyadic.engine.harness.browser import ChromiumPage
from dyadic.engine.harness.serve_process import ServeProcess, process_role, process_tree_rss
from dyadic.engine.profiling.report import GROWTH_TOLERANCE_MS

WINDOW_S = 10.0
AV_PERIOD_S = 1.0
MIN_FPS = 29.5
RSS_BUDGET_MB = 1.0  # per 10 minutes


async def _page_windows(url: str, seconds: float, out: list[dict[str, Any]], ready: asyncio.Event) -> None:
    """One page: a row per 10-s window (decoded FPS, A/V offsets, glass to glass median)."""
    async with ChromiumPage(url) as page:
        await page.wait_connected()
        assert page.page is not None
        await page.page.wait_for_function("() => window.dyadic.frames().length > 0", timeout=60_000)
        ready.set()
        last = await page.stats()
        last_t = time.monotonic()
        end = last_t + seconds
        while time.monotonic() < end:
            av: list[float] = []
            stats = last
            window_end = min(end, last_t + WINDOW_S)
            while (left := window_end - time.monotonic()) > 0:
                await asyncio.sleep(min(AV_PERIOD_S, left))
                stats = await page.stats()
                if stats.get("avOffsetMs") is not None:
                    av.append(stats["avOffsetMs"])
            now = time.monotonic()
            summary = await page.evaluate("() => window.dyadic.latency.summary()")
            decoded = (stats.get("framesDecoded") or 0) - (last.get("framesDecoded") or 0)
            g2g = (summary or {}).get("glassToGlass") or {}
            out.append(
                {
                    "t": now,
                    "fps": decoded / (now - last_t),
                    "av_ms": av,
                    "g2g_median_ms": g2g.get("median"),
                    "g2g_p95_ms": g2g.get("p95"),
                    # where the time goes (server stages, network, jitter buffer): medians, ms
                    "stages_ms": {name: st["median"] for name, st in (summary or {}).get("stages", [])},
                }
            )
            last, last_t = stats, now


def _aiortc_windows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A probe's session as 10-s windows: decoded FPS and glass to glass (the end of the frame's
    audio -> decoded here, on the one clock of this machine); aiortc gives no A/V offset."""
    from dyadic.engine.profiling.rtp import join

    times = np.array(result["video_times"])
    received = [{"rtp": p, "times": {"decoded": t}} for t, p in zip(times, result["video_pts"])]
    frames, _ = join(result["traces"], received)
    decoded = np.array([f["times"]["decoded"] for f in frames])
    g2g = np.array([(f["times"]["decoded"] - f["times"]["captured"]) * 1e3 for f in frames])
    out = []
    for start in np.arange(times[0] + WINDOW_S, times[-1] - WINDOW_S, WINDOW_S):
        inside = (decoded >= start) & (decoded < start + WINDOW_S)
        n = int(((times >= start) & (times < start + WINDOW_S)).sum())
        out.append(
            {
                "t": float(start + WINDOW_S),
                "fps": n / WINDOW_S,
                "av_ms": [],
                "g2g_median_ms": float(np.median(g2g[inside])) if inside.any() else None,
                "g2g_p95_ms": float(np.percentile(g2g[inside], 95)) if inside.any() else None,
                "stages_ms": {},
            }
        )
    return out


async def _aiortc_clients(url: str, sessions: int, seconds: float, pages: list[list[dict[str, Any]]]) -> None:
    """`dyadic probe --trace` in its own process at nice +10 (stand-ins for browsers elsewhere:
    two Chromium pages and two sessions do not fit on two cores together)."""
    cmd = [sys.executable, "-m", "dyadic.engine.cli", "probe", url, "--trace", "--nice", "10"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--sessions", str(sessions), "--seconds", str(seconds), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dyadic probe failed ({proc.returncode})")
    for k, result in enumerate(json.loads(out.decode().strip().splitlines()[-1])):
        pages[k].extend(_aiortc_windows(result))


async def soak(minutes: float, sessions: int, client: str = "chromium", memtrace: str | None = None) -> dict[str, Any]:
    seconds = minutes * 60
    memory: list[dict[str, Any]] = []
    pages: list[list[dict[str, Any]]] = [[] for _ in range(sessions)]
    # --memtrace: the server's heap and objects each minute (bench/memtrace.py)
    wrap = [sys.executable, str(Path(__file__).with_name("memtrace.py")), memtrace, "60", "--"] if memtrace else None
    with ServeProcess("--max-sessions", str(sessions), wrap=wrap) as server:
        if client == "chromium":
            ready = [asyncio.Event() for _ in range(sessions)]
            tasks = [
                asyncio.create_task(_page_windows(server.url, seconds, pages[k], ready[k])) for k in range(sessions)
            ]
            for event in ready:
                await event.wait()
        else:
            tasks = [asyncio.create_task(_aiortc_clients(server.ws, sessions, seconds, pages))]
            while server.status()["sessions"] < sessions:
                await asyncio.sleep(0.5)
        t0 = time.monotonic()
        print(f"soak: {sessions} session(s) for {minutes:g} min", flush=True)
        while not all(t.done() for t in tasks):
            rss = process_tree_rss(server.proc.pid)
            by_role = {process_role(pid, server.proc.pid): b for pid, b in rss.items()}
            memory.append({"t": time.monotonic(), "rss": by_role})
            mb = sum(by_role.values()) / 2**20
            fps = [p[-1]["fps"] for p in pages if p]
            print(f"  {(time.monotonic() - t0) / 60:5.1f} min  RSS {mb:7.1f} MB  FPS {fps}", flush=True)
            done, _ = await asyncio.wait(tasks, timeout=WINDOW_S)
            for task in done:
                task.result()  # a page that failed fails the soak
    return {"t0": t0, "memory": memory, "pages": pages}


def summarise(run: dict[str, Any], minutes: float) -> dict[str, Any]:
    t0 = run["t0"]
    warmup_s = min(180.0, 0.2 * minutes * 60)  # start-up, caches and the first loops of the clip
    last = max(w["t"] for page in run["pages"] for w in page)  # sessions closing after it free memory
    mem = [m for m in run["memory"] if warmup_s <= m["t"] - t0 <= last - t0]
    t = np.array([m["t"] - t0 for m in mem])
    total = np.array([sum(m["rss"].values()) / 2**20 for m in mem])
    slope = float(np.polyfit(t, total, 1)[0] * 600) if len(t) >= 3 else float("nan")  # MB per 10 min
    windows = [w for page in run["pages"] for w in page]
    min_fps = min(w["fps"] for w in windows)
    av = [x for w in windows for x in w["av_ms"]]
    firsts, lasts = [], []
    for page in run["pages"]:
        g2g = [w["g2g_median_ms"] for w in page if w["g2g_median_ms"] is not None]
        third = max(1, len(g2g) // 3)
        firsts.append(float(np.median(g2g[:third])))
        lasts.append(float(np.median(g2g[-third:])))
    growth = max(b - a for a, b in zip(firsts, lasts))
    return {
        "rss_slope_mb_per_10min": round(slope, 3),
        "rss_mb_after_warmup": [round(float(total[0]), 1), round(float(total[-1]), 1)] if len(total) else None,
        "min_window_fps": round(min_fps, 2),
        "av_offset_max_abs_ms": round(max(abs(x) for x in av), 1) if av else None,
        "g2g_first_third_ms": [round(x, 1) for x in firsts],
        "g2g_last_third_ms": [round(x, 1) for x in lasts],
        "latency_growth_ms": round(growth, 2),
    }


def plot(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = run["t0"]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    roles = sorted({r for m in run["memory"] for r in m["rss"]})
    for role in roles:
        pts = [((m["t"] - t0) / 60, m["rss"][role] / 2**20) for m in run["memory"] if role in m["rss"]]
        axes[0].plot(*zip(*pts), label=role)
    axes[0].set_ylabel("RSS, MB")
    axes[0].legend(fontsize=7)
    for k, page in enumerate(run["pages"]):
        mins = [(w["t"] - t0) / 60 for w in page]
        axes[1].plot(mins, [w["fps"] for w in page], label=f"session {k + 1}")
        axes[2].plot(mins, [w["g2g_median_ms"] for w in page], label=f"glass to glass, session {k + 1}")
        axes[2].plot(mins, [np.median(w["av_ms"]) if w["av_ms"] else np.nan for w in page], "--", label=f"A/V, {k + 1}")
    axes[1].axhline(MIN_FPS, color="grey", lw=0.8)
    axes[1].set_ylabel("decoded FPS per 10 s")
    axes[2].set_ylabel("ms")
    axes[2].set_xlabel("minutes")
    axes[2].legend(fontsize=7)
    fig.suptitle("Soak: memory, frame rate, latency and A/V offset over time")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long (default: 10, the make bench run)")
    ap.add_argument("--sessions", type=int, default=1, help="sessions at once (default: 1)")
    ap.add_argument(
        "--client",
        choices=("chromium", "aiortc"),
        default="chromium",
        help="headless Chromium pages (A/V offset too), or aiortc clients at nice +10 (several sessions on 2 cores)",
    )
    ap.add_argument("--out", default="out/soak", help="where soak.json and soak.png go (default: %(default)s)")
    ap.add_argument("--json", help="write the numbers and machine info here (bench/run_all.py)")
    ap.add_argument(
        "--memtrace",
        metavar="DIR",
        help="record the server's heap (glibc) and live objects by type each minute into DIR (bench/memtrace.py)",
    )
    args = ap.parse_args(argv)
    run = asyncio.run(soak(args.minutes, args.sessions, args.client, args.memtrace))
    summary = summarise(run, args.minutes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps({"summary": summary, **run}, indent=1))
    plot(run, out / "soak.png")
    print(json.dumps(summary, indent=1))
    label = f"{args.sessions} session(s), {args.minutes:g} min, {args.client}"
    rows = [
        ("RSS slope after warm-up", summary["rss_slope_mb_per_10min"], "MB/10 min", f"< {RSS_BUDGET_MB:g}",
         summary["rss_slope_mb_per_10min"] < RSS_BUDGET_MB),
        ("worst 10-s window", summary["min_window_fps"], "FPS", f">= {MIN_FPS:g}",
         summary["min_window_fps"] >= MIN_FPS),
        ("latency last - first third", summary["latency_growth_ms"], "ms", f"<= {GROWTH_TOLERANCE_MS:g}",
         summary["latency_growth_ms"] <= GROWTH_TOLERANCE_MS),
        ("A/V offset, largest |x|", summary["av_offset_max_abs_ms"], "ms", "<= 40",
         None if summary["av_offset_max_abs_ms"] is None else summary["av_offset_max_abs_ms"] <= 40),
    ]  # fmt: skip
    report = {
        "benchmark": "soak",
        "machine": machine_info(),
        "minutes": args.minutes,
        "sessions": args.sessions,
        "summary": summary,
        "results": [
            {
                "name": f"{name} ({label})",
                "median": value,
                "p95": None,
                "unit": unit,
                "budget": budget,
                "ok": None if ok is None else bool(ok),
            }
            for name, value, unit, budget, ok in rows
        ],
    }
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
