"""aiortc media tracks fed by a session's frame thread, timestamped with content time.

aiortc pulls: its sender awaits `recv()` and sends the frame at once, so pacing is the track's job
(reference/streaming.md section 2.1). Here the session's frame thread paces production on its
monotonic clock and hands each frame over; `recv()` returns it at its send time, a fixed delay
after its content time (AUDIO_SEND_DELAY, VIDEO_SEND_DELAY), or at once if it is later than that.

Both tracks stamp their media with its *content* time on the session's monotonic clock, as RTP
means timestamps (the sampling instant, RFC 3550 section 5.1): pts / clock rate + `content_epoch`
is when the content was captured, not when it was sent. `ContentClockSender` then makes aiortc's
RTCP sender reports map RTP time to that same content time, so the browser's lip sync lines up
the audio and the video of the same instant however late each one leaves.

- Video: a latest-wins slot. A frame replaced before aiortc took it is counted as dropped; when
  no new frame comes for two frame periods the last one is sent again (counted as repeated), so
  the stream never stalls. pts = the frame's `captured` mark (the end of its speaker audio).
- Audio: a FIFO of 48 kHz samples, sent in 20 ms frames with pts = samples sent. The frame thread
  pushes each frame's audio as soon as it is captured, ahead of its video, which takes the
  renderer's time; audio is never dropped, and a gap in the capture is filled with silence so
  that the sample count stays content time.
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
AUDIO_GAP_TOLERANCE = AUDIO_RATE // 20  # 50 ms: capture jitter, not a gap
# Send pacing, after the content time (chosen with headless Chromium on 2 cores, BENCHMARKS.md
# issue 5). Audio: a 20 ms frame is complete up to 13 ms after its content time (the capture comes
# in 33 ms video-frame chunks), plus the frame thread's lateness; sent 30 ms after it, it goes out
# on a steady 20 ms beat and the browser's audio jitter buffer stays at its 20 ms minimum (15 ms
# let late packets through, and the jitter buffer then settled at ~60 ms). Video: rendering takes
# 20-50 ms after capture; sending each frame 45 ms after it turns most of that jitter into a
# constant, which the browser's video jitter estimator otherwise chases upwards. A frame later
# than that goes at once.
AUDIO_SEND_DELAY = 0.030
VIDEO_SEND_DELAY = 0.045


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

    clock_rate = VIDEO_CLOCK

    def __init__(self, loop: asyncio.AbstractEventLoop, fps: float):
        super().__init__()
        self._loop = loop
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._slot: av.VideoFrame | None = None  # its FrameTrace rides in .opaque
        self._last: av.VideoFrame | None = None
        self._last_pts = -1
        self._last_sent_at = 0.0
        self.fps = fps
        self.content_epoch = time.monotonic()  # pts 0 on the session clock
        self.sent = self.dropped = self.repeated = 0
        self.on_sent = None  # callback(trace) when a frame leaves for the encoder

    def offer(self, rgb: np.ndarray, trace: FrameTrace) -> None:
        """From the frame thread: the newest rendered frame (H, W, 3) uint8; its trace's
        `captured` mark is its content time."""
        # RGB as rendered: the encoder converts to YUV in aiortc's thread pool, off this thread
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.opaque = trace
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
        _notify(self._loop, self._event)

    def _stamp(self, frame: av.VideoFrame, captured: float | None) -> av.VideoFrame:
        """pts from the content time `captured`; a repeat (None) ages from the last frame's."""
        now = time.monotonic()
        if captured is None:
            pts = self._last_pts + int(round((now - self._last_sent_at) * VIDEO_CLOCK))
        else:
            pts = int(round((captured - self.content_epoch) * VIDEO_CLOCK))
        frame.pts = max(pts, self._last_pts + 1)  # RTP time never goes back
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._last_pts, self._last_sent_at = frame.pts, now
        return frame

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        patience = 2.0 / self.fps
        while True:
            with self._lock:
                frame, self._slot = self._slot, None
                self._event.clear()
            if frame is not None:
                trace = frame.opaque
                captured = trace.times["captured"]
                if (wait := captured + VIDEO_SEND_DELAY - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                self._last = frame
                self.sent += 1
                self._stamp(frame, captured)
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
                    return self._stamp(self._last, None)


class SessionAudioTrack(MediaStreamTrack):
    kind = "audio"
    clock_rate = AUDIO_RATE

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
        # Pace: each 20 ms frame leaves AUDIO_SEND_DELAY after its last sample's content time, not
        # in a burst when its capture chunk lands. The browser's audio jitter buffer (NetEq) sizes
        # itself to the arrival jitter and raises its delay after every late packet; a steady
        # stream keeps it small, and A/V sync waits for the video anyway.
        due = self.content_epoch + (self.samples_sent + AUDIO_FRAME) / AUDIO_RATE + AUDIO_SEND_DELAY
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


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970


def _ntp64(wall_seconds: float) -> int:
    return int((wall_seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


class ContentClockSender:
    """Mixin for aiortc's RTCRtpSender: RTCP sender reports say when the content was captured.

    aiortc pairs each sent packet's RTP timestamp with the NTP time of its *sending*. The browser
    syncs audio to video through those pairs, so a video frame that leaves 40 ms after its audio
    (the renderer's time) would be shown 40 ms after the audio of the same instant, and any send
    jitter becomes A/V jitter. Here the pair's NTP is the content time of that RTP timestamp
    instead: the track's `content_epoch` + media timestamp / clock rate, moved from the session's
    monotonic clock to wall-clock NTP. Tracks without a content clock keep aiortc's send times.

    aiortc has no hook for this: it writes the pair to its private `__ntp_timestamp` and
    `__rtp_timestamp` after every packet (RTCRtpSender._run_rtp) and reads them for each report
    (_run_rtcp). Python stores those as `_RTCRtpSender__ntp_timestamp` etc., so the properties
    below, defined on the subclass, receive those writes and answer those reads.
    """

    _pending_media_ts: int | None = None
    _report_media_ts: int | None = None
    _send_ntp = 0
    _report_rtp = 0
    _wall_minus_monotonic: float | None = None  # taken once, so every report uses one mapping

    async def _next_encoded_frame(self, codec):
        encoded = await super()._next_encoded_frame(codec)
        if encoded is not None:  # the media timestamp (pts in the codec clock) of what goes next
            self._pending_media_ts = encoded.timestamp
        return encoded

    @property
    def _RTCRtpSender__rtp_timestamp(self) -> int:
        return self._report_rtp

    @_RTCRtpSender__rtp_timestamp.setter
    def _RTCRtpSender__rtp_timestamp(self, value: int) -> None:
        self._report_rtp = value
        self._report_media_ts = self._pending_media_ts  # the packet just sent is of that frame

    @property
    def _RTCRtpSender__ntp_timestamp(self) -> int:
        track = self.track
        epoch = getattr(track, "content_epoch", None)
        rate = getattr(track, "clock_rate", None)
        if epoch is None or rate is None or self._report_media_ts is None:
            return self._send_ntp
        if self._wall_minus_monotonic is None:
            self._wall_minus_monotonic = time.time() - time.monotonic()
        content = epoch + self._report_media_ts / rate  # session (monotonic) clock
        return _ntp64(content + self._wall_minus_monotonic)

    @_RTCRtpSender__ntp_timestamp.setter
    def _RTCRtpSender__ntp_timestamp(self, value: int) -> None:
        self._send_ntp = value


_installed = False


def install_aiortc_hooks() -> None:
    """Make aiortc's senders encode H.264 with FastH264Encoder (video_codec.py), time every video
    encode, and report content time in RTCP (ContentClockSender). aiortc offers no hook for any of
    these, so its sender's get_encoder is wrapped and its peer connection builds our sender
    subclass (idempotent); VP8 and audio encoders are aiortc's own."""
    global _installed
    if _installed:
        return
    import aiortc.rtcpeerconnection as peer_connection
    import aiortc.rtcrtpsender as sender

    original = sender.get_encoder
    sender.get_encoder = lambda codec: _TimedEncoder(video_codec.encoder_for(codec, original))
    peer_connection.RTCRtpSender = type("ContentClockRTCRtpSender",
                                        (ContentClockSender, sender.RTCRtpSender), {})
    _installed = True
