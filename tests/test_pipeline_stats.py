"""The server's 'frames sent' rate, as the page's panel shows it next to the browser's own."""

from __future__ import annotations

import pytest

from dyadic.engine.contracts import FrameTrace
from dyadic.engine.pipeline.stats import SessionStats


def _send(stats: SessionStats, start: float, seconds: float, fps: float = 30.0) -> list[float]:
    sent = []
    for i in range(round(seconds * fps)):
        trace = FrameTrace(i)
        trace.mark("sent", start + i / fps)
        stats.record_sent(trace)
        sent.append(trace.times["sent"])
    return sent


def test_sent_rate_follows_the_stream_and_falls_to_zero_when_it_stops():
    stats = SessionStats()
    assert stats.sent_fps([], now=100.0) == 0.0  # nothing sent yet
    sent = _send(stats, 100.0, 10.0)
    last = sent[-1]
    assert stats.sent_fps(sent, now=100.2) == 0.0  # too early to say
    assert stats.sent_fps(sent, now=last + 1 / 30) == pytest.approx(30.0, abs=0.6)
    # a stall: the rate says so within the window, never the last frames' spacing (30)
    assert stats.sent_fps(sent, now=last + 1.0) == pytest.approx(15.0, abs=0.6)
    assert stats.sent_fps(sent, now=last + 2.1) == 0.0


def test_sent_rate_of_a_young_session_is_not_diluted():
    stats = SessionStats()
    sent = _send(stats, 50.0, 1.0)
    assert stats.sent_fps(sent, now=sent[-1] + 1 / 30) == pytest.approx(30.0, abs=1.0)
