"""The page (client/latency.js) and the server's Python agree: the same RTP origin and the same
frame ids from the same frames, and one vocabulary of marks and intervals. The page's functions
run in Node.js, the Python ones here, on identical inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dyadic.engine import contracts
from dyadic.engine.pipeline import frame_id
from dyadic.engine.profiling.rtp import RTP_WRAP, rtp_origin

LATENCY_JS = Path(__file__).resolve().parents[1] / "client" / "latency.js"


def _page(expression: str, data: object) -> object:
    """Evaluate `expression` with latency.js loaded (as `L`) and the JSON `data` as `data`."""
    node = shutil.which("node")
    assert node, "Node.js is missing: scripts/bootstrap.sh installs Debian's nodejs"
    script = (
        f"globalThis.window = {{}}; require({str(LATENCY_JS)!r}); const L = window.DyadicLatency;"
        "const data = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        f"process.stdout.write(JSON.stringify({expression}));"
    )
    out = subprocess.run([node, "-e", script], input=json.dumps(data), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _traces_and_frames(rng: np.random.Generator, origin: int, jitter: float, lost: float):
    """Server traces at 30 FPS and the client's arrivals of the frames it got."""
    traces, frames = [], []
    for k in range(80):
        sent = 100.0 + k / 30 + 0.035 + rng.uniform(0, 0.01)
        pts = (7_000 + k * 3000 + int(rng.integers(-3, 4))) % RTP_WRAP  # content times, a little irregular
        traces.append({"index": k, "pts": pts, "times": {"captured": sent - 0.04, "sent": sent}})
        if rng.uniform() > lost:
            frames.append((sent + 0.002 + rng.uniform(0, jitter), (pts + origin) % RTP_WRAP))
    return traces, frames


@pytest.mark.parametrize("seed", range(6))
def test_both_find_the_same_rtp_origin(seed):
    rng = np.random.default_rng(seed)
    origin = int(rng.integers(0, RTP_WRAP))
    traces, frames = _traces_and_frames(rng, origin, jitter=0.02 * (seed % 3), lost=0.1 * (seed % 2))
    for window, votes in ((frames[:60], 3), (frames[-60:], 5), (frames[:2], 5)):
        mine = rtp_origin(window, traces, votes)
        page = _page(
            "L.rtpOrigin(data.frames.map(([arrival, rtp]) => ({arrival, rtp})), data.traces, data.votes)",
            {"frames": window, "traces": traces, "votes": votes},
        )
        assert page == mine
    assert rtp_origin(frames[:60], traces, 3) == origin


def test_frames_that_arrive_before_they_were_sent_give_no_origin():
    traces = [{"pts": k * 3000, "times": {"sent": 10.0 + k / 30}} for k in range(10)]
    early = [(10.0 + k / 30 - 0.5, k * 3000 + 99) for k in range(10)]  # a clock mapped wrongly
    assert rtp_origin(early, traces, 3) is None
    page = _page("L.rtpOrigin(data.f.map(([arrival, rtp]) => ({arrival, rtp})), data.t, 3)", {"f": early, "t": traces})
    assert page is None


def test_both_read_the_same_frame_ids():
    rng = np.random.default_rng(3)
    strips, expected = [], []
    for index in (0, 1, 12345, 65535, 65536 + 9):
        rgb = rng.integers(0, 256, (64, 400, 3), dtype=np.uint8)
        frame_id.stamp(rgb, index)
        expected.append(frame_id.read(rgb))
        strip = rgb[-frame_id.CELL :, : frame_id.CELLS * frame_id.CELL]  # what the page copies out
        rgba = np.concatenate([strip, np.full((*strip.shape[:2], 1), 255, np.uint8)], axis=2)
        strips.append(rgba.reshape(-1).tolist())
    strips.append(np.full(frame_id.CELL * frame_id.CELLS * frame_id.CELL * 4, 128).tolist())  # no id drawn
    expected.append(None)
    width = frame_id.CELLS * frame_id.CELL
    assert _page(f"data.map((px) => L.readFrameId(px, {width}))", strips) == expected
    layout = _page("L.ID", None)
    assert (layout["cell"], layout["bits"], layout["white"], layout["black"]) == (
        frame_id.CELL,
        frame_id.BITS,
        frame_id.WHITE,
        frame_id.BLACK,
    )


def test_one_vocabulary_of_marks_and_intervals():
    page = _page("{server: L.SERVER_MARKS, client: L.CLIENT_MARKS, intervals: L.INTERVALS}", None)
    assert tuple(page["server"]) == contracts.SERVER_MARKS
    assert set(page["client"]) <= set(contracts.CLIENT_MARKS)
    marks = list(contracts.SERVER_MARKS) + page["client"]
    for start, end in zip(marks, marks[1:]):  # the page names each interval by the mark it ends at
        assert page["intervals"][end] == contracts.interval_name(start, end)
