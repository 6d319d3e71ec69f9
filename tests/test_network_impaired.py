"""Bad networks (issue 17, item 9): the server on one test host, the client on another, the link
between them spoiled as the kernel allows (harness/netlab.py), no --ice-loopback.

What the engine does about it, and what these tests check:
- a lost packet: the receiver asks for it (NACK) and aiortc resends it from its history; video
  stays at 30 FPS, audio conceals only what was lost, latency does not grow;
- a narrow link: the browser's estimate (REMB) falls, the encoder's bitrate follows it in place
  (no keyframe, frames bounded by VBV) and rises again when the link widens;
- an outage: the server keeps its clock (frames are not queued behind the link), the browser asks
  for a keyframe (PLI) when packets come back, and the picture is back within 2 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from dyadic.engine.harness import netlab
from dyadic.engine.harness.serve_process import ServeProcess

REASON = netlab.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no test hosts here: {REASON}")
LOSS_PERCENT = 2
CAP_KBIT = 600


def _client(net: netlab.TwoHosts, server: ServeProcess, seconds: float, *extra: str) -> subprocess.Popen[str]:
    """`dyadic probe` on the client host; returns once its first frame has arrived."""
    cmd = [*net.on("client"), sys.executable, "-m", "dyadic.engine.cli", "probe", server.ws, "--seconds", str(seconds)]
    proc = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 90
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "first frame after" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no first frame on the client host: {''.join(lines)[-3000:]} {server.stop()[-2000:]}")


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> object:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _delivered_fps(times: np.ndarray, start: float, end: float) -> float:
    return float(((times >= start) & (times < end)).sum() / (end - start))


def test_two_percent_loss_keeps_30_fps_resends_what_was_lost_and_latency_flat():
    from dyadic.engine.profiling.rtp import join

    seconds = 14.0
    with netlab.TwoHosts() as net, ServeProcess(host=net.server_ip, wrap=net.on("server")) as server:
        proc = _client(net, server, seconds, "--trace")
        net.loss(LOSS_PERCENT)
        lossy_from = time.monotonic()
        result = _finish(proc)[0]  # type: ignore[index]
    video = np.array(result["video_times"])
    lossy = video[video >= lossy_from + 1.0]
    windows = [_delivered_fps(video, t, t + 2.0) for t in np.arange(lossy_from + 1.0, lossy[-1] - 2.0, 2.0)]
    assert windows and min(windows) >= 29.0, windows
    network = result["telemetry"][-1]["network"]
    assert network["nacked"] > 0, network  # losses were seen and asked for again
    # (audio under loss is checked in Chromium, below: aiortc's own audio jitter buffer drops up to
    # 16 frames behind each hole, a trait of this client, not of what the server sent)
    # glass to glass on the server's clock (both hosts share this machine's monotonic clock)
    received = [{"rtp": p, "times": {"decoded": t}} for t, p in zip(video, result["video_pts"])]
    frames, _ = join(result["traces"], received)
    latency = sorted((f["times"]["decoded"], f["times"]["decoded"] - f["times"]["captured"]) for f in frames)
    lossy_latency = [ms for t, ms in latency if t >= lossy_from + 1.0]
    third = len(lossy_latency) // 3
    assert third > 50
    first, last = np.median(lossy_latency[:third]) * 1e3, np.median(lossy_latency[-third:]) * 1e3
    assert last <= first + 10.0, (first, last)  # does not grow


def test_chromium_through_loss_an_outage_and_a_narrow_link():
    """One browser session through a sequence of bad links (one Chromium start for all three)."""
    plan = [("loss", 8.0), ("clean", 2.0), ("outage", 3.0), ("clean", 5.0), ("cap", 10.0), ("clean", 12.0)]
    with netlab.TwoHosts() as net, ServeProcess(host=net.server_ip, wrap=net.on("server")) as server:
        proc = _client(net, server, sum(d for _, d in plan) + 0.5, "--browser")
        phases = []
        for name, duration in plan:
            start = time.monotonic()
            {"loss": lambda: net.loss(LOSS_PERCENT), "outage": net.outage, "cap": lambda: net.cap(CAP_KBIT)}.get(
                name, net.clear
            )()
            phases.append((name, start, start + duration))
            time.sleep(max(0.0, start + duration - time.monotonic()))
        net.clear()
        samples = _finish(proc)
    assert isinstance(samples, list)
    t = np.array([s["t"] for s in samples])

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if s.get(key) is None else s[key] for s in samples], float)

    def net_series(key: str) -> np.ndarray:
        return np.array([((s.get("server") or {}).get("network") or {}).get(key, np.nan) for s in samples], float)

    decoded = series("framesDecoded")

    def fps(start: float, end: float) -> float:
        return float(np.diff(np.interp([start, end], t, decoded))[0] / (end - start))

    loss, outage_end, cap, after = phases[0], phases[2][2], phases[4], phases[5]
    # loss: 30 FPS, repairs asked for, audio concealed about as much as was lost, A/V in step
    assert fps(loss[1] + 1.0, loss[2]) >= 29.0
    assert np.nanmax(series("nackCount")) > 0
    in_loss = (t >= loss[1] + 1.0) & (t <= loss[2])
    concealed = np.diff(np.interp([loss[1] + 1, loss[2]], t, series("audioConcealedSamples")))[0]
    received = np.diff(np.interp([loss[1] + 1, loss[2]], t, series("audioTotalSamplesReceived")))[0]
    assert concealed <= received * 2.5 * LOSS_PERCENT / 100, (concealed, received)
    av = series("avOffsetMs")[in_loss]
    assert np.all(np.abs(av[~np.isnan(av)]) <= 40.0), av
    # outage: the picture is back by itself within 2 s of the link
    assert fps(outage_end + 1.0, outage_end + 2.0) >= 25.0, fps(outage_end, outage_end + 3.0)
    # narrow link: the bitrate follows the browser's estimate down, and the video keeps moving
    target, estimate = net_series("target_kbps"), net_series("estimate_kbps")
    at_cap_end = np.nanmin(target[(t >= cap[2] - 3.0) & (t <= cap[2])])
    assert at_cap_end < CAP_KBIT * 0.9, at_cap_end
    assert fps(cap[1] + 4.0, cap[2]) >= 25.0, [fps(s, s + 1) for s in np.arange(cap[1], cap[2] - 1)]
    # ... and back up once the link is wide again, as fast as the browser's estimate climbs
    # (Chromium adds a few kbit/s per second near the rate where it last saw congestion)
    assert np.nanmax(target[t >= after[2] - 3.0]) >= 1.15 * at_cap_end, target[t >= cap[1]]
    followed = ~np.isnan(estimate) & (t >= cap[1])
    assert np.all(target[followed] <= np.maximum(estimate[followed] * 0.85, 150) + 1.0)
