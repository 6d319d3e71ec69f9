"""aiortc media tracks fed by a session's frame thread, timestamped from the session's clock.

aiortc pulls: its sender awaits `recv()` and sends the frame at once, so pacing is the track's job
(reference/streaming.md section 2.1). Here the session's frame thread paces production on its
monotonic clock and hands each finished frame over; `recv()` returns it as soon as it exists.

- Video: a latest-wins slot. A frame replaced before aiortc took it is counted as dropped; when
  no new frame comes for two frame periods the last one is sent again (counted as repeated), so
  the stream never stalls. pts = the send time on the session clock (90 kHz), never a counter.
- Audio: a FIFO of 48 kHz samples, sent in 20 ms frames with pts = samples sent. The frame thread
  pushes each frame's audio when it hands over that frame's video, so audio and video of the same
  instant leave together; audio is never dropped.
"""
from __future__ import annotations

import asyncio
import fractions
import threading
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from dyadic.datasets.interaction import AUDIO_RATE
from . import video_codec

VIDEO_CLOCK = 90_000
AUDIO_FRAME = AUDIO_RATE // 50  # 20 ms, what Opus packs
AUDIO_BACKLOG_LIMIT = AUDIO_RATE * 2  # only reached when nobody pulls (connection gone)


# The server side of a frame's path, in order; each is a time.monotonic() mark. "captured" is the
# end of the frame's audio; "model_end" is absent without a model (recorded listener, idle).
TRACE_STAGES = ("captured", "model_end", "worker_start", "skinned", "rendered", "sent", "encode_start",
                "encode_end")


class FrameTrace:
    """Monotonic timestamps of one video frame along the path, and its video pts once sent."""

    __slots__ = ("index", "times", "pts")

    def __init__(self, index: int):
        self.index = index
        self.times: dict[str, float] = {}
        self.pts: int | None = None

    def mark(self, stage: str, t: float | None = None) -> None:
        self.times[stage] = time.monotonic() if t is None else t

    def as_dict(self) -> dict:
        return {"index": self.index, "pts": self.pts, "times": self.times}


def _notify(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:  # the loop is closed: the session is going away
        pass


class SessionVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, loop: asyncio.AbstractEventLoop, fps: float, t0: float | None = None):
        super().__init__()
        self._loop = loop
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._slot: tuple[av.VideoFrame, FrameTrace | None] | None = None
        self._last: av.VideoFrame | None = None
        self.fps = fps
        self.t0 = time.monotonic() if t0 is None else t0
        self.sent = self.dropped = self.repeated = 0
        self.on_sent = None  # callback(trace) when a frame leaves for the encoder

    def offer(self, rgb: np.ndarray, trace: FrameTrace | None = None) -> None:
        """From the frame thread: the newest rendered frame (H, W, 3) uint8."""
        # RGB as rendered: the encoder converts to YUV in aiortc's thread pool, off this thread
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.opaque = trace
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (frame, trace)
        _notify(self._loop, self._event)

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        frame.pts = int(round((time.monotonic() - self.t0) * VIDEO_CLOCK))
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        patience = 2.0 / self.fps
        while True:
            with self._lock:
                item, self._slot = self._slot, None
                self._event.clear()
            if item is not None:
                frame, trace = item
                self._last = frame
                self.sent += 1
                self._stamp(frame)
                if trace is not None:
                    trace.mark("sent")
                    trace.pts = frame.pts
                    if self.on_sent is not None:
                        self.on_sent(trace)
                return frame
            try:
                await asyncio.wait_for(self._event.wait(), patience)
            except asyncio.TimeoutError:
                if self.readyState != "live":
                    raise MediaStreamError from None
                if self._last is not None:
                    self.repeated += 1
                    # aiortc encodes one frame at a time, so the same object can go again
                    self._last.opaque = None
                    return self._stamp(self._last)


class SessionAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self._loop = loop
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._level = 0
        self.samples_sent = 0
        self.overflow_samples = 0

    def push(self, samples: np.ndarray) -> None:
        """From the frame thread: the next samples (float32 mono 48 kHz)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        with self._lock:
            self._chunks.append(samples)
            self._level += len(samples)
            if self._level > AUDIO_BACKLOG_LIMIT:  # nobody is pulling: keep memory bounded
                cut = np.concatenate(self._chunks)[self._level - AUDIO_BACKLOG_LIMIT:]
                self.overflow_samples += self._level - AUDIO_BACKLOG_LIMIT
                self._chunks, self._level = [cut], len(cut)
        if self._level >= AUDIO_FRAME:
            _notify(self._loop, self._event)

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
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.samples_sent
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.samples_sent += AUDIO_FRAME
        return frame


# -- encode timing ------------------------------------------------------------------------------
class _TimedEncoder:
    """Wraps an aiortc encoder to stamp encode start/end on the frame's FrameTrace."""

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)

    def encode(self, frame, force_keyframe: bool = False):
        trace = getattr(frame, "opaque", None)
        if isinstance(trace, FrameTrace):
            trace.mark("encode_start")
            out = self._inner.encode(frame, force_keyframe)
            trace.mark("encode_end")
            return out
        return self._inner.encode(frame, force_keyframe)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)


_encoders_installed = False


def install_encoders() -> None:
    """Make aiortc's senders encode H.264 with FastH264Encoder (video_codec.py) and time every
    video encode. aiortc offers no hook for either, so its sender's get_encoder is wrapped
    (idempotent); VP8 and audio encoders are aiortc's own."""
    global _encoders_installed
    if _encoders_installed:
        return
    import aiortc.rtcrtpsender as sender

    original = sender.get_encoder
    sender.get_encoder = lambda codec: _TimedEncoder(video_codec.encoder_for(codec, original))
    _encoders_installed = True
