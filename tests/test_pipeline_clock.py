"""The session clock's rules, each on its own, with the time given: no threads, no sleeping."""

from __future__ import annotations

import pytest

from dyadic.engine.pipeline.clock import MAX_BACKLOG, REPEAT_AFTER_PERIODS, FrameClock, repeat_after


def test_frame_k_is_due_when_its_audio_has_ended():
    clock = FrameClock(30.0, now=100.0)
    assert clock.next_due() == pytest.approx(100.0 + 1 / 30)
    assert [clock.due(k) for k in range(3)] == pytest.approx([100.0 + (k + 1) / 30 for k in range(3)])


def test_on_time_one_frame_at_a_time():
    clock = FrameClock(30.0, now=0.0)
    for k in range(100):
        tick = clock.advance(clock.next_due())
        assert [i for i, _ in tick.frames] == [k] and tick.dropped == 0 and not tick.stalled
    assert clock.next_due() == pytest.approx(101 / 30)  # no drift over many frames


def test_late_frames_all_come_and_all_but_the_newest_are_dropped_video():
    clock = FrameClock(30.0, now=0.0)
    tick = clock.advance(4.5 / 30)  # woke late: frames 0..3 have ended
    assert [i for i, _ in tick.frames] == [0, 1, 2, 3]
    assert [due for _, due in tick.frames] == pytest.approx([1 / 30, 2 / 30, 3 / 30, 4 / 30])
    assert tick.dropped == 3 and not tick.stalled
    assert clock.next_due() == pytest.approx(5 / 30)  # the schedule holds: no re-anchoring


def test_a_stall_re_anchors_so_latency_cannot_grow():
    clock = FrameClock(30.0, now=0.0)
    clock.advance(clock.next_due())
    now = 10.0  # a 10 s stall: 300 frames behind, far over MAX_BACKLOG
    tick = clock.advance(now)
    assert tick.stalled and [i for i, _ in tick.frames] == [1] and tick.dropped == 0
    assert tick.frames[0][1] == pytest.approx(now)  # frame 1 is due now, not 10 s ago
    assert clock.next_due() == pytest.approx(now + 1 / 30)


def test_a_backlog_up_to_the_limit_is_caught_up_not_re_anchored():
    clock = FrameClock(30.0, now=0.0)
    tick = clock.advance((MAX_BACKLOG + 0.5) / 30)
    assert not tick.stalled and len(tick.frames) == MAX_BACKLOG
    assert clock.advance((2 * MAX_BACKLOG + 1.5) / 30).stalled  # one more than the limit


def test_a_wake_a_hair_early_still_gives_the_next_frame():
    clock = FrameClock(30.0, now=0.0)
    tick = clock.advance(clock.next_due() - 1e-12)  # floating point: never an empty tick
    assert [i for i, _ in tick.frames] == [0]


def test_a_new_rate_re_anchors_and_frames_go_on_counting():
    clock = FrameClock(30.0, now=0.0)
    clock.advance(clock.next_due())
    clock.advance(clock.next_due())
    clock.retime(30000 / 1001, now=5.0)  # a 29.97 FPS recording from t = 5 s
    assert clock.next_frame == 2 and clock.next_due() == pytest.approx(5.0 + 1001 / 30000)
    tick = clock.advance(5.0 + 2.5 * 1001 / 30000)
    assert [i for i, _ in tick.frames] == [2, 3]


def test_video_repeats_after_two_frame_periods():
    assert REPEAT_AFTER_PERIODS == 2.0
    assert repeat_after(30.0) == pytest.approx(2 / 30)
    clock = FrameClock(25.0, now=0.0)
    assert clock.repeat_after() == pytest.approx(2 / 25)
