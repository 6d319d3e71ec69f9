"""dyadic profile: traces joined through the RTP clock, complete, and reported consistently."""

from __future__ import annotations

import json

import numpy as np

from dyadic.engine import contracts
from dyadic.engine.profiling import report, rtp
from dyadic.engine.profiling.run import ProfileRequest


def _server_frames(n: int, start_pts: int):
    frames = []
    for k in range(n):
        t = 100.0 + k / 30
        marks = dict(zip(contracts.SERVER_MARKS, t + np.cumsum([0, 0.004, 0.001, 0.003, 0.010, 0.002, 0.001, 0.003])))
        frames.append({"index": k, "pts": start_pts + k * 3000, "times": marks})
    return frames


def test_client_frames_are_matched_through_the_rtp_origin_across_a_wrap():
    server = _server_frames(40, start_pts=5_000)
    origin = 2**32 - 60_000  # the sender's random origin; pts wrap during the run
    received = server[3:37]  # the client missed the first and the last frames
    client = [{"rtp": (f["pts"] + origin) % 2**32, "times": {"decoded": f["times"]["sent"] + 0.02}} for f in received]
    joined, unmatched = rtp.join(server, client)
    assert unmatched == 0 and [f["index"] for f in joined] == list(range(3, 37))
    # the intervals of a frame add up to its end-to-end time exactly
    f = joined[0]
    total = sum(contracts.intervals(f["times"]).values())
    assert abs(total - report.end_to_end_ms(f["times"])) < 1e-6
    assert abs(contracts.intervals(f["times"])["network+decode"] - 20.0) < 1e-6


def test_browser_marks_are_named_by_the_path_and_mapped_through_the_best_pong():
    server = _server_frames(10, start_pts=0)
    offset_ms = -1_700_000_000_000.0  # server monotonic ms - page ms
    pongs = [
        {"t": 1.0, "rtt": 9.0, "offset": offset_ms + 4.0},
        {"t": 2.0, "rtt": 0.8, "offset": offset_ms},
        {"t": 3.0, "rtt": 3.0, "offset": offset_ms - 1.0},
    ]
    page = [
        {
            "rtp": f["pts"] + 77,
            "decode_ms": 0.9,
            "frame_id": f["index"],
            "page": {
                "received": (f["times"]["sent"] + 0.002) * 1e3 - offset_ms,
                "presented": (f["times"]["sent"] + 0.015) * 1e3 - offset_ms,
            },
        }
        for f in server
    ]
    from dyadic.engine.profiling.run import ClientSession, RawRun

    session = ClientSession(
        page,
        server,
        {"dropped": 0, "repeated": 0},
        clock=pongs,
        av=[{"t": 100_010.0 - offset_ms, "ms": 99.0}, {"t": 100_100.0 - offset_ms, "ms": 12.0}],
        start=100_050.0 - offset_ms,
    )  # frames 0 and 1 (and the first A/V sample) are warm-up
    run = report.from_raw(RawRun([session], {"server": 1.0}, 1.0, "chromium", {}, [], offset_ms + 0.05, True))
    assert [f["index"] for f in run.frames] == list(range(2, 10)) and run.clock[0]["offset_ms"] == offset_ms
    assert abs(run.clock[0]["os_check_ms"] + 0.05) < 1e-6
    ms = contracts.intervals(run.frames[0]["times"])
    assert list(ms)[-2:] == ["network", "jitter buffer+decode"]
    assert abs(ms["network"] - 2.0) < 1e-3 and abs(ms["jitter buffer+decode"] - 13.0) < 1e-3
    summary = report.summarize(run, {})
    assert summary["end_mark"] == "presented" and "glass to glass" in summary["what"]
    assert summary["frame_ids"]["checked"] == 8 and summary["frame_ids"]["mismatched"] == 0
    assert summary["av_offset_ms"]["max_abs"] == 12.0 and summary["budget"]["av_offset_max_abs_ms"]["ok"]
    # captured -> sent is 24 ms in _server_frames, presented 15 ms later
    assert summary["budget"]["glass_to_glass_median_ms"] == {"value": 39.0, "budget": 60.0, "ok": True}
    assert summary["budget"]["latency_end_vs_start_ms"]["value"] == 0.0
    assert "GLASS TO GLASS" in report.table(summary)
    # the same run with frame ids off (`--no-frame-id`): no check at all, not N "unreadable"
    off = RawRun([session], {"server": 1.0}, 1.0, "chromium", {}, [], offset_ms + 0.05, False)
    for f in page:
        f["frame_id"] = None  # what the page reports when it draws no ids
    assert report.summarize(report.from_raw(off), {})["frame_ids"] is None


def _check_trace(tmp_path, client_marks: set) -> tuple[list[dict], dict]:
    """trace.jsonl and summary.json of a real run: every frame has every stage, in order along the
    path (a page's marks within the error of its clock mapping, half the best round trip), and the
    summary is the trace's."""
    summary = json.loads((tmp_path / "summary.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert len(lines) == summary["frames"] > 100
    slack = summary["clock"][0]["rtt_ms"] / 2e3 if summary["clock"] else 0.0
    for fr in lines:
        marks = [(m, fr["times"][m]) for m in contracts.MARKS if m in fr["times"]]
        assert set(fr["times"]) == set(contracts.SERVER_MARKS) | client_marks, fr
        for (_, a), (m, b) in zip(marks, marks[1:]):
            assert a <= b + (slack if m in client_marks else 0.0), (m, fr)
    e2e = [fr["end_to_end_ms"] for fr in lines]
    assert abs(np.median(e2e) - summary["end_to_end_ms"]["median"]) < 0.01
    for stage in ("render", "encode"):
        ms = [fr["intervals_ms"][stage] for fr in lines]
        assert abs(np.median(ms) - summary["stages_ms"][stage]["median"]) < 0.01
    html = (tmp_path / "report.html").read_text()
    assert html.count("<img") == 3 and "data:image/png;base64," in html
    return lines, summary


def test_short_real_run_writes_a_complete_consistent_report(tmp_path):
    run = report.run_profile(ProfileRequest(seconds=6.0, client="aiortc"))
    report.write_all(run, tmp_path)
    lines, summary = _check_trace(tmp_path, {"decoded"})
    assert summary["fps"][0] > 15 and "server" in summary["cpu_cores"]
    assert any(k.startswith("render worker") and v > 0.1 for k, v in summary["cpu_cores"].items())
    by_time = [fr["end_to_end_ms"] for fr in sorted(lines, key=lambda fr: fr["times"]["captured"])]
    third = len(by_time) // 3
    # The summary rounds to 0.01 ms and the trace to 0.001 ms, so they agree to 0.0055 ms.
    assert abs(summary["end_to_end_last_third_median_ms"] - np.median(by_time[-third:])) < 0.006
    assert summary["budget"] is None  # the budget is for glass to glass, which aiortc cannot see


def test_microphone_run_profiles_the_live_path(tmp_path):
    run = report.run_profile(ProfileRequest(seconds=4.0, client="aiortc", microphone=True))
    summary = report.write_all(run, tmp_path)
    assert summary["fps"][0] > 15 and summary["frames"] > 60
    assert run.telemetry[0]["movement"] == "none"  # a clip would play its recorded movement
    assert summary["audio_underruns"] < 0.1 * summary["frames"]  # the probe's tone keeps arriving


def test_chromium_run_measures_glass_to_glass_and_checks_its_mappings(tmp_path):
    run = report.run_profile(ProfileRequest(seconds=6.0, client="chromium", frame_ids=True))
    report.write_all(run, tmp_path)
    lines, summary = _check_trace(tmp_path, {"received", "presented"})
    assert summary["end_mark"] == "presented" and summary["fps"][0] > 15
    # on one machine the page clock mapped through the websocket agrees with the OS's clocks
    clock = summary["clock"][0]
    assert clock["pongs"] >= 20 and abs(clock["os_check_ms"]) <= max(1.0, clock["rtt_ms"] / 2), clock
    # the frame read from the pixels is the frame the RTP mapping says (the page may read the
    # pixels after the next frame replaced the presented one: rare)
    ids = summary["frame_ids"]
    assert ids["checked"] >= 0.95 * len(lines) and ids["mismatched"] <= 0.02 * ids["checked"], ids
    assert summary["av_offset_ms"]["n"] >= 8 and summary["decode_ms"]["median"] > 0
    assert set(summary["budget"]) == {
        "glass_to_glass_median_ms",
        "glass_to_glass_p95_ms",
        "av_offset_max_abs_ms",
        "latency_end_vs_start_ms",
    }
    assert summary["cpu_cores"]["client"] > 0.05  # Chromium decodes and composites
    assert summary["client_stats"][0]["codec"] == "H264"


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
    run = report.ProfileRun(frames, 0, [], {}, 30.0, 2, "aiortc", {})
    summary = report.summarize(run, {})
    assert summary["end_to_end_first_third_median_ms"] == 14.5  # frames of seconds 0-9
    assert summary["end_to_end_last_third_median_ms"] == 34.5  # seconds 20-29


def test_gpu_usage_is_read_from_nvidia_smi_output():
    from dyadic.engine.profiling.hardware import parse_gpu_usage

    assert parse_gpu_usage("37, 1234\n") == {"utilization_pct": 37.0, "memory_mib": 1234.0}
    assert parse_gpu_usage("") is None and parse_gpu_usage("[N/A], 12") is None


def test_frame_id_survives_h264():
    """The id drawn into a frame is read back after an ultrafast x264 round trip (as sent)."""
    import av

    from dyadic.engine.pipeline import frame_id

    rng = np.random.default_rng(0)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 640, 480, "yuv420p"
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    ids = [0, 1, 2, 12345, 65535, 65536 + 7]
    decoded = []
    for k, index in enumerate(ids):
        rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # the worst case: noise around it
        frame_id.stamp(rgb, index)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = k
        for packet in enc.encode(frame):
            decoded += [f.to_ndarray(format="rgb24") for f in dec.decode(packet)]
    for packet in enc.encode(None):
        decoded += [f.to_ndarray(format="rgb24") for f in dec.decode(packet)]
    assert [frame_id.read(x) for x in decoded] == [i % 65536 for i in ids]
    assert frame_id.read(np.full((480, 640, 3), 128, np.uint8)) is None  # no id drawn


def test_browser_mode_poses_are_profiled_to_the_animation_frame_that_drew_them(tmp_path):
    run = report.run_profile(ProfileRequest(seconds=5.0, client="chromium", render="client"))
    summary = report.write_all(run, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert summary["render"] == "client" and summary["end_mark"] == "drawn"
    assert summary["frames"] == len(lines) > 100 and summary["unmatched_client_frames"] <= 0.05 * len(lines)
    slack = summary["clock"][0]["rtt_ms"] / 2e3
    for fr in lines:  # nothing rendered or encoded on the server; every pose joined by its index
        assert set(fr["times"]) >= {"captured", "sent", "received", "drawn"}, fr
        assert not set(fr["times"]) & {"worker_start", "rendered", "encode_end"}, fr
        t = fr["times"]
        assert t["captured"] <= t["sent"] <= t["received"] + slack and t["received"] <= t["drawn"], fr
    assert {"posing+hand-over", "network", "wait for its audio+draw"} <= set(summary["stages_ms"])
    assert summary["budget"]["glass_to_glass_median_ms"]["value"] == summary["end_to_end_ms"]["median"]


def test_browser_mode_with_an_aiortc_client_is_profiled_to_each_pose_received():
    summary = report.summarize(report.run_profile(ProfileRequest(seconds=3.0, client="aiortc", render="client")), {})
    assert summary["render"] == "client" and summary["end_mark"] == "received"
    assert summary["frames"] > 60 and summary["unmatched_client_frames"] <= 0.05 * summary["frames"]
    assert {"posing+hand-over", "network"} <= set(summary["stages_ms"]) and summary["budget"] is None
