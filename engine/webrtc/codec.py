"""Video codec of the live sessions: H.264 from libx264's `ultrafast` preset, preferred over VP8.

aiortc encodes VP8 (its first codec) or H.264 through libx264 at libx264's default `medium`
preset. On this 2-core machine one 640x480 frame of the avatar costs about 7-9 ms of CPU in VP8,
13-15 ms in aiortc's H.264 and 2.6-4.5 ms in libx264 `ultrafast` on one thread (measured on
rendered avatar frames; published WebRTC measurements give the same ordering), which is the largest
single saving of CPU per session. aiortc has no option for the preset, so `FastH264Encoder`
(aiortc_patches.py, with every other reach into aiortc's internals) replaces its `_encode_frame`
and keeps aiortc's packetisation, bitrate clamp and keyframe handling.

The bitrate follows the receiver's estimate (REMB) as in aiortc, but never above MAX_BITRATE.
aiortc reopens the encoder, with a keyframe, on every change over 10 %; Chromium's estimate climbs
from aiortc's 1 Mbit/s start to its 3 Mbit/s ceiling in steps, and on loopback that meant a keyframe
about every second for 20 s, each a large frame that is slow to encode (BENCHMARKS.md, issue 5).
The avatar on a plain background needs no more than 1 Mbit/s at 640x480 (about 4 kB a frame).

The codec is chosen per peer connection by codec preferences on the video transceiver, so a client
that does not offer H.264 still gets VP8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiortc.rtcrtpparameters import RTCRtpCodecCapability

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


def preferences(first: str) -> list[RTCRtpCodecCapability]:
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
