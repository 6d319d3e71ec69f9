"""The live video codec: libx264 at ultrafast through aiortc's H.264 path, negotiated over VP8."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest

from dyadic.engine.webrtc import aiortc_patches, codec


def _frames(n: int, size=(640, 480)):
    """A smooth moving picture, like the avatar video (no noise)."""
    w, h = size
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    for k in range(n):
        img = np.stack([(x + 4 * k) % 256, (y + 2 * k) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = k * 3000, fractions.Fraction(1, 90_000)
        yield img, frame


def _decode(payloads: list[bytes]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    out = []
    for access_unit in payloads:
        for frame in decoder.decode(av.Packet(access_unit)):
            out.append(frame.to_ndarray(format="rgb24"))
    return out


def _x264_settings(access_unit: bytes) -> dict[str, str]:
    """The settings libx264 writes into its SEI message of the first frame ("... subme=0 ...")."""
    start = access_unit.index(b"options: ") + len(b"options: ")
    text = access_unit[start : access_unit.index(b"\x00", start)].decode("ascii", "replace")
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def test_fast_h264_encoder_round_trips_every_frame_at_ultrafast():
    from aiortc.codecs.h264 import h264_depayload

    enc = aiortc_patches.FastH264Encoder()
    sent, units = [], []
    for k, (img, frame) in enumerate(_frames(20)):
        payloads, timestamp = enc.encode(frame, force_keyframe=(k == 0))
        assert timestamp == k * 3000 and payloads
        units.append(b"".join(h264_depayload(p) for p in payloads))
        sent.append(img)
    assert _x264_settings(units[0])["subme"] == "0"  # ultrafast (medium: 7)
    assert _x264_settings(units[0])["threads"] == "1"
    decoded = _decode(units)
    assert len(decoded) == len(sent)  # zerolatency: one frame out per frame in, none held back
    err = np.abs(decoded[-1].astype(int) - sent[-1].astype(int)).mean()
    assert decoded[-1].shape == (480, 640, 3) and err < 12, err


def test_bitrate_follows_the_estimate_in_place_below_aiortcs_floor_and_up_to_the_cap():
    """A REMB report sets the video's target (REMB_SHARE of it, within MIN..MAX_BITRATE); the
    encoder takes it in place: the same encoder, no keyframe, and the bytes follow."""
    from aiortc.codecs.h264 import h264_depayload

    def keyframe(payloads: list[bytes]) -> bool:
        unit = b"".join(h264_depayload(p) for p in payloads)
        return b"\x00\x00\x01\x65" in unit or b"\x00\x00\x00\x01\x65" in unit  # an IDR slice

    enc = aiortc_patches.FastH264Encoder()
    frames = [f for _, f in _frames(150)]
    sizes, keyframes = [], []
    for k, frame in enumerate(frames):
        if k == 50:
            enc.target_bitrate = 300_000  # a narrow link: under aiortc's 500 kbit/s floor
        if k == 100:
            enc.target_bitrate = 10 * codec.MAX_BITRATE  # wide again
        payloads, _ = enc.encode(frame, force_keyframe=(k == 0))
        sizes.append(sum(len(p) for p in payloads))
        keyframes.append(keyframe(payloads))
        if k == 0:
            first = enc.codec
    assert enc.codec is first and keyframes.count(True) == 1  # never reopened, no keyframe on a change
    assert enc.rate_changes == 2 and enc.keyframes_requested == 1
    assert enc.target_bitrate == codec.MAX_BITRATE
    wide, narrow, again = (sum(sizes[a : a + 40]) * 8 * 30 / 40 for a in (10, 60, 110))
    assert narrow < 0.6 * wide and narrow < 1.2 * 300_000 * codec.REMB_SHARE, (wide, narrow)
    assert again > 1.5 * narrow, (narrow, again)
    assert codec.video_bitrate(1e9) == codec.MAX_BITRATE and codec.video_bitrate(0) == codec.MIN_BITRATE


def _negotiate(server_first: str, client_codecs: list[str] | None) -> str | None:
    """Offer from an aiortc client (all its codecs, or only `client_codecs`), answer as the
    server does; the codec the answer sends video in."""
    from aiortc import RTCPeerConnection, RTCRtpSender, VideoStreamTrack

    async def go():
        aiortc_patches.restrict_to_loopback()
        client, server = RTCPeerConnection(), RTCPeerConnection()
        try:
            t = client.addTransceiver("video", direction="recvonly")
            if client_codecs:
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for c in caps if c.mimeType.split("/")[1].lower() in client_codecs])
            await client.setLocalDescription(await client.createOffer())
            video = server.addTransceiver(VideoStreamTrack(), direction="sendonly")
            video.setCodecPreferences(codec.preferences(server_first))
            await server.setRemoteDescription(client.localDescription)
            await server.setLocalDescription(await server.createAnswer())
            return codec.negotiated(server.localDescription.sdp)
        finally:
            await client.close()
            await server.close()

    return asyncio.run(go())


def test_h264_is_preferred_and_vp8_is_the_fallback():
    assert _negotiate("h264", None) == "H264"
    assert _negotiate("vp8", None) == "VP8"
    assert _negotiate("h264", ["vp8", "rtx"]) == "VP8"  # a client without H.264 still gets video


def test_senders_use_the_fast_encoder_for_h264_only():
    import aiortc.rtcrtpsender as sender
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    aiortc_patches.install()
    h264 = sender.get_encoder(RTCRtpCodecParameters(mimeType="video/H264", clockRate=90_000, payloadType=102))
    vp8 = sender.get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96))
    assert isinstance(h264.inner, aiortc_patches.FastH264Encoder)
    assert isinstance(vp8.inner, Vp8Encoder)


def test_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="h264, vp8"):
        codec.preferences("av1")


def test_loss_in_the_reports_limits_the_bitrate_and_it_grows_back():
    """A narrow link whose queue is full drops packets at a steady delay, where a delay-based
    estimate (REMB) stays high: the loss the receiver reports limits the rate (libwebrtc's rule)."""
    assert codec.loss_limited(1_000_000, 0.30) == 850_000  # over 10 %: back off by half the loss
    assert codec.loss_limited(800_000, 0.05) == 800_000  # between 2 and 10 %: hold
    assert codec.loss_limited(500_000, 0.0) == 540_000  # under 2 %: grow 8 %
    assert codec.loss_limited(100_000, 0.9) == codec.MIN_BITRATE and codec.loss_limited(2e6, 0) == codec.MAX_BITRATE
    enc = aiortc_patches.FastH264Encoder()
    enc.target_bitrate = 5_000_000  # the estimate allows the most
    for _ in range(3):
        enc.note_loss(0.25)
    assert enc.target_bitrate < 0.7 * codec.MAX_BITRATE
    enc.target_bitrate = 400_000 / codec.REMB_SHARE  # the estimate falls below the loss limit: it wins
    assert enc.target_bitrate == 400_000
    enc.target_bitrate = 5_000_000
    for _ in range(12):
        enc.note_loss(0.0)  # the link is clean again
    assert enc.target_bitrate == codec.MAX_BITRATE
