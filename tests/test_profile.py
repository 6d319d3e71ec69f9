"""dyadic profile: traces joined through the RTP clock, complete, and reported consistently."""
from __future__ import annotations

import json

import numpy as np

from dyadic.engine import profile
from dyadic.engine.tracks import TRACE_STAGES


def _server_frames(n: int, start_pts: int):
    frames = []
    for k in range(n):
        t = 100.0 + k / 30
        marks = dict(zip(TRACE_STAGES, t + np.cumsum([0, 0.004, 0.001, 0.003, 0.010, 0.002, 0.001, 0.003])))
        frames.append({"index": k, "pts": start_pts + k * 3000, "times": marks})
    return frames


def test_client_frames_are_matched_through_the_rtp_origin_across_a_wrap():
    server = _server_frames(40, start_pts=5_000)
    origin = 2 ** 32 - 60_000  # the sender's random origin; pts wrap during the run
    received = server[3:37]  # the client missed the first and the last frames
    client_pts = [(f["pts"] + origin) % 2 ** 32 for f in received]
    client_times = [f["times"]["encode_end"] + 0.02 for f in received]
    joined, unmatched = profile.join(server, client_times, client_pts)
    assert unmatched == 0 and [f["index"] for f in joined] == list(range(3, 37))
    # the intervals of a frame add up to its end-to-end time exactly
    f = joined[0]
    total = sum(profile.intervals(f["times"]).values())
    assert abs(total - (f["times"]["received"] - f["times"]["captured"]) * 1e3) < 1e-6
    assert abs(profile.intervals(f["times"])["network+decode"] - 20.0) < 1e-6


def test_short_real_run_writes_a_complete_consistent_report(tmp_path):
    run = profile.run_profile(None, None, seconds=6.0, sessions=1, client="aiortc")
    summary = profile.write_all(run, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert len(lines) == summary["frames"] > 100
    for fr in lines:  # every frame has every stage, in order along the path
        marks = [fr["times"][m] for m in profile.MARKS if m in fr["times"]]
        assert set(fr["times"]) >= set(profile.MARKS) - {"model_end"}
        assert all(a <= b for a, b in zip(marks, marks[1:])), fr
    e2e = [fr["end_to_end_ms"] for fr in lines]
    assert abs(np.median(e2e) - summary["end_to_end_ms"]["median"]) < 0.01
    render = [fr["intervals_ms"]["render"] for fr in lines]
    assert abs(np.median(render) - summary["stages_ms"]["render"]["median"]) < 0.01
    assert summary["fps"][0] > 15 and "server" in summary["cpu_cores"]
    assert any(k.startswith("render worker") and v > 0.1 for k, v in summary["cpu_cores"].items())
    by_time = [fr["end_to_end_ms"] for fr in sorted(lines, key=lambda fr: fr["times"]["captured"])]
    third = len(by_time) // 3
    assert summary["end_to_end_last_third_median_ms"] == round(float(np.median(by_time[-third:])), 2)
    html = (tmp_path / "report.html").read_text()
    assert html.count("<img") == 3 and "data:image/png;base64," in html


def test_start_and_end_of_the_run_are_taken_in_time_over_all_sessions():
    """Latency that grows 1 ms per second in both of two sessions: the first third of the run is
    its first 10 s, whichever session a frame belongs to."""
    frames = []
    for session in (0, 1):
        for k, f in enumerate(_server_frames(30, start_pts=0)):
            t = float(k)  # one frame per second, 30 s
            times = {m: t + (v - f["times"]["captured"]) for m, v in f["times"].items()}
            times["received"] = t + (10 + k) / 1e3
            frames.append({"session": session, "index": k, "pts": f["pts"], "times": times})
    run = profile.ProfileRun(frames, 0, [], {}, 30.0, 2, "aiortc", {})
    summary = profile.summarize(run, {})
    assert summary["end_to_end_first_third_median_ms"] == 14.5  # frames of seconds 0-9
    assert summary["end_to_end_last_third_median_ms"] == 34.5  # seconds 20-29
