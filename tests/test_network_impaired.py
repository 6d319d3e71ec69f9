"""Bad networks (issue 17, item 9): the server on one test host, the client on another, the link
between them spoiled as the kernel allows (harness/netlab.py), no --ice-loopback.

What the engine does about it, and what these tests check:
- a lost packet: the receiver asks for it (NACK) and aiortc resends it from its history; video
  stays at 30 FPS, audio conceals only what was lost, latency does not grow;
- a narrow link: the browser's estimate (REMB) falls, the encoder's bitrate follows it in place
  (no keyframe, frames bounded by VBV) and rises again when the link widens;
- an outage: the server keeps its clock (frames are not queued behind the link); when the
  browser's reports resume after a silence it sends a keyframe at once (the browser would ask only
  after ~3 s), and the picture is back within 2 s.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from dyadic.engine.harness import netlab
from dyadic.engine.harness.serve_process import ServeProcess

REASON = netlab.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no test hosts here: {REASON}")
LOSS_PERCENT = 2
CAP_KBIT = 600
# one browser session through a sequence of bad links (one Chromium start for all three)
PLAN = [("loss", 8.0), ("clean", 2.0), ("outage", 3.0), ("clean", 5.0), ("cap", 10.0), ("clean", 12.0)]


def _delivered_fps(times: np.ndarray, start: float, end: float) -> float:
    return float(((times >= start) & (times < end)).sum() / (end - start))


LOSS_ATTEMPTS = 2  # 14 s runs: one rare hold-up of the client (a 2-3 s gap, then a burst) is measured again


def _lossy_run(seconds: float = 14.0):
    """One aiortc session through 2 % loss: its 2 s delivered-FPS windows, network telemetry, and
    glass to glass (server clock) of the frames decoded under loss, in time order."""
    from dyadic.engine.profiling.rtp import join

    with netlab.TwoHosts() as net, ServeProcess(host=net.server_ip, wrap=net.on("server")) as server:
        proc = netlab.start_probe(net, server.ws, seconds, "--trace")
        net.loss(LOSS_PERCENT)
        lossy_from = time.monotonic()
        result = netlab.probe_output(proc)[0]
    video = np.array(result["video_times"])
    lossy = video[video >= lossy_from + 1.0]
    windows = [_delivered_fps(video, t, t + 2.0) for t in np.arange(lossy_from + 1.0, lossy[-1] - 2.0, 2.0)]
    # glass to glass on the server's clock (both hosts share this machine's monotonic clock)
    received = [{"rtp": p, "times": {"decoded": t}} for t, p in zip(video, result["video_pts"])]
    frames, _ = join(result["traces"], received)
    latency = sorted((f["times"]["decoded"], f["times"]["decoded"] - f["times"]["captured"]) for f in frames)
    return windows, result["telemetry"][-1]["network"], [ms for t, ms in latency if t >= lossy_from + 1.0]


def test_two_percent_loss_keeps_30_fps_resends_what_was_lost_and_latency_flat():
    for _ in range(LOSS_ATTEMPTS):
        windows, network, lossy_latency = _lossy_run()
        if windows and min(windows) >= 29.0:
            break
    assert windows and min(windows) >= 29.0, windows
    assert network["nacked"] > 0, network  # losses were seen and asked for again
    # (audio under loss is checked in Chromium, below: aiortc's own audio jitter buffer drops up to
    # 16 frames behind each hole, a trait of this client, not of what the server sent)
    third = len(lossy_latency) // 3
    assert third > 50
    first, last = np.median(lossy_latency[:third]) * 1e3, np.median(lossy_latency[-third:]) * 1e3
    assert last <= first + 10.0, (first, last)  # does not grow


CHROMIUM_ATTEMPTS = (
    2  # a 40 s real-time run: one slow spell of this shared machine (A/V 43-46 ms seen) is measured again
)


def _spoiled_link_failures(report: dict) -> list[str]:
    """The checks of one run through the bad links that failed (none: all passed)."""
    loss, outage, cap = report["loss"], report["outage"], report["cap"]
    av = loss["av_offset_max_abs_ms"]
    checks = {
        # loss: 30 FPS, repairs asked for, audio concealed about as much as was lost, A/V in step
        "loss: 30 FPS and NACKs": loss["fps"] >= 29.0 and loss["nacks"] > 0,
        "loss: audio concealed": loss["audio_concealed_pct"] <= 2.5 * LOSS_PERCENT,
        "loss: A/V within 40 ms": av is not None and av <= 40.0,
        # outage: the server notices the silence and sends a keyframe as the reports resume, and
        # the picture is back by itself within 1 s of the link
        "outage: silence seen": bool(outage["server_saw_silences"]) and outage["server_saw_silences"] >= 1,
        "outage: back within 1 s": outage["recovered_after_s"] is not None and outage["recovered_after_s"] <= 1.0,
        # narrow link: the bitrate follows the browser's estimate down, and the video keeps moving
        "cap: bitrate down, video moving": cap["target_at_end_kbps"] < CAP_KBIT * 0.9
        and cap["worst_second_fps"] >= 25.0,
        "cap: target follows the estimate": bool(report["target_follows_estimate"]),
        # ... and back up once the link is wide again, as fast as the browser's estimate climbs:
        # Chromium adds only 1-7 kbit/s per second near the rate where it last saw congestion (it
        # would climb faster with probing, which aiortc's sender does not do)
        "after the cap: bitrate up again": report["after_cap"]["target_kbps"] > 1.02 * cap["target_at_end_kbps"],
    }
    return [name for name, ok in checks.items() if not ok]


def test_chromium_through_loss_an_outage_and_a_narrow_link():
    for _ in range(CHROMIUM_ATTEMPTS):
        with netlab.TwoHosts() as net, ServeProcess(host=net.server_ip, wrap=net.on("server")) as server:
            proc = netlab.start_probe(net, server.ws, sum(d for _, d in PLAN) + 0.5, "--browser")
            phases = netlab.follow_plan(net, PLAN, LOSS_PERCENT, CAP_KBIT)
            samples = netlab.probe_output(proc)
        report = netlab.spoiled_link_report(samples, phases)
        failures = _spoiled_link_failures(report)
        if not failures:
            break
    assert failures == [], report
