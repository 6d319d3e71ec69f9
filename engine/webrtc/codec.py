"""Video codec of the live sessions: H.264 from libx264's `ultrafast` preset, preferred over VP8.

aiortc encodes VP8 (its first codec) or H.264 through libx264 at libx264's default `medium`
preset. On this 2-core machine one 640x480 frame of the avatar costs about 7-9 ms of CPU in VP8,
13-15 ms in aiortc's H.264 and 2.6-4.5 ms in libx264 `ultrafast` on one thread (measured on
rendered avatar frames; published WebRTC measurements give the same ordering), which is the largest
single saving of CPU per session. aiortc has no option for the preset, so `FastH264Encoder`
(aiortc_patches.py, with every other reach into aiortc's internals) replaces its `_encode_frame`
and keeps aiortc's packetisation, bitrate clamp and keyframe handling.

The bitrate follows the receiver's estimate (REMB): the video gets REMB_SHARE of it (the rest is
headroom for the audio and packet headers), between MIN_BITRATE and MAX_BITRATE, and never more
than the loss in its reports allows (loss_limited, below). The avatar on a
plain background needs no more than 1 Mbit/s at 640x480 (about 4 kB a frame). aiortc instead
reopens the encoder, with a keyframe, on every change over 10 %, and never goes under 500 kbit/s:
on a 600 kbit/s link that is more than fits once audio and headers are counted, and every step
down sends a large keyframe into a link that is already full, so the video stalled for as long as
the link was narrow (issue 17). Here the rate changes in place (libx264 reconfigures its rate
control when VBV is on; no keyframe), and the VBV buffer bounds every frame, keyframes included, to
VBV_SECONDS at MAX_BITRATE.

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
MIN_BITRATE = 150_000  # bit/s: the avatar is still recognisable; below, frames turn to blocks
REMB_SHARE = 0.85
VBV_SECONDS = 0.15  # the largest frame: 150 ms at MAX_BITRATE (about 19 kB)


def video_bitrate(estimate: float) -> int:
    """The video's target for a receiver estimate (REMB) of the whole session, in bit/s."""
    return int(min(max(estimate * REMB_SHARE, MIN_BITRATE), MAX_BITRATE))


# A browser's estimate (REMB) is delay-based: it falls while a queue on the path grows, but once a
# narrow link's queue is full and dropping, the delay is high but steady and the estimate can stay
# above the link. So the loss in the receiver's reports limits the rate too, by libwebrtc's
# sender-side rule: over 10 % lost, back off by half the loss; under 2 %, grow 8 % a report.
LOSS_HIGH, LOSS_LOW, LOSS_GROWTH = 0.10, 0.02, 1.08


def loss_limited(rate: float, lost_fraction: float) -> int:
    """The next loss-based limit, from the current rate and a report's fraction lost."""
    if lost_fraction > LOSS_HIGH:
        rate *= 1.0 - 0.5 * lost_fraction
    elif lost_fraction < LOSS_LOW:
        rate *= LOSS_GROWTH
    return int(min(max(rate, MIN_BITRATE), MAX_BITRATE))


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
