"""Video codec of the live sessions: H.264 from libx264's `ultrafast` preset, preferred over VP8.

aiortc encodes VP8 (its first codec) or H.264 through libx264 at libx264's default `medium`
preset. On this 2-core machine one 640x480 frame of the avatar costs about 7-9 ms of CPU in VP8,
13-15 ms in aiortc's H.264 and 2.6-4.5 ms in libx264 `ultrafast` on one thread (measured on
rendered avatar frames; reference/streaming.md reports the same ordering), which is the largest
single saving of CPU per session. aiortc has no option for the preset, so `FastH264Encoder`
replaces its `_encode_frame` (the workaround streaming.md section 2.2 lists) and keeps aiortc's
packetisation, bitrate clamp and keyframe handling.

The bitrate follows the receiver's estimate (REMB) as in aiortc, but never above MAX_BITRATE.
aiortc reopens the encoder, with a keyframe, on every change over 10 %; Chromium's estimate climbs
from aiortc's 1 Mbit/s start to its 3 Mbit/s ceiling in steps, and on loopback that meant a keyframe
about every second for 20 s, each a large frame that is slow to encode (BENCHMARKS.md, issue 5).
The avatar on a plain background needs no more than 1 Mbit/s at 640x480 (about 4 kB a frame).

The codec is chosen per peer connection by codec preferences on the video transceiver, so a client
that does not offer H.264 still gets VP8.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator

import av
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder

CODECS = ("h264", "vp8")
X264_OPTIONS = {
    "preset": "ultrafast",
    "tune": "zerolatency",  # no lookahead, no B-frames: a frame out for every frame in
    "level": "31",  # what aiortc signals (profile-level-id 42..1f)
    # One thread: sliced threads cost more CPU in total for a frame this small, and the session's
    # other stages already keep the second core busy.
    "threads": "1",
}
MAX_BITRATE = 1_000_000  # bit/s


class FastH264Encoder(H264Encoder):
    """aiortc's H264Encoder with libx264 at `ultrafast` on one thread."""

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        # As aiortc: reopen on a size change or a bitrate change over 10 % (REMB), up to
        # MAX_BITRATE; that restarts with a keyframe.
        bitrate = min(self.target_bitrate, MAX_BITRATE)
        if self.codec and (
            frame.width != self.codec.width
            or frame.height != self.codec.height
            or abs(bitrate - self.codec.bit_rate) / self.codec.bit_rate > 0.1
        ):
            self.codec = None
        frame.pict_type = av.video.frame.PictureType.I if force_keyframe else av.video.frame.PictureType.NONE
        if self.codec is None:
            self.codec = self._open(frame.width, frame.height, bitrate)
        data = b"".join(bytes(packet) for packet in self.codec.encode(frame))
        if data:
            yield from self._split_bitstream(data)

    def _open(self, width: int, height: int, bitrate: int):
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.bit_rate = bitrate
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
        codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
        codec.options = dict(X264_OPTIONS)
        codec.profile = "Baseline"
        return codec


def encoder_for(codec_parameters, default_factory):
    """The encoder aiortc's sender should use: ours for H.264, aiortc's own otherwise."""
    if codec_parameters.mimeType.lower() == "video/h264":
        return FastH264Encoder()
    return default_factory(codec_parameters)


def preferences(first: str) -> list:
    """aiortc's video codec capabilities with `first` ("h264" or "vp8") ahead of the rest, for
    RTCRtpTransceiver.setCodecPreferences."""
    from aiortc import RTCRtpSender

    if first not in CODECS:
        raise ValueError(f"video codec must be one of {', '.join(CODECS)}, not {first!r}")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    wanted = f"video/{first}"
    return [c for c in codecs if c.mimeType.lower() == wanted] + [c for c in codecs if c.mimeType.lower() != wanted]


def negotiated(sdp: str) -> str | None:
    """The video codec a session description puts first (the one that is sent), e.g. "H264"."""
    from aiortc.sdp import SessionDescription

    for media in SessionDescription.parse(sdp).media:
        if media.kind == "video" and media.rtp.codecs:
            return media.rtp.codecs[0].name
    return None
