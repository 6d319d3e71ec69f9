"""`dyadic profile`: where every millisecond of a frame goes, from the speaker's audio to the client.

The engine runs as in production (`dyadic serve` in its own process, its render workers, ICE on
loopback) and real clients receive for a while; the server streams the trace of every frame it
sends (engine/tracks.py TRACE_STAGES, time.monotonic() marks) and each client records when it
received and decoded each frame. A client frame is matched to its server frame through the RTP
clock: the sender adds one random 32-bit origin to every pts, so the origin is the difference that
pairs the most frames (exact, on the 90 kHz clock). The aiortc client runs in this process, on the
same CLOCK_MONOTONIC as the server: no clock offset is needed.

Per frame, each interval is named by the mark it ends at and starts at the previous mark present;
together they add up to the end-to-end time exactly:

    features+model   captured -> model_end      (the frame's audio ended -> listener pose out)
    queue            -> worker_start            (waiting for the render worker)
    skin             -> skinned
    render           -> rendered
    hand-over        -> sent                    (frame copied out, picked up by aiortc)
    encode queue     -> encode_start
    encode           -> encode_end
    network+decode   -> received                (RTP on loopback, jitter buffer, decode)

Only the aiortc client is built so far: it has no display, so its last mark is "decoded and handed
to the application", not a presented pixel (glass-to-glass through Chromium is not done yet).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tracks import TRACE_STAGES

RTP_WRAP = 2 ** 32
CLIENT_MARK = "received"
INTERVAL_NAMES = {"model_end": "features+model", "worker_start": "queue", "skinned": "skin",
                  "rendered": "render", "sent": "hand-over", "encode_start": "encode queue",
                  "encode_end": "encode", CLIENT_MARK: "network+decode"}
MARKS = TRACE_STAGES + (CLIENT_MARK,)


@dataclass
class ProfileRun:
    frames: list[dict]  # matched frames: {"session", "index", "pts", "times": {mark: monotonic s}}
    unmatched_client_frames: int
    telemetry: list[dict]  # the last telemetry of each session
    cpu_seconds: dict[str, float]  # process -> CPU seconds over the run
    seconds: float
    sessions: int
    client: str
    server: dict  # /status at the end


def rtp_origin(client: list[tuple[float, int]], server: list[dict]) -> int | None:
    """The sender's RTP origin: the (client - server) pts difference that pairs the most frames.
    pts come from the send time, so they are irregular and one difference stands out; if several
    tie (perfectly regular pts), the one whose frames arrive soonest after they were sent wins."""
    if not client or not server:
        return None
    votes = collections.Counter((c - f["pts"]) % RTP_WRAP for _, c in client[:60] for f in server)
    best = max(votes.values())
    if best < min(3, len(client)):
        return None
    by_pts = {f["pts"]: f["times"]["sent"] for f in server}

    def delay(origin: int) -> float:
        d = [t - by_pts[(c - origin) % RTP_WRAP] for t, c in client[:60] if (c - origin) % RTP_WRAP in by_pts]
        return float(np.median(d)) if d and min(d) >= 0 else float("inf")  # never before it was sent

    return min((o for o, n in votes.items() if n == best), key=delay)


def join(server_frames: list[dict], client_times: list[float], client_pts: list[int]) -> tuple[list[dict], int]:
    """Server traces + client receive times -> complete frames (every mark present), unmatched count."""
    sent = [f for f in server_frames if f.get("pts") is not None]
    origin = rtp_origin(list(zip(client_times, client_pts)), sent)
    by_pts = {f["pts"]: f for f in sent}
    out, unmatched = [], 0
    for t, pts in zip(client_times, client_pts):
        frame = None if origin is None else by_pts.get((pts - origin) % RTP_WRAP)
        if frame is None or "encode_end" not in frame["times"]:
            unmatched += 1
            continue
        times = dict(frame["times"])
        times[CLIENT_MARK] = t
        out.append({"index": frame["index"], "pts": frame["pts"], "times": times})
    return out, unmatched


def intervals(times: dict[str, float]) -> dict[str, float]:
    """Milliseconds of each interval of one frame (see the module docstring), in path order."""
    present = [m for m in MARKS if m in times]
    return {INTERVAL_NAMES[b]: (times[b] - times[a]) * 1e3 for a, b in zip(present, present[1:])}


def _stats(values) -> dict[str, float]:
    v = np.asarray(values, float)
    return {"median": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2),
            "p99": round(float(np.percentile(v, 99)), 2), "max": round(float(v.max()), 2), "n": int(len(v))}


def summarize(run: ProfileRun, machine: dict) -> dict:
    frames = run.frames
    per_stage: dict[str, list[float]] = collections.defaultdict(list)
    e2e = []
    for f in sorted(frames, key=lambda f: f["times"]["captured"]):  # in time order, all sessions
        for name, ms in intervals(f["times"]).items():
            per_stage[name].append(ms)
        e2e.append((f["times"][CLIENT_MARK] - f["times"]["captured"]) * 1e3)
    order = [INTERVAL_NAMES[m] for m in MARKS[1:] if INTERVAL_NAMES[m] in per_stage]
    fps = []
    for session in sorted({f["session"] for f in frames}):
        t = np.sort([f["times"][CLIENT_MARK] for f in frames if f["session"] == session])
        fps.append(round(float((len(t) - 1) / (t[-1] - t[0])), 2) if len(t) > 2 else 0.0)
    third = max(1, len(e2e) // 3)
    return {
        "what": f"{run.sessions} session(s), {run.client} client, {run.seconds:.0f} s: the speaker's audio "
                "captured -> the frame decoded by the client (not a presented pixel)",
        "machine": machine,
        "end_to_end_ms": _stats(e2e) if e2e else None,
        "end_to_end_first_third_median_ms": round(float(np.median(e2e[:third])), 2) if e2e else None,
        "end_to_end_last_third_median_ms": round(float(np.median(e2e[-third:])), 2) if e2e else None,
        "stages_ms": {name: _stats(per_stage[name]) for name in order},
        "fps": fps,
        "frames": len(frames),
        "unmatched_client_frames": run.unmatched_client_frames,
        "dropped": sum(t.get("dropped", 0) for t in run.telemetry),
        "repeated": sum(t.get("repeated", 0) for t in run.telemetry),
        "cpu_cores": {p: round(s / run.seconds, 3) for p, s in run.cpu_seconds.items()},
        "server": run.server,
    }


# -- running ----------------------------------------------------------------------------------------
def run_profile(clip: str | None, data: str | None, seconds: float, sessions: int, client: str,
                extra_args: tuple[str, ...] = ()) -> ProfileRun:
    from .probe import ServeProcess, probe, process_tree_cpu

    if client != "aiortc":
        raise ValueError(f"client {client!r} is not built yet; use --client aiortc")
    args = (*(("--data", data) if data else ()), *extra_args)
    with ServeProcess(*args) as server:
        async def clients():
            tasks = [asyncio.create_task(probe(server.ws, seconds=seconds, clip=clip, trace=True))
                     for _ in range(sessions)]
            while server.status()["sessions"] < sessions and not any(t.done() for t in tasks):
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # start-up (workers loading) is not what is profiled
            cpu0 = process_tree_cpu(server.proc.pid)
            t0 = time.monotonic()
            await asyncio.sleep(max(0.0, seconds - 2.0))
            cpu1 = process_tree_cpu(server.proc.pid)
            window = time.monotonic() - t0
            return await asyncio.gather(*tasks), cpu0, cpu1, window

        results, cpu0, cpu1, window = asyncio.run(clients())
        status = server.status()
    frames, unmatched = [], 0
    for k, r in enumerate(results):
        joined, missing = join(r.traces, r.video_times, r.video_pts)
        frames += [{"session": k, **f} for f in joined]
        unmatched += missing
    cpu = {_process_name(p, server.proc.pid): cpu1[p] - cpu0.get(p, 0.0) for p in cpu1}
    return ProfileRun(frames, unmatched, [r.telemetry[-1] for r in results if r.telemetry], cpu,
                      window, sessions, client, status)


def _process_name(pid: int, server_pid: int) -> str:
    if pid == server_pid:
        return "server"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = ""
    return f"resource tracker {pid}" if "resource_tracker" in cmd else f"render worker {pid}"


# -- writing --------------------------------------------------------------------------------------
def write_trace(frames: list[dict], path: Path) -> None:
    """trace.jsonl: one line per frame, every mark (monotonic s) and every interval (ms)."""
    with open(path, "w") as f:
        for fr in frames:
            f.write(json.dumps({**fr, "intervals_ms": {k: round(v, 3) for k, v in intervals(fr["times"]).items()},
                                "end_to_end_ms": round((fr["times"][CLIENT_MARK] - fr["times"]["captured"]) * 1e3, 3)})
                    + "\n")


def table(summary: dict) -> str:
    rows = [("stage", "median", "p95", "p99", "max")]
    for name, s in summary["stages_ms"].items():
        rows.append((name, *(f"{s[k]:.2f}" for k in ("median", "p95", "p99", "max"))))
    if summary["end_to_end_ms"]:
        e = summary["end_to_end_ms"]
        rows.append(("END TO END", *(f"{e[k]:.2f}" for k in ("median", "p95", "p99", "max"))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in summary["cpu_cores"].items())
    lines.append(f"ms per frame; FPS per session {summary['fps']}; frames {summary['frames']}; "
                 f"dropped {summary['dropped']}, repeated {summary['repeated']}; CPU cores: {cpu}")
    return "\n".join(lines)


def _figures(frames: list[dict], summary: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["stages_ms"])
    per = {n: [] for n in names}
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

    t0 = min(f["times"]["captured"] for f in frames)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for s in sorted({f["session"] for f in frames}):
        fs = sorted((f for f in frames if f["session"] == s), key=lambda f: f["times"][CLIENT_MARK])
        t = np.array([f["times"][CLIENT_MARK] for f in fs]) - t0
        a1.plot(t, [(f["times"][CLIENT_MARK] - f["times"]["captured"]) * 1e3 for f in fs], lw=0.8,
                label=f"session {s}")
        a2.plot(t[1:], np.diff(t) * 1e3, lw=0.6)
    a1.set_ylabel("end to end, ms")
    a1.legend(loc="upper right", fontsize=8)
    a2.set_ylabel("frame interval, ms")
    a2.set_xlabel("seconds into the run")
    a2.axhline(1000 / 30, color="grey", ls="--", lw=0.8)
    figs.append(("Timeline: latency and frame times over the run", fig))

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


def write_report(frames: list[dict], summary: dict, path: Path) -> None:
    """report.html: the plots (inline PNG), the table, and what was measured where."""
    import html

    figs = _figures(frames, summary)
    body = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                   for t, b in figs)
    m = summary["machine"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dyadic profile</title>
<style>body{{font:14px system-ui,sans-serif;max-width:1000px;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}
img{{max-width:100%}}</style></head><body>
<h1>dyadic profile</h1>
<p>{html.escape(summary['what'])}.</p>
<p>Machine: {html.escape(str(m.get('cpu')))}, {m.get('cores')} cores, GPU {html.escape(str(m.get('gpu')))};
render backend {html.escape(str(summary['server'].get('gl_backend')))} (one render worker per session);
video codec preferred {html.escape(str(summary['server'].get('video_codec')))};
models {html.escape(json.dumps(summary['server'].get('models')))}.</p>
<pre>{html.escape(table(summary))}</pre>
{body}
</body></html>"""
    path.write_text(page)


def write_all(run: ProfileRun, out: Path) -> dict:
    from .machine import machine_info

    out.mkdir(parents=True, exist_ok=True)
    if not run.frames:
        raise RuntimeError("no frame was received and matched to its trace: nothing to report")
    summary = summarize(run, machine_info())
    write_trace(run.frames, out / "trace.jsonl")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(run.frames, summary, out / "report.html")
    return summary
