"""Every reach into aiortc's and aioice's private internals, in one place, checked at start.

aiortc and aioice offer no public hook for what the engine needs, so this module patches them:

| hook (private to aiortc/aioice)                              | what it is for                          |
|--------------------------------------------------------------|-----------------------------------------|
| `H264Encoder._encode_frame`, `._split_bitstream` (subclass)   | libx264 at ultrafast (FastH264Encoder)  |
| `aiortc.rtcrtpsender.get_encoder` (replaced)                  | that encoder, and encode times traced   |
| `RTCRtpSender._next_encoded_frame` (subclass)                 | video paced after encoding (before_send)|
| `RTCRtpSender._handle_rtcp_packet` (subclass), `._ssrc`       | receiver feedback counted (Feedback)    |
| `RTCRtpSender._send_keyframe` (called)                        | a keyframe when reports resume          |
| `RTCRtpSender.__encoder` (mangled, read)                      | the bitrate target in the telemetry     |
| `RTCRtpSender.__ntp_timestamp`, `.__rtp_timestamp` (mangled)  | RTCP reports in content time            |
| `RTCRtpSender.__rtp_header_extensions_map` (mangled)          | the playout-delay header extension      |
| `aiortc.codecs.HEADER_EXTENSIONS` (appended to)               | offering that extension                 |
| `aiortc.rtcpeerconnection.RTCRtpSender` (replaced)            | peer connections build the subclass     |
| `aiortc.rtp.compute_audio_level_dbov` (replaced)              | audio level in numpy, not a Python loop |
| `aioice.ice.get_host_addresses` (replaced)                    | ICE on 127.0.0.1 only (--ice-loopback)  |

`install()` first checks that every hooked name is still where these versions put it
(`missing_hooks()`): an upgrade that renames one fails at start with the list, not silently (the
sender reports would quietly fall back to send times). pyproject.toml pins aiortc and aioice to the
releases the tests ran on (TESTED); a test checks both.
"""

from __future__ import annotations

import fractions
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import av
import numpy as np
from aiortc import rtp
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder

if TYPE_CHECKING:
    from aiortc.codecs.base import Encoder
    from aiortc.mediastreams import MediaStreamTrack
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpParameters
    from aiortc.rtcrtpsender import RTCEncodedFrame
    from av.frame import Frame
    from av.video.codeccontext import VideoCodecContext

from ..contracts import FrameTrace
from .codec import MAX_BITRATE, VBV_SECONDS, X264_OPTIONS, loss_limited, video_bitrate
from .tracks import PLAYOUT_DELAY_BUFFERED, PLAYOUT_DELAY_ON_ARRIVAL, PLAYOUT_DELAY_URI

log = logging.getLogger("dyadic.engine")

# the releases these hooks were written against and tested with (pyproject.toml pins the same)
TESTED = {"aiortc": "1.16.", "aioice": "0.13."}
LOOPBACK = "127.0.0.1"


# -- the H.264 encoder ------------------------------------------------------------------------------
class FastH264Encoder(H264Encoder):
    """aiortc's H264Encoder with libx264 at `ultrafast` on one thread, whose bitrate follows the
    receiver's estimate in place (codec.py says why), counting keyframes and rate changes."""

    def __init__(self) -> None:
        super().__init__()
        self._from_estimate = MAX_BITRATE  # what the receiver's estimate allows
        self._from_loss = MAX_BITRATE  # what the loss in its reports allows
        self.keyframes_requested = 0  # frames encoded as keyframes because a receiver asked (PLI/FIR)
        self.rate_changes = 0

    @property
    def _target(self) -> int:
        return min(self._from_estimate, self._from_loss)

    @property
    def target_bitrate(self) -> int:
        return self._target

    @target_bitrate.setter
    def target_bitrate(self, estimate: int) -> None:
        """What aiortc's sender calls with every REMB report."""
        self._from_estimate = video_bitrate(estimate)

    def note_loss(self, lost_fraction: float) -> None:
        """A receiver report's fraction lost (codec.py loss_limited)."""
        self._from_loss = loss_limited(min(self._from_loss, self._from_estimate), lost_fraction)

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        if self.codec and (frame.width != self.codec.width or frame.height != self.codec.height):
            self.codec = None  # a new size: a new encoder (and a keyframe)
        if self.codec is None:
            self.codec = self._open(frame.width, frame.height, self._target)
        elif self.codec.bit_rate != self._target:
            self.codec.bit_rate = self._target  # libx264 reconfigures before this frame
            self.rate_changes += 1
        if force_keyframe:
            self.keyframes_requested += 1
        frame.pict_type = av.video.frame.PictureType.I if force_keyframe else av.video.frame.PictureType.NONE
        data = b"".join(bytes(packet) for packet in self.codec.encode(frame))
        if data:
            yield from self._split_bitstream(data)

    def _open(self, width: int, height: int, bitrate: int) -> VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.bit_rate = bitrate
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
        codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
        # VBV on: it bounds each frame, and libx264 takes a new bitrate only with it
        vbv = {"maxrate": str(MAX_BITRATE), "bufsize": str(int(MAX_BITRATE * VBV_SECONDS))}
        codec.options = {**X264_OPTIONS, **vbv}
        codec.profile = "Baseline"
        return codec


def encoder_for(
    codec_parameters: RTCRtpCodecParameters, default_factory: Callable[[RTCRtpCodecParameters], Encoder]
) -> Encoder:
    """The encoder aiortc's sender should use: ours for H.264, aiortc's own otherwise."""
    if codec_parameters.mimeType.lower() == "video/h264":
        return FastH264Encoder()
    return default_factory(codec_parameters)


class TimedEncoder:
    """Wraps an aiortc encoder (`inner`) to stamp encode start/end on the frame's FrameTrace."""

    inner: Encoder

    def __init__(self, inner: Encoder) -> None:
        object.__setattr__(self, "inner", inner)  # past __setattr__, which forwards

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        trace = getattr(frame, "opaque", None)
        if isinstance(trace, FrameTrace):
            trace.mark("encode_start")
            out = self.inner.encode(frame, force_keyframe)
            trace.mark("encode_end")
            return out
        return self.inner.encode(frame, force_keyframe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970
# A receiver's RTCP reports come at least every ~1.5 s (aiortc: 0.5-1.5 s; Chromium: about 1 s,
# more often with REMB): a longer silence is a link that went down.
RESUME_KEYFRAME_AFTER_S = 2.0


def _ntp64(wall_seconds: float) -> int:
    return int((wall_seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


@dataclass
class Feedback:
    """What a receiver said about one sent stream over RTCP, kept for the telemetry: how the
    engine repairs a lossy link is visible (NACK -> retransmission from aiortc's history, PLI/FIR
    -> the next frame a keyframe, REMB -> the encoder's bitrate)."""

    nacked: int = 0  # packets asked for again
    keyframe_requests: int = 0  # PLI and FIR
    silences: int = 0  # times the receiver's reports stopped for RESUME_KEYFRAME_AFTER_S and came back
    estimate_bps: int | None = None  # the receiver's last estimate (REMB)
    lost_fraction: float | None = None  # its last report's fraction lost

    def note(self, packet: Any, ssrc: int) -> bool:
        """Count what `packet` says of stream `ssrc`; True when it carried a report of its loss."""
        if isinstance(packet, rtp.RtcpRtpfbPacket) and packet.fmt == rtp.RTCP_RTPFB_NACK:
            self.nacked += len(packet.lost)
        elif isinstance(packet, rtp.RtcpPsfbPacket) and packet.fmt in (rtp.RTCP_PSFB_PLI, rtp.RTCP_PSFB_FIR):
            self.keyframe_requests += 1
        elif isinstance(packet, rtp.RtcpPsfbPacket) and packet.fmt == rtp.RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = rtp.unpack_remb_fci(packet.fci)
            except ValueError:
                return False
            if ssrc in ssrcs:
                self.estimate_bps = bitrate
        elif isinstance(packet, (rtp.RtcpRrPacket, rtp.RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    self.lost_fraction = report.fraction_lost / 256
                    return True
        return False


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

    It also gives the track its say between encoding and sending (`before_send`, the video's send
    pacing), and writes the playout-delay header extension (`PlayoutDelayExtensions`) in place of
    aiortc's private extension map, which has no entry for it.
    """

    _pending_media_ts: int | None = None
    _report_media_ts: int | None = None
    _send_ntp = 0
    _report_rtp = 0
    _wall_minus_monotonic: float | None = None  # taken once, so every report uses one mapping
    if TYPE_CHECKING:  # RTCRtpSender's, which this is mixed into
        track: MediaStreamTrack

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._RTCRtpSender__rtp_header_extensions_map = PlayoutDelayExtensions(self)
        self.feedback = Feedback()
        self._last_sent: tuple[float, int] | None = None  # (monotonic s, bytes sent) at the last network()
        self._last_report: float | None = None  # monotonic s of the receiver's last RTCP packet

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        # RTCRtpSender's: next in the MRO of the class install() builds
        now = time.monotonic()
        if self._last_report is not None and now - self._last_report > RESUME_KEYFRAME_AFTER_S:
            # The receiver was silent (browsers report at least once a second): the link was down
            # and what was sent meanwhile is lost beyond repair. Send a picture it can decode at
            # once rather than wait until it asks (Chromium asks only after ~3 s of undecodable frames).
            self.feedback.silences += 1
            if self.kind == "video":  # type: ignore[attr-defined]
                self._send_keyframe()  # type: ignore[attr-defined]
        self._last_report = now
        if self.feedback.note(packet, self._ssrc):  # type: ignore[attr-defined]
            inner = getattr(self._RTCRtpSender__encoder, "inner", None)  # type: ignore[attr-defined]
            if isinstance(inner, FastH264Encoder) and self.feedback.lost_fraction is not None:
                inner.note_loss(self.feedback.lost_fraction)
        await super()._handle_rtcp_packet(packet)  # type: ignore[misc]

    async def network(self) -> dict[str, Any]:
        """This stream's link as the receiver reports it, and what the encoder does about it:
        kbit/s sent since the last call, round trip, loss, the estimate and the video's target."""
        stats = await self.getStats()  # type: ignore[attr-defined]
        fb = self.feedback
        out: dict[str, Any] = {"nacked": fb.nacked, "keyframe_requests": fb.keyframe_requests, "silences": fb.silences}
        for s in stats.values():
            if s.type == "outbound-rtp":
                now, sent = time.monotonic(), int(s.bytesSent)
                if self._last_sent is not None and now > self._last_sent[0]:
                    out["sent_kbps"] = round((sent - self._last_sent[1]) * 8e-3 / (now - self._last_sent[0]), 1)
                self._last_sent = (now, sent)
            elif s.type == "remote-inbound-rtp" and s.roundTripTime is not None:
                out["rtt_ms"] = round(s.roundTripTime * 1e3, 1)
        if self.feedback.lost_fraction is not None:
            out["lost_pct"] = round(self.feedback.lost_fraction * 100, 1)
        if self.feedback.estimate_bps is not None:
            out["estimate_kbps"] = round(self.feedback.estimate_bps / 1e3, 1)
        encoder = self._RTCRtpSender__encoder  # type: ignore[attr-defined]  # None until the first frame
        if isinstance(getattr(encoder, "inner", None), FastH264Encoder):
            out["target_kbps"] = round(encoder.target_bitrate / 1e3, 1)
            out["keyframes_sent"] = encoder.keyframes_requested
            out["rate_changes"] = encoder.rate_changes
        return out

    async def _next_encoded_frame(self, codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        # RTCRtpSender's: next in the MRO of the class install() builds
        encoded: RTCEncodedFrame | None = await super()._next_encoded_frame(codec)  # type: ignore[misc]
        if encoded is not None:
            before_send = getattr(self.track, "before_send", None)
            if before_send is not None:
                await before_send()
            # the media timestamp (pts in the codec clock) of what goes next
            self._pending_media_ts = encoded.timestamp
        return encoded

    @property
    def rtp_origin(self) -> int | None:
        """The RTP timestamp of media timestamp 0 (aiortc draws it at random), once a packet went
        out: a receiver turns RTP timestamps back into the track's media time with it."""
        if self._report_media_ts is None:
            return None
        return (self._report_rtp - self._report_media_ts) % 2**32

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


class PlayoutDelayExtensions(rtp.HeaderExtensionsMap):
    """aiortc's header extension map plus the playout-delay extension, when negotiated: on every
    packet of a sender whose track asks for it, PLAYOUT_DELAY_ON_ARRIVAL while the track's
    `render_on_arrival` is set, PLAYOUT_DELAY_BUFFERED otherwise (the browser keeps the last one
    it got, so switching back has to be said too)."""

    def __init__(self, sender: ContentClockSender) -> None:
        super().__init__()
        self._sender = sender
        self._id: int | None = None

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        self._id = next((ext.id for ext in parameters.headerExtensions if ext.uri == PLAYOUT_DELAY_URI), None)

    # the extension's payload: two 12-bit fields (min, max), 10 ms units
    _VALUES: ClassVar[dict[bool, bytes]] = {
        on: ((low << 12) | high).to_bytes(3, "big")
        for on, (low, high) in ((True, PLAYOUT_DELAY_ON_ARRIVAL), (False, PLAYOUT_DELAY_BUFFERED))
    }

    def set(self, values: rtp.HeaderExtensions) -> tuple[int, bytes]:
        """Called for every packet the sender serialises."""
        profile, data = super().set(values)
        on_arrival = getattr(self._sender.track, "render_on_arrival", None)
        if on_arrival is None or self._id is None:
            return profile, data
        value = self._VALUES[bool(on_arrival)]
        if profile in (0, 0xBEDE) and self._id <= 14:  # one-byte form: 4 bytes, still 32-bit aligned
            return 0xBEDE, bytes([(self._id << 4) | (len(value) - 1)]) + value + data
        # the two-byte form (an id over 14, or aiortc chose it): re-pack every element
        elements = list(rtp.unpack_header_extensions(profile, data)) + [(self._id, value)]
        return rtp.pack_header_extensions(elements)


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """aiortc's rtp.compute_audio_level_dbov (RFC 6465 Appendix A, on the s16 samples of the
    first plane) in numpy: the same number, without a Python loop over every sample (0.12 ms per
    20 ms frame there, 0.3 ms of the server's CPU per video frame)."""
    samples = np.frombuffer(memoryview(frame.planes[0]), np.int16).astype(np.float64)  # a view, no copy
    rms = math.sqrt(float(np.dot(samples, samples)) / (frame.samples * 32767 * 32767))
    return round(min(max(20 * math.log10(rms), -127), 0)) if rms > 0 else -127


# -- the checks and the installation ----------------------------------------------------------------
def _code_names(fn: Any) -> set[str]:
    """Attribute names a function's byte code reads or writes (name-mangled ones as stored)."""
    code = getattr(fn, "__code__", None)
    return set(code.co_names) if code is not None else set()


def missing_hooks() -> list[str]:
    """Each hooked name that the installed aiortc/aioice no longer has where expected."""
    import aioice.ice
    import aiortc.codecs
    import aiortc.rtcpeerconnection
    import aiortc.rtcrtpsender as sender

    cls = sender.RTCRtpSender
    run_rtp, run_rtcp = _code_names(cls._run_rtp), _code_names(cls._run_rtcp)
    checks = {
        "H264Encoder._encode_frame": hasattr(H264Encoder, "_encode_frame"),
        "H264Encoder._split_bitstream": hasattr(H264Encoder, "_split_bitstream"),
        "aiortc.rtcrtpsender.get_encoder": callable(getattr(sender, "get_encoder", None)),
        "RTCRtpSender._next_encoded_frame": hasattr(cls, "_next_encoded_frame"),
        "RTCRtpSender._handle_rtcp_packet": hasattr(cls, "_handle_rtcp_packet"),
        "RTCRtpSender._ssrc": "_ssrc" in _code_names(cls.__init__),
        "RTCRtpSender._send_keyframe": callable(getattr(cls, "_send_keyframe", None)),
        "RTCRtpSender.__encoder": "_RTCRtpSender__encoder" in _code_names(cls._next_encoded_frame),
        "RTCRtpSender.__ntp_timestamp (written per packet, read per report)": (
            "_RTCRtpSender__ntp_timestamp" in run_rtp and "_RTCRtpSender__ntp_timestamp" in run_rtcp
        ),
        "RTCRtpSender.__rtp_timestamp (written per packet, read per report)": (
            "_RTCRtpSender__rtp_timestamp" in run_rtp and "_RTCRtpSender__rtp_timestamp" in run_rtcp
        ),
        "RTCRtpSender.__rtp_header_extensions_map": "_RTCRtpSender__rtp_header_extensions_map"
        in _code_names(cls.__init__),
        "aiortc.codecs.HEADER_EXTENSIONS['video']": isinstance(
            getattr(aiortc.codecs, "HEADER_EXTENSIONS", {}).get("video"), list
        ),
        "aiortc.rtcpeerconnection.RTCRtpSender": hasattr(aiortc.rtcpeerconnection, "RTCRtpSender"),
        "aiortc.rtp.compute_audio_level_dbov": callable(getattr(rtp, "compute_audio_level_dbov", None)),
        "aioice.ice.get_host_addresses": callable(getattr(aioice.ice, "get_host_addresses", None)),
    }
    return [name for name, ok in checks.items() if not ok]


def untested_versions() -> dict[str, str]:
    """Installed aiortc/aioice releases other than the ones these hooks were tested with."""
    installed = {name: version(name) for name in TESTED}
    return {name: v for name, v in installed.items() if not v.startswith(TESTED[name])}


class AiortcChanged(RuntimeError):
    """aiortc or aioice no longer has what a hook needs."""


_installed = False


def install() -> None:
    """Make aiortc's senders encode H.264 with FastH264Encoder, time every video encode, pace
    video after encoding, report content time in RTCP and offer the playout-delay header extension
    (ContentClockSender), and measure audio levels in numpy (audio_level_dbov). Idempotent; VP8 and
    audio encoders stay aiortc's own."""
    global _installed
    if _installed:
        return
    missing = missing_hooks()
    if missing:
        raise AiortcChanged(
            f"aiortc/aioice changed (installed: {version('aiortc')}/{version('aioice')}, tested: "
            f"{TESTED['aiortc']}x/{TESTED['aioice']}x); these hooks are gone: {'; '.join(missing)}"
        )
    import aiortc.codecs as codecs
    import aiortc.rtcpeerconnection as peer_connection
    import aiortc.rtcrtpsender as sender
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

    # aiortc's own ids are 1-3 and shared with audio under BUNDLE; an answer takes the offer's id
    codecs.HEADER_EXTENSIONS["video"].append(RTCRtpHeaderExtensionParameters(id=4, uri=PLAYOUT_DELAY_URI))

    rtp.compute_audio_level_dbov = audio_level_dbov  # looked up as rtp.<name> by the sender
    original = sender.get_encoder
    # TimedEncoder is a duck-typed Encoder (a wrapper, not a subclass)
    sender.get_encoder = lambda codec: TimedEncoder(encoder_for(codec, original))  # type: ignore[assignment, return-value]
    peer_connection.RTCRtpSender = type(  # type: ignore[misc, assignment]  # the subclass, for aiortc to build
        "ContentClockRTCRtpSender", (ContentClockSender, sender.RTCRtpSender), {}
    )
    _installed = True


# -- loopback ICE ------------------------------------------------------------------------------------
class _GetHostAddresses(Protocol):
    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]: ...


_original_get_host_addresses: _GetHostAddresses | None = None


def restrict_to_loopback() -> None:
    """From now on this process gathers only a 127.0.0.1 host candidate (idempotent)."""
    global _original_get_host_addresses
    import aioice.ice

    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses

        def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [LOOPBACK] if use_ipv4 else []

        aioice.ice.get_host_addresses = loopback_only
        log.info("ICE restricted to %s", LOOPBACK)


def unrestrict() -> None:
    """Undo restrict_to_loopback (tests)."""
    global _original_get_host_addresses
    import aioice.ice

    if _original_get_host_addresses is not None:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        _original_get_host_addresses = None
