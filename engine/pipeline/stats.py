"""A session's rolling numbers for the telemetry panel, and the traces a tracing client reads.

The frame thread appends and the event loop reads snapshots (a deque's append and a list() copy
of it are each atomic under the GIL, which is all the sharing this needs).

stages_ms names what it measures in the one vocabulary of contracts.py: the frame thread's own
stages (source, features, model, posing), then the intervals of the frames sent (queue, skin,
render, hand-over, encode, send pacing), each the median over the last STATS_WINDOW frames.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np

from ..contracts import FRAME_THREAD_STAGES, FrameTrace, intervals
from ..webrtc.tracks import SessionVideoTrack

STATS_WINDOW = 90  # frames kept for the telemetry medians
FPS_WINDOW_S = 2.0  # the sent rate counts the frames sent this long before now
EXPORT_LIMIT = 1800  # traces kept for a tracing client between two reads
# the frame thread's own stages say more than this span of its trace, which includes its waits
_NOT_FROM_TRACES = ("features+model",)


class SessionStats:
    def __init__(self) -> None:
        self.stage_ms: dict[str, collections.deque[float]] = {
            s: collections.deque(maxlen=STATS_WINDOW) for s in FRAME_THREAD_STAGES
        }
        self.traces: collections.deque[FrameTrace] = collections.deque(maxlen=STATS_WINDOW)  # sent ones
        self.frames = 0  # frames the model stepped
        self.rendered = 0
        self.skipped = 0  # due frames whose video was never rendered (the thread was late)
        self.stalls = 0
        self.first_sent: float | None = None

        self.export: collections.deque[FrameTrace] | None = None  # sent frames, while tracing
        self.frame_id = False  # draw each frame's index into its pixels (frame_id.py)

    def record(self, stage: str, ms: float) -> None:
        self.stage_ms[stage].append(ms)

    def record_sent(self, trace: FrameTrace) -> None:
        if self.first_sent is None:
            self.first_sent = trace.times["sent"]
        self.traces.append(trace)
        if self.export is not None:
            self.export.append(trace)

    def trace(self, on: bool, frame_id: bool = False) -> None:
        """Keep every sent frame's trace for take_traces() (bounded: a minute at 30 FPS if unread),
        and with `frame_id` draw each frame's index into its pixels."""
        self.export = collections.deque(maxlen=EXPORT_LIMIT) if on else None
        self.frame_id = on and frame_id

    def take_traces(self, settle_s: float = 0.5) -> list[dict[str, Any]]:
        """Traces of frames sent at least `settle_s` ago, oldest first, each handed out once."""
        out: list[dict[str, Any]] = []
        export = self.export
        if export is None:
            return out
        now = time.monotonic()
        while export and now - export[0].times["sent"] >= settle_s:
            out.append(export.popleft().as_dict())
        return out

    def stages(self, traces: list[FrameTrace]) -> dict[str, float]:
        per: dict[str, list[float]] = {s: list(v) for s, v in self.stage_ms.items() if v}
        for trace in traces:
            for name, ms in intervals(trace.times).items():
                if name not in _NOT_FROM_TRACES:
                    per.setdefault(name, []).append(ms)
        return {name: round(float(np.median(v)), 2) for name, v in per.items()}

    def sent_fps(self, sent: list[float], now: float | None = None) -> float:
        """New frames sent per second over the FPS_WINDOW_S ending now (not between the last frames
        kept: those would read 30 long after a stall, when the page shows the picture stopped)."""
        now = time.monotonic() if now is None else now
        if self.first_sent is None or now - self.first_sent < 0.5:
            return 0.0  # too few frames yet to say
        recent = sum(1 for t in sent if now - t <= FPS_WINDOW_S)
        return recent / min(FPS_WINDOW_S, now - self.first_sent)

    def snapshot(self, video: SessionVideoTrack, audio_underruns: int) -> dict[str, Any]:
        traces = list(self.traces)
        fps = self.sent_fps([t.times["sent"] for t in traces])
        # server-side latency: the frame's last audio sample captured -> its video frame encoded
        lat = np.array([(t.times["encode_end"] - t.times["captured"]) * 1e3 for t in traces if "encode_end" in t.times])
        return {
            "fps": round(fps, 2),
            "frames": self.frames,
            "rendered": self.rendered,
            "sent": video.sent,
            "dropped": self.skipped + video.dropped,
            "repeated": video.repeated,
            "stalls": self.stalls,
            "stages_ms": self.stages(traces),
            "latency_ms": None
            if not len(lat)
            else {"median": round(float(np.median(lat)), 1), "p95": round(float(np.percentile(lat, 95)), 1)},
            "audio_underruns": audio_underruns,
        }
