"""aiortc media tracks fed by a session's frame thread, timestamped with content time.

aiortc pulls: its sender awaits `recv()`, encodes and sends the frame at once, so pacing is the
track's job. Here the session's frame thread paces production
on its monotonic clock and hands each frame over; each frame leaves at its send time, a fixed delay
after its content time, or at once if it is later than that. Audio waits in `recv()`
(AUDIO_SEND_DELAY; Opus takes a fraction of a millisecond). Video waits after it is encoded, in
`before_send()`, which the sender calls between the encoder and the packets (aiortc_patches.py):
then the encoder's time does not show in when the frame arrives (VIDEO_SEND_DELAY).

Both tracks stamp their media with its *content* time on the session's monotonic clock, as RTP
means timestamps (the sampling instant, RFC 3550 section 5.1): pts / clock rate + `content_epoch`
is when the content was captured, not when it was sent. The patched sender (aiortc_patches.py)
then makes aiortc's RTCP sender reports map RTP time to that same content time, so the browser's lip sync lines up
the audio and the video of the same instant however late each one leaves.

- Video: a latest-wins slot. A frame replaced before aiortc took it is counted as dropped; when
  no new frame comes for `repeat_after` seconds (two frame periods: the session clock's rule,
  pipeline/clock.py) the last one is sent again (counted as repeated), so the stream never stalls.
  pts = the frame's `captured` mark (the end of its speaker audio).
- Audio: a FIFO of 48 kHz samples, sent in 20 ms frames with pts = samples sent. The frame thread
  pushes each frame's audio a few frames before its content time (a recording's read ahead, a live
  source's silence stamped ahead: pipeline/audio_lead.py), ahead of its video, which takes the
  renderer's time; audio is never dropped, and a gap in the capture is filled with silence so that
  the sample count stays content time.

The browser's lip sync delays whichever track arrives sooner until both play the same instant
together, so the slower path sets the latency. The session sends its audio ahead, so that is the
video, which then asks Chromium, through the playout-delay RTP header extension (min 0), to show
each frame as soon as it is decoded (`render_on_arrival`): the sender's pacing already took the
renderer's jitter out, and Chromium's own video jitter estimator otherwise climbs on the few
frames that come late (BENCHMARKS.md, issue 5). A track with `render_on_arrival` False asks for
Chromium's usual buffering instead.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import Callable
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..contracts import AUDIO_RATE, FrameTrace

VIDEO_CLOCK = 90_000
AUDIO_FRAME = AUDIO_RATE // 50  # 20 ms, what Opus packs
AUDIO_BACKLOG_LIMIT = AUDIO_RATE * 2  # only reached when nobody pulls (connection gone)
AUDIO_GAP_TOLERANCE = AUDIO_RATE // 20  # 50 ms: capture jitter, not a gap
# Send pacing, after the content time (chosen with headless Chromium on 2 cores, BENCHMARKS.md
# issue 5). Audio: a 20 ms frame is complete up to 13 ms after its content time (the capture comes
# in 33 ms video-frame chunks), plus the frame thread's lateness; sent 30 ms after it, it goes out
# on a steady 20 ms beat and the browser's audio jitter buffer stays at its 20 ms minimum (15 ms
# let late packets through, and the jitter buffer then settled at ~60 ms). Video: capture to
# encoded takes ~20 ms (median), ~30 ms (p95) with Chromium on the same 2 cores; sending each
# frame 35 ms after its capture turns that jitter into a constant. A frame later than that goes
# at once (and, rendered on arrival, is shown late by that much, alone).
AUDIO_SEND_DELAY = 0.030
VIDEO_SEND_DELAY = 0.035
# AUDIO_SEND_DELAY is the track's default, for audio pushed when it is captured. A session pushes
# its audio a few frames early instead (pipeline/audio_lead.py: a recording's read ahead, a live source's
# silence stamped ahead), so every 20 ms frame is complete well before its content time and leaves
# 40 ms *before* it: it then reaches the browser ahead of the video of the same instant, and the
# browser holds the audio back to meet the video (its lip sync leaves differences under 30 ms
# alone, so the audio must not be the later one).
AUDIO_LEAD_SEND_DELAY = -0.040
# Browser mode (pipeline/pose_stage.py) has no video for the browser to sync the audio to: the page
# draws each pose when its audio is heard. The audio then goes out just after its content time, when
# that frame's pose is made (features and model: a few ms), not ahead of it.
POSE_MODE_AUDIO_SEND_DELAY = 0.010
# playout-delay header extension (webrtc.org experiments): min and max in 10 ms units. min 0 and
# max <= 500 ms is Chromium's "render on arrival" mode; a max above 500 ms is its usual buffering.
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
PLAYOUT_DELAY_ON_ARRIVAL = (0, 50)
PLAYOUT_DELAY_BUFFERED = (0, 0xFFF)


def _notify(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:  # the loop is closed: the session is going away
        pass


def video_frame(pixels: np.ndarray) -> av.VideoFrame:
    """A new rgb24 or rgba VideoFrame holding a copy of `pixels` (H, W, 3 or 4) uint8, which may
    be any strided view (the render worker's is a bottom-up buffer seen top-down). One numpy copy
    into the frame's plane: half the time of VideoFrame.from_ndarray, which copies row by row
    (0.36 against 0.79 ms for RGB at 640x480 here). The encoder ignores alpha."""
    h, w, channels = pixels.shape
    frame = av.VideoFrame(w, h, {3: "rgb24", 4: "rgba"}[channels])
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(h, plane.line_size)  # a view, no copy
    np.copyto(rows[:, : w * channels].reshape(h, w, channels), pixels)
    return frame


class SessionVideoTrack(MediaStreamTrack):
    kind = "video"

    clock_rate = VIDEO_CLOCK
    _loop: asyncio.AbstractEventLoop  # pyee's (Optional there), always given here

    def __init__(self, loop: asyncio.AbstractEventLoop, repeat_after: float):
        super().__init__()
        self._loop = loop
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._slot: av.VideoFrame | None = None  # its FrameTrace rides in .opaque
        self._last: av.VideoFrame | None = None
        self._in_flight: FrameTrace | None = None  # taken by aiortc, not sent yet (None: a repeat)
        self._last_pts = -1
        self._last_sent_at = 0.0
        self.repeat_after = repeat_after  # seconds without a new frame: send the last one again
        self.content_epoch = time.monotonic()  # pts 0 on the session clock
        self.sent = self.dropped = self.repeated = 0
        self.on_sent: Callable[[FrameTrace], None] | None = None  # when a frame's packets go out
        self.render_on_arrival = False  # ask the browser to show frames as soon as decoded

    def offer(self, pixels: np.ndarray, trace: FrameTrace) -> None:
        """From the frame thread: the newest rendered frame, (H, W, 3) RGB or (H, W, 4) RGBA
        uint8; its trace's `captured` mark is its content time."""
        # as rendered: the encoder converts to YUV in aiortc's thread pool, off this thread
        frame = video_frame(pixels)
        frame.opaque = trace
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
        _notify(self._loop, self._event)

    def _stamp(self, frame: av.VideoFrame, captured: float | None) -> av.VideoFrame:
        """pts from the content time `captured`; a repeat (None) ages from the last frame's by the
        time since that one was sent (so it is due at once)."""
        if captured is None:
            pts = self._last_pts + int(round((time.monotonic() - self._last_sent_at) * VIDEO_CLOCK))
        else:
            pts = int(round((captured - self.content_epoch) * VIDEO_CLOCK))
        frame.pts = max(pts, self._last_pts + 1)  # RTP time never goes back
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._last_pts = frame.pts
        return frame

    async def before_send(self) -> None:
        """From the sender, between encoding the frame `recv()` gave and sending its packets: wait
        for its send time, VIDEO_SEND_DELAY after its content time (a repeat goes at once)."""
        trace, self._in_flight = self._in_flight, None
        if trace is not None:
            if (wait := trace.times["captured"] + VIDEO_SEND_DELAY - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            trace.mark("sent")
            self.sent += 1
            if self.on_sent is not None:
                self.on_sent(trace)
        self._last_sent_at = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        patience = self.repeat_after
        while True:
            with self._lock:
                frame, self._slot = self._slot, None
                self._event.clear()
            if frame is not None:
                trace = cast(FrameTrace, frame.opaque)  # offer() put it there
                self._last = frame
                self._stamp(frame, trace.times["captured"])
                trace.pts = frame.pts
                self._in_flight = trace
                return frame
            try:
                await asyncio.wait_for(self._event.wait(), patience)
            except asyncio.TimeoutError:
                if self.readyState != "live":
                    raise MediaStreamError from None
                if self._last is not None:
                    self.repeated += 1
                    # aiortc encodes one frame at a time, so the same object can go again
                    self._last.opaque = self._in_flight = None
                    return self._stamp(self._last, None)


class SessionAudioTrack(MediaStreamTrack):
    kind = "audio"
    clock_rate = AUDIO_RATE
    _loop: asyncio.AbstractEventLoop  # pyee's (Optional there), always given here

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self._loop = loop
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._level = 0
        self._pushed = 0
        self.content_epoch: float | None = None  # session-clock time of sample 0
        self.samples_sent = 0
        self.overflow_samples = 0
        self.gap_samples = 0  # silence put in where the capture skipped time
        self.reanchored = 0  # times the content clock moved back to meet the capture clock
        self.send_delay = AUDIO_SEND_DELAY  # after the content time; AUDIO_LEAD_SEND_DELAY when led

    def push(self, samples: np.ndarray, captured: float | None = None) -> None:
        """From the frame thread: the next samples (float32 mono 48 kHz), whose last one was
        captured at `captured` on the session clock (default: now)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        end = time.monotonic() if captured is None else captured
        if self.content_epoch is None:
            self.content_epoch = end - len(samples) / AUDIO_RATE
        gap = int(round((end - self.content_epoch) * AUDIO_RATE)) - self._pushed - len(samples)
        if gap > AUDIO_GAP_TOLERANCE:  # the capture skipped time (a stall): keep samples = time
            fill = min(gap, AUDIO_BACKLOG_LIMIT)
            self.gap_samples += fill
            samples = np.concatenate([np.zeros(fill, np.float32), samples])
        elif gap < -AUDIO_GAP_TOLERANCE:  # more samples than time (a device clock runs fast)
            self.content_epoch += gap / AUDIO_RATE
            self.reanchored += 1
        self._pushed += len(samples)
        with self._lock:
            self._chunks.append(samples)
            self._level += len(samples)
            if self._level > AUDIO_BACKLOG_LIMIT:  # nobody is pulling: keep memory bounded
                cut = np.concatenate(self._chunks)[self._level - AUDIO_BACKLOG_LIMIT :]
                self.overflow_samples += self._level - AUDIO_BACKLOG_LIMIT
                self._chunks, self._level = [cut], len(cut)
        if self._level >= AUDIO_FRAME:
            _notify(self._loop, self._event)

    @property
    def pushed_samples(self) -> int:
        """Samples pushed so far, silence filled into capture gaps included."""
        return self._pushed

    def backlog(self) -> np.ndarray:
        """A copy of the samples pushed and not yet sent."""
        with self._lock:
            return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def _pop(self) -> np.ndarray | None:
        with self._lock:
            if self._level < AUDIO_FRAME:
                self._event.clear()
                return None
            data = np.concatenate(self._chunks)
            out, rest = data[:AUDIO_FRAME], data[AUDIO_FRAME:]
            self._chunks, self._level = ([rest] if len(rest) else []), len(rest)
            return out

    async def recv(self) -> av.AudioFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            samples = self._pop()
            if samples is not None:
                break
            try:
                await asyncio.wait_for(self._event.wait(), 0.5)
            except asyncio.TimeoutError:
                continue
        # Pace: each 20 ms frame leaves `send_delay` after its last sample's content time, not in a
        # burst when its capture chunk lands. The browser's audio jitter buffer (NetEq) sizes
        # itself to the arrival jitter and raises its delay after every late packet; a steady
        # stream keeps it small, and A/V sync waits for the video anyway.
        assert self.content_epoch is not None  # set by the first push, before any samples
        due = self.content_epoch + (self.samples_sent + AUDIO_FRAME) / AUDIO_RATE + self.send_delay
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.samples_sent
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.samples_sent += AUDIO_FRAME
        return frame
