"""The media tracks: content-time stamps, send pacing, repeats, the video frame's copy."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from dyadic.engine.contracts import AUDIO_RATE, FrameTrace
from dyadic.engine.webrtc.tracks import (
    AUDIO_GAP_TOLERANCE,
    VIDEO_CLOCK,
    VIDEO_SEND_DELAY,
    SessionAudioTrack,
    SessionVideoTrack,
    video_frame,
)


def test_tracks_stamp_content_time():
    """Video pts is the frame's capture time (the end of its audio); the sender, once it has encoded
    a frame, holds it until its send time (capture + VIDEO_SEND_DELAY), and a frame rendered later
    than that goes at once; a repeat ages from the last frame by the time since it was sent, and
    goes at once. Audio samples stay content time across a gap in the capture (silence
    fills it), and the audio clock moves back when samples run ahead of the capture."""

    async def run():
        loop = asyncio.get_running_loop()
        video = SessionVideoTrack(loop, repeat_after=2 / 30)
        trace = FrameTrace(0)
        trace.mark("captured", time.monotonic())
        video.offer(np.zeros((32, 32, 3), np.uint8), trace)
        first = await video.recv()
        first_pts = first.pts
        assert "sent" not in trace.times  # not before the sender's before_send
        await video.before_send()  # what the patched sender does once the frame is encoded
        held = trace.times["sent"] - trace.times["captured"]
        late = FrameTrace(1)
        late.mark("captured", time.monotonic() - 1.0)  # rendered a second after its capture
        video.offer(np.zeros((32, 32, 3), np.uint8), late)
        t = time.monotonic()
        await video.recv()
        await video.before_send()
        late_wait = time.monotonic() - t
        late_pts = late.pts
        t = time.monotonic()
        repeat = await video.recv()  # nothing new for two frame periods: the same frame again
        repeat_age = time.monotonic() - t
        t = time.monotonic()
        await video.before_send()
        late_wait = max(late_wait, time.monotonic() - t)
        audio = SessionAudioTrack(loop)
        audio.push(np.zeros(1600, np.float32), captured=10.0)
        audio.push(np.zeros(1600, np.float32), captured=10.0 + 1600 / AUDIO_RATE + 0.2)  # 200 ms skipped
        gap = audio.gap_samples
        audio.push(np.zeros(9600, np.float32), captured=10.0 + 2 * 1600 / AUDIO_RATE + 0.2)  # 0.2 s in no time
        return first_pts, held, late_wait, late_pts, repeat.pts, repeat_age, audio, gap, (video.sent, video.repeated)

    first_pts, held, late_wait, late_pts, repeat_pts, repeat_age, audio, gap, video_counts = asyncio.run(run())
    assert VIDEO_SEND_DELAY <= held < VIDEO_SEND_DELAY + 0.03
    assert late_wait < 0.01 and late_pts == first_pts + 1  # RTP time never goes back
    assert video_counts == (2, 1)  # sent (the repeat is counted apart), repeated
    assert (repeat_pts - late_pts) / VIDEO_CLOCK == pytest.approx(repeat_age, abs=0.01)
    assert gap == pytest.approx(0.2 * AUDIO_RATE, abs=1)
    # the third push ends 0.2 s + 2 frames after the start but holds 0.2 s more than that: 8000
    # samples ahead (> AUDIO_GAP_TOLERANCE), so sample 0 is moved that much earlier
    assert audio.reanchored == 1 and 8000 > AUDIO_GAP_TOLERANCE
    assert audio.content_epoch == pytest.approx(10.0 - (1600 + 8000) / AUDIO_RATE, abs=1e-9)


@pytest.mark.parametrize("size", [(640, 480), (161, 121)])  # 161: rows padded in the frame's plane
@pytest.mark.parametrize("channels", [3, 4])
def test_video_frame_holds_the_pixels_it_was_given(size, channels):
    w, h = size
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, channels), dtype=np.uint8)
    expected = pixels.copy()
    frame = video_frame(pixels)
    pixels[:] = 0  # a copy: the render buffer is reused for the next frame
    assert frame.format.name == {3: "rgb24", 4: "rgba"}[channels] and (frame.width, frame.height) == (w, h)
    assert np.array_equal(frame.to_ndarray(), expected)
    # the render worker's buffer holds GL's rows bottom first and is offered as a top-down view
    gl_rows = np.ascontiguousarray(expected[::-1])
    assert np.array_equal(video_frame(gl_rows[::-1]).to_ndarray(), expected)
