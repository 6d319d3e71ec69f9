"""`dyadic profile`: where every millisecond of a frame goes, from the speaker's audio to the client.

run.py runs the engine as in production against real clients and returns their raw marks;
this module joins them to the server's frame traces, summarises and reports.

A client frame is matched to its server frame through the RTP clock: the sender adds one random
32-bit origin to every pts; the origin is the difference that pairs the most frames, and among
equals (pts are content times, regular at a steady frame rate) the one whose frames arrive soonest
after they were sent (rtp.py). Client marks are put on the server's monotonic clock: the aiortc client shares
it (same machine, CLOCK_MONOTONIC); Chromium's page clock is mapped through the websocket pong with
the smallest round trip, and on one machine that mapping is checked against the OS's own
CLOCK_MONOTONIC - CLOCK_REALTIME difference (the page clock is wall time from performance.timeOrigin).

Per frame, each interval is named by the mark it ends at and starts at the previous mark present;
together they add up to the end-to-end time exactly:

    features+model        captured -> model_end    (the frame's audio ended -> listener pose out)
    queue                 -> worker_start          (waiting for the render worker)
    skin                  -> skinned
    render                -> rendered
    hand-over             -> encode_start          (copied out, taken by aiortc's encoder thread)
    encode                -> encode_end
    send pacing           -> sent                  (held until content + 35 ms, then its packets go)
    network               -> received              (Chromium: the frame's last packet arrived)
    jitter buffer+decode  -> presented             (Chromium: requestVideoFrameCallback presentationTime)
    network+decode        sent -> decoded          (aiortc: out of its decoder; no display)

End to end is "captured" to the last client mark: with Chromium that is glass to glass (the frame
handed to the compositor), with aiortc only "decoded" (aiortc's receiver also holds each frame
until the next frame's first packet arrives, so it counts about one frame interval more).
"""

from __future__ import annotations

import base64
import collections
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contracts import CLIENT_MARKS, INTERVAL_ORDER, intervals
from ..pipeline import frame_id
from .rtp import join

if TYPE_CHECKING:
    from .run import ProfileRequest, RawRun

# the budget for one 640x480 session with headless Chromium on loopback
BUDGET = {"glass_to_glass_median_ms": 60.0, "glass_to_glass_p95_ms": 90.0, "av_offset_max_abs_ms": 40.0}
GROWTH_TOLERANCE_MS = 2.0  # "no higher at the end than at the start", allowing for noise


@dataclass
class ProfileRun:
    frames: list[dict[str, Any]]  # matched frames: {"session", "index", "pts", "times": {mark: monotonic s}, ...}
    unmatched_client_frames: int
    telemetry: list[dict[str, Any]]  # the last telemetry of each session
    cpu_seconds: dict[str, float]  # process -> CPU seconds over the run
    seconds: float
    sessions: int
    client: str
    server: dict[str, Any]  # /status at the end
    av: list[dict[str, Any]] = field(default_factory=list)  # {"session", "t": monotonic s, "ms"}: A/V offset samples
    clock: list[dict[str, Any]] = field(default_factory=list)  # per session: the page clock mapping and its check
    client_stats: list[dict[str, Any]] = field(default_factory=list)  # per session: the page's last getStats summary
    gpu: list[dict[str, float]] = field(default_factory=list)  # nvidia-smi samples, once a second (none without a GPU)
    render: str = "server"  # "client": browser mode (poses joined by frame index)


def end_mark(times: dict[str, float]) -> str:
    return next(m for m in reversed(CLIENT_MARKS) if m in times)


def end_to_end_ms(times: dict[str, float]) -> float:
    return (times[end_mark(times)] - times["captured"]) * 1e3


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    return {
        "median": round(float(np.median(v)), 2),
        "p95": round(float(np.percentile(v, 95)), 2),
        "p99": round(float(np.percentile(v, 99)), 2),
        "max": round(float(v.max()), 2),
        "n": int(len(v)),
    }


# -- from raw client records to a run -------------------------------------------------------------
def best_clock(pongs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The page -> server clock offset (ms) from the pong with the smallest round trip."""
    if not pongs:
        return None
    best = min(pongs, key=lambda p: p["rtt"])
    return {"offset_ms": best["offset"], "rtt_ms": round(best["rtt"], 3), "pongs": len(pongs)}


def from_raw(raw: RawRun) -> ProfileRun:
    """run.RawRun -> ProfileRun: every client mark on the server's clock, frames joined,
    the warm-up left out."""
    frames: list[dict[str, Any]] = []
    av: list[dict[str, Any]] = []
    clocks: list[dict[str, Any]] = []
    unmatched = 0
    for k, s in enumerate(raw.sessions):
        client = s.frames
        start = s.start
        if s.clock:  # a page: map its clock
            clock = best_clock(s.clock)
            assert clock is not None  # from the pongs just checked
            off = clock["offset_ms"]
            clock["os_check_ms"] = round(off - raw.os_clock_offset_ms, 3)  # ~0 on one machine
            clocks.append(clock)
            client = [
                {
                    **{k: v for k, v in f.items() if k not in ("page", "frame_id")},
                    **({"frame_id": f.get("frame_id")} if raw.frame_ids else {}),
                    "times": {m: (t + off) / 1e3 for m, t in f["page"].items() if t is not None},
                }
                for f in s.frames
            ]
            start = (s.start + off) / 1e3
            av += [{"session": k, "t": (a["t"] + off) / 1e3, "ms": a["ms"]} for a in s.av]
        joined, missing = join_by_index(s.traces, client) if raw.render == "client" else join(s.traces, client)
        frames += [{"session": k, **f} for f in joined if f["times"]["captured"] >= start]
        unmatched += missing
    if frames:  # A/V samples of the profiled window only
        first = min(f["times"]["captured"] for f in frames)
        av = [a for a in av if a["t"] >= first]
    return ProfileRun(
        frames,
        unmatched,
        [s.telemetry for s in raw.sessions if s.telemetry],
        raw.cpu_seconds,
        raw.seconds,
        len(raw.sessions),
        raw.client,
        raw.server,
        av=av,
        clock=clocks,
        client_stats=[s.stats for s in raw.sessions if s.stats],
        gpu=raw.gpu,
        render=raw.render,
    )


def join_by_index(
    server_frames: list[dict[str, Any]], client_frames: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Browser mode: each pose carries its frame index, so server traces and client poses pair
    directly (no RTP clock to find). Poses after the newest trace are left out, not unmatched: the
    run ended before their traces came (a pose arrives long before its trace, which rides on the
    next telemetry)."""
    by_index = {f["index"]: f for f in server_frames if "sent" in f["times"]}
    newest = max(by_index, default=-1)
    out, unmatched = [], 0
    for c in client_frames:
        if c["index"] > newest:
            continue
        frame = by_index.get(c["index"])
        if frame is None:
            unmatched += 1
            continue
        extras = {k: v for k, v in c.items() if k not in ("index", "times")}
        out.append({"index": frame["index"], "pts": None, "times": {**frame["times"], **c["times"]}, **extras})
    return out, unmatched


def _thirds(values: list[float]) -> tuple[float, float]:
    third = max(1, len(values) // 3)
    return round(float(np.median(values[:third])), 2), round(float(np.median(values[-third:])), 2)


def _frame_ids(frames: list[dict[str, Any]]) -> dict[str, Any] | None:
    read = [f for f in frames if "frame_id" in f]
    if not read:
        return None
    checked = [f for f in read if f["frame_id"] is not None]
    wrong = [f for f in checked if f["frame_id"] != f["index"] % frame_id.MODULO]
    return {
        "checked": len(checked),
        "unreadable": len(read) - len(checked),
        "mismatched": len(wrong),
        "examples": [{"index": f["index"], "read": f["frame_id"]} for f in wrong[:5]],
    }


def summarize(run: ProfileRun, machine: dict[str, Any]) -> dict[str, Any]:
    frames = sorted(run.frames, key=lambda f: f["times"]["captured"])  # in time order, all sessions
    per_stage: dict[str, list[float]] = collections.defaultdict(list)
    for f in frames:
        for name, ms in intervals(f["times"]).items():
            per_stage[name].append(ms)
    e2e = [end_to_end_ms(f["times"]) for f in frames]
    last = end_mark(frames[0]["times"]) if frames else None
    fps = []
    for session in sorted({f["session"] for f in frames}):
        t = np.sort([f["times"][last] for f in frames if f["session"] == session])
        fps.append(round(float((len(t) - 1) / (t[-1] - t[0])), 2) if len(t) > 2 else 0.0)
    first, final = _thirds(e2e) if e2e else (None, None)
    av = [a["ms"] for a in sorted(run.av, key=lambda a: a["t"])]
    decode = [f["decode_ms"] for f in frames if f.get("decode_ms") is not None]
    descriptions: dict[str | None, str] = {
        "presented": "glass to glass: the end of the speaker's audio -> the frame presented by headless "
        "Chromium (requestVideoFrameCallback presentationTime)",
        "decoded": "the end of the speaker's audio -> the frame out of the aiortc client's decoder (no "
        "display: not a presented pixel)",
        "drawn": "glass to glass in browser mode: the end of the speaker's audio -> the animation frame that "
        "first drew its pose (three.js in headless Chromium, in step with the audio it plays)",
        "received": "browser mode: the end of the speaker's audio -> the pose received by the aiortc client "
        "(nothing drawn)",
    }
    what = descriptions.get(last, "no frame")
    summary = {
        "what": f"{run.sessions} session(s), {run.client} client, {run.seconds:.0f} s; {what}",
        "machine": machine,
        "end_mark": last,
        "end_to_end_ms": _stats(e2e) if e2e else None,
        "end_to_end_first_third_median_ms": first,
        "end_to_end_last_third_median_ms": final,
        "stages_ms": {n: _stats(per_stage[n]) for n in INTERVAL_ORDER if n in per_stage},
        "decode_ms": _stats(decode) if decode else None,
        "av_offset_ms": None
        if not av
        else {**_stats(av), "min": round(min(av), 2), "max_abs": round(max(abs(x) for x in av), 2)},
        "fps": fps,
        "frames": len(frames),
        "unmatched_client_frames": run.unmatched_client_frames,
        "dropped": sum(t.get("dropped", 0) for t in run.telemetry),
        "repeated": sum(t.get("repeated", 0) for t in run.telemetry),
        "audio_underruns": sum(t.get("audio_underruns", 0) for t in run.telemetry),
        "cpu_cores": {p: round(s / run.seconds, 3) for p, s in run.cpu_seconds.items()},
        "gpu": _gpu(run.gpu),
        "clock": run.clock or None,
        "frame_ids": _frame_ids(frames),
        "client_stats": run.client_stats or None,
        "server": run.server,
    }
    summary["render"] = run.render
    summary["budget"] = _budget(summary) if last in ("presented", "drawn") and run.sessions == 1 else None
    return summary


def _gpu(samples: list[dict[str, float]]) -> dict[str, Any] | None:
    if not samples:
        return None
    util = [s["utilization_pct"] for s in samples]
    return {
        "utilization_pct_median": float(np.median(util)),
        "utilization_pct_max": max(util),
        "memory_mib_max": max(s["memory_mib"] for s in samples),
        "samples": len(samples),
    }


def _budget(summary: dict[str, Any]) -> dict[str, Any]:
    e, av = summary["end_to_end_ms"], summary["av_offset_ms"]
    rows = {
        "glass_to_glass_median_ms": e["median"],
        "glass_to_glass_p95_ms": e["p95"],
        "av_offset_max_abs_ms": av["max_abs"] if av else None,
    }
    out = {k: {"value": v, "budget": BUDGET[k], "ok": v is not None and v <= BUDGET[k]} for k, v in rows.items()}
    first, final = summary["end_to_end_first_third_median_ms"], summary["end_to_end_last_third_median_ms"]
    out["latency_end_vs_start_ms"] = {
        "value": round(final - first, 2),
        "budget": GROWTH_TOLERANCE_MS,
        "ok": final - first <= GROWTH_TOLERANCE_MS,
    }
    return out


# -- writing --------------------------------------------------------------------------------------
def write_trace(frames: list[dict[str, Any]], path: Path) -> None:
    """trace.jsonl: one line per frame, every mark (monotonic s) and every interval (ms)."""
    with open(path, "w") as f:
        for fr in frames:
            f.write(
                json.dumps(
                    {
                        **fr,
                        "intervals_ms": {k: round(v, 3) for k, v in intervals(fr["times"]).items()},
                        "end_to_end_ms": round(end_to_end_ms(fr["times"]), 3),
                    }
                )
                + "\n"
            )


def table(summary: dict[str, Any]) -> str:
    cols = ("median", "p95", "p99", "max")
    rows: list[tuple[str, ...]] = [("stage (ms)", *cols)]
    for name, s in summary["stages_ms"].items():
        rows.append((name, *(f"{s[k]:.2f}" for k in cols)))
    if summary["end_to_end_ms"]:
        label = (
            "GLASS TO GLASS" if summary["end_mark"] in ("presented", "drawn") else f"END TO END ({summary['end_mark']})"
        )
        rows.append((label, *(f"{summary['end_to_end_ms'][k]:.2f}" for k in cols)))
    for key, label in (("decode_ms", "(of which decode)"), ("av_offset_ms", "A/V offset (video - audio)")):
        if summary.get(key):
            rows.append((label, *(f"{summary[key][k]:.2f}" for k in cols)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in summary["cpu_cores"].items())
    lines.append(
        f"FPS per session {summary['fps']}; frames {summary['frames']}; dropped {summary['dropped']}, "
        f"repeated {summary['repeated']}, audio underruns {summary.get('audio_underruns', 0)}; "
        f"latency first/last third "
        f"{summary['end_to_end_first_third_median_ms']}/{summary['end_to_end_last_third_median_ms']} ms"
    )
    lines.append(f"CPU cores: {cpu}; GPU: {summary['gpu'] or summary['machine'].get('gpu', 'none')}")
    for c in summary.get("clock") or []:
        lines.append(
            f"page clock: offset from the best of {c['pongs']} pongs (round trip {c['rtt_ms']:.2f} ms); "
            f"against the OS clocks {c['os_check_ms']:+.2f} ms"
        )
    if summary.get("frame_ids"):
        i = summary["frame_ids"]
        lines.append(
            f"frame ids read from the pixels: {i['checked']} checked, {i['mismatched']} not the frame "
            f"the RTP mapping says, {i['unreadable']} unreadable"
        )
    for name, b in (summary.get("budget") or {}).items():
        lines.append(f"budget {name}: {b['value']} (<= {b['budget']}) {'ok' if b['ok'] else 'OVER'}")
    return "\n".join(lines)


def _figures(frames: list[dict[str, Any]], summary: dict[str, Any], av: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["stages_ms"])
    per: dict[str, list[float]] = {n: [] for n in names}
    for f in frames:
        for n, ms in intervals(f["times"]).items():
            per[n].append(ms)
    figs = []

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.boxplot([per[n] for n in names], showfliers=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=25, ha="right")
    ax.set_ylabel("ms")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title("Per-stage time of each frame")
    figs.append(("Per-stage latency distributions", fig))

    last = summary["end_mark"]
    t0 = min(f["times"]["captured"] for f in frames)
    rows = 3 if av else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.5 * rows), sharex=True)
    for s in sorted({f["session"] for f in frames}):
        fs = sorted((f for f in frames if f["session"] == s), key=lambda f: f["times"][last])
        t = np.array([f["times"][last] for f in fs]) - t0
        axes[0].plot(t, [end_to_end_ms(f["times"]) for f in fs], lw=0.8, label=f"session {s}")
        axes[1].plot(t[1:], np.diff(t) * 1e3, lw=0.6)
    axes[0].set_ylabel("glass to glass, ms" if last in ("presented", "drawn") else f"to {last}, ms")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_ylabel(f"{last} interval, ms")
    axes[1].axhline(1000 / 30, color="grey", ls="--", lw=0.8)
    if av:
        for s in sorted({a["session"] for a in av}):
            pts = sorted((a["t"] - t0, a["ms"]) for a in av if a["session"] == s)
            axes[2].plot(*zip(*pts), lw=0.8, marker=".", ms=2)
        for y in (-BUDGET["av_offset_max_abs_ms"], BUDGET["av_offset_max_abs_ms"]):
            axes[2].axhline(y, color="grey", ls="--", lw=0.8)
        axes[2].set_ylabel("A/V offset, ms\n(> 0: picture ahead)")
    axes[-1].set_xlabel("seconds into the run")
    figs.append(("Timeline: latency, frame times and A/V offset over the run", fig))

    fig, ax = plt.subplots(figsize=(9, 1.8))
    left = 0.0
    cmap = plt.get_cmap("tab10")
    for i, n in enumerate(names):
        w = summary["stages_ms"][n]["median"]
        ax.barh(0, w, left=left, color=cmap(i % 10), label=f"{n} {w:.1f}")
        left += w
    ax.axvline(1000 / 30, color="grey", ls="--", lw=0.8)
    ax.set_yticks([])
    ax.set_xlabel("ms (sum of the stage medians; dashed: one frame at 30 FPS)")
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.6))
    figs.append(("Median frame budget", fig))

    out = []
    for title, fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append((title, base64.b64encode(buf.getvalue()).decode()))
    return out


def write_report(run: ProfileRun, summary: dict[str, Any], path: Path) -> None:
    """report.html: the plots (inline PNG), the table, and what was measured where."""
    import html

    figs = _figures(run.frames, summary, run.av)
    body = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>" for t, b in figs
    )
    m = summary["machine"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dyadic profile</title>
<style>body{{font:14px system-ui,sans-serif;max-width:1000px;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}
img{{max-width:100%}}</style></head><body>
<h1>dyadic profile</h1>
<p>{html.escape(summary["what"])}.</p>
<p>Machine: {html.escape(str(m.get("cpu")))}, {m.get("cores")} cores, GPU {html.escape(str(m.get("gpu")))};
render backend {html.escape(str(summary["server"].get("gl_backend")))} (one render worker per session);
video codec preferred {html.escape(str(summary["server"].get("video_codec")))};
models {html.escape(json.dumps(summary["server"].get("models")))}.</p>
<pre>{html.escape(table(summary))}</pre>
{body}
</body></html>"""
    path.write_text(page)


# -- all together -----------------------------------------------------------------------------------
def run_profile(request: ProfileRequest) -> ProfileRun:
    """Run the server and its clients as `request` says and join what they recorded."""
    from .run import run_clients

    return from_raw(run_clients(request))


def write_all(run: ProfileRun, out: Path) -> dict[str, Any]:
    from .hardware import machine_info

    out.mkdir(parents=True, exist_ok=True)
    if not run.frames:
        raise RuntimeError("no frame was received and matched to its trace: nothing to report")
    summary = summarize(run, machine_info())
    write_trace(run.frames, out / "trace.jsonl")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(run, summary, out / "report.html")
    return summary
