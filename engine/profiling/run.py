"""Running `dyadic profile`: the engine as in production, real clients on loopback, raw marks out.

`dyadic serve` runs in its own process with its render workers; each client session asks for the
trace of every frame sent (protocol "trace") and records its own marks per frame, keyed by the
frame's RTP timestamp. report.py joins and reports them.

- aiortc (in this process): the time each frame comes out of aiortc's decoder ("decoded"), on
  this process's CLOCK_MONOTONIC, which is the server's: no clock mapping.
- chromium (headless, the engine's own page): client/latency.js records requestVideoFrameCallback's
  receiveTime ("received") and presentationTime ("presented") of every presented frame, the
  decode time (processingDuration), the A/V offset from getStats every 0.5 s, websocket ping/pong
  clock samples, and with frame ids the index read back from the pixels. Page times are
  `performance.timeOrigin + now` ms; report.py maps them through the best pong.

The first WARMUP_S seconds after each session's first frame (jitter buffers settling) are not
profiled; `seconds` is the profiled window. Each session calls `started()` when its window opens;
the CPU and GPU of the run are measured once every session's has.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .hardware import gpu_usage

if TYPE_CHECKING:
    from ..harness.serve_process import ServeProcess

WARMUP_S = 2.0
WEBGL_FLAGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader"]  # WebGL with no GPU (browser mode)
TAKE_PERIOD_S = 5.0  # how often the page's records are drained (the page keeps them until then)
PING_PERIOD_S = 0.25  # extra clock probes while profiling: the best of many has the smallest error


@dataclass
class ClientSession:
    """What one client recorded: its frames (rtp + page-clock or monotonic marks) and the server's traces."""

    frames: list[dict[str, Any]]  # {"rtp", and "times": {mark: s} (aiortc) or "page": {mark: page ms} (Chromium)}
    traces: list[dict[str, Any]]
    telemetry: dict[str, Any] | None = None
    clock: list[dict[str, Any]] = field(default_factory=list)  # chromium: pongs {"t", "rtt", "offset"} (page ms)
    av: list[dict[str, Any]] = field(default_factory=list)  # chromium: {"t": page ms, "ms": A/V offset}
    stats: dict[str, Any] | None = None  # chromium: the page's last getStats summary
    start: float | None = None  # monotonic: when the profiled window began (aiortc); page ms (chromium)


@dataclass
class RawRun:
    sessions: list[ClientSession]
    cpu_seconds: dict[str, float]
    seconds: float
    client: str
    server: dict[str, Any]
    gpu: list[dict[str, float]]
    os_clock_offset_ms: float  # CLOCK_MONOTONIC - CLOCK_REALTIME here, in ms (the page clock is the latter)
    frame_ids: bool
    render: str = "server"


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile: `seconds` of `sessions` sessions, each a `client` playing `clip` of the
    `data` folder (None: the first clip of the embedded sample), or listening to the client's
    microphone (Chromium's fake capture device, or the aiortc probe's tone)."""

    seconds: float = 60.0
    sessions: int = 1
    client: str = "chromium"  # or "aiortc"
    clip: str | None = None
    data: str | None = None
    frame_ids: bool = False  # Chromium: draw frame ids and read them back
    microphone: bool = False
    render: str = "server"  # "client": browser mode, poses on a data channel (joined by frame index)


async def _aiortc_session(server: ServeProcess, request: ProfileRequest, started: Callable[[], None]) -> ClientSession:
    from ..harness.probe import probe

    if request.frame_ids:
        raise ValueError("frame ids are read by the browser page: use --client chromium")
    first: list[float] = []

    def on_first_frame() -> None:
        first.append(time.monotonic())
        asyncio.get_running_loop().call_later(WARMUP_S, started)

    # probe's seconds count from its first frame
    r = await probe(
        server.ws,
        seconds=WARMUP_S + request.seconds,
        clip=request.clip,
        trace=True,
        on_first_frame=on_first_frame,
        microphone=request.microphone,
        render=request.render,
    )
    start = first[0] + WARMUP_S if first else 0.0
    if request.render == "client":  # poses, by frame index: received is this client's last mark
        frames = [{"index": i, "times": {"received": t}} for t, i in zip(r.pose_times, r.pose_indices)]
    else:
        frames = [{"rtp": pts, "times": {"decoded": t}} for t, pts in zip(r.video_times, r.video_pts)]
    return ClientSession(frames, r.traces, r.telemetry[-1] if r.telemetry else None, start=start)


async def _chromium_session(
    server: ServeProcess, request: ProfileRequest, started: Callable[[], None]
) -> ClientSession:
    from ..harness.browser import ChromiumPage
    from ..harness.probe import TRACE_SETTLE_S

    seconds, clip = request.seconds, request.clip
    drawn = request.render == "client"
    url = server.url + ("?render=client" if drawn else "?frameid=1" if request.frame_ids else "")
    first_frame = (
        "() => !!window.dyadic.scene && window.dyadic.scene.lastDrawn !== null"
        if drawn
        else "() => window.dyadic.frames().length > 0"
    )
    take = "() => ({...window.dyadic.latency.take(), poses: window.dyadic.scene ? window.dyadic.scene.take() : []})"
    async with ChromiumPage(url, extra_flags=WEBGL_FLAGS if drawn else None) as page:
        await page.wait_connected()
        assert page.page is not None  # open since __aenter__
        if request.microphone:  # as a user picks it; Chromium's fake capture device beeps
            await page.page.click("#src-browser-mic")
        elif clip:
            await page.evaluate("(c) => window.dyadic.send({type: 'source', kind: 'clip', clip: c})", clip)
        await page.page.wait_for_function(first_frame, timeout=60_000)
        await asyncio.sleep(WARMUP_S)
        start = await page.evaluate(
            "() => { window.dyadic.latency.record(); if (window.dyadic.scene) window.dyadic.scene.record();"
            " return performance.timeOrigin + performance.now(); }"
        )
        started()
        taken: list[dict[str, Any]] = []
        end = time.monotonic() + seconds
        next_take = time.monotonic() + TAKE_PERIOD_S
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(PING_PERIOD_S, left))
            await page.evaluate(
                "() => window.dyadic.send({type: 'ping', t: performance.timeOrigin + performance.now()})"
            )
            if time.monotonic() >= next_take:
                taken.append(await page.evaluate(take))
                next_take += TAKE_PERIOD_S
        stats = await page.stats()
        await asyncio.sleep(TRACE_SETTLE_S)  # the last frames' traces come with the next telemetry
        taken.append(await page.evaluate(take))
        errors = [c for c in page.console if c.startswith("error")]
    if errors:
        raise RuntimeError(f"the page reported errors: {errors[:3]}")
    frames = [
        {
            "rtp": f["rtp"],
            "page": {"received": f["received"], "presented": f["presented"]},
            "decode_ms": f["decodeMs"],
            "frame_id": f["frameId"],
        }
        for part in taken
        for f in part["frames"]
        if f["presented"] <= start + seconds * 1e3
    ]
    if drawn:  # browser mode: each pose's arrival and the first animation frame that showed it
        frames = [
            {"index": p["index"], "page": {"received": p["received"], "drawn": p["drawn"]}}
            for part in taken
            for p in part["poses"]
            if p["drawn"] is not None and p["drawn"] <= start + seconds * 1e3
        ]

    def pick(key: str) -> list[Any]:
        return [x for part in taken for x in part[key]]

    return ClientSession(
        frames,
        pick("traces"),
        stats.get("server"),
        clock=pick("pongs"),
        av=pick("av"),
        stats={k: v for k, v in stats.items() if k != "server"},
        start=start,
    )


CLIENTS = {"aiortc": _aiortc_session, "chromium": _chromium_session}


def run_clients(request: ProfileRequest) -> RawRun:
    from ..harness.serve_process import ServeProcess

    if request.client not in CLIENTS:
        raise ValueError(f"unknown client {request.client!r}: one of {', '.join(CLIENTS)}")
    session_fn = CLIENTS[request.client]
    seconds, sessions = request.seconds, request.sessions
    args = ("--data", request.data) if request.data else ()
    with ServeProcess(*args) as server:

        async def clients() -> tuple[
            list[ClientSession], dict[str, float], dict[str, float], float, list[dict[str, float]]
        ]:
            ready: list[int] = []
            tasks = [asyncio.create_task(session_fn(server, request, lambda: ready.append(1))) for _ in range(sessions)]
            while len(ready) < sessions and not any(t.done() for t in tasks):
                await asyncio.sleep(0.05)
            gpu: list[dict[str, float]]
            cpu0, t0, gpu = _cpu(server.proc.pid), time.monotonic(), []
            while (left := t0 + seconds - time.monotonic()) > 0 and not any(t.done() for t in tasks):
                await asyncio.sleep(min(1.0, left))
                if (sample := await asyncio.to_thread(gpu_usage)) is not None:
                    gpu.append(sample)
            cpu1, window = _cpu(server.proc.pid), time.monotonic() - t0
            return await asyncio.gather(*tasks), cpu0, cpu1, window, gpu

        results, cpu0, cpu1, window, gpu = asyncio.run(clients())
        status = server.status()
    cpu = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    offset_ms = (time.monotonic() - time.time()) * 1e3
    return RawRun(list(results), cpu, window, request.client, status, gpu, offset_ms, request.frame_ids, request.render)


def _cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the server, each of its render workers, and this process with its
    children other than the server (the client: aiortc here, or Playwright and Chromium)."""
    from ..harness.serve_process import process_role, process_tree_cpu

    server = process_tree_cpu(server_pid)
    mine = process_tree_cpu(os.getpid())
    out = {process_role(p, server_pid): s for p, s in server.items()}
    out["client"] = sum(s for p, s in mine.items() if p not in server)
    return out
