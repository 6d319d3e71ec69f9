"""The hooks into aiortc's internals: each still there, and each doing its job on a real
aiortc sender (a stub transport keeps what it sends)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from dyadic.engine.contracts import AUDIO_RATE, FrameTrace
from dyadic.engine.webrtc import aiortc_patches
from dyadic.engine.webrtc.aiortc_patches import NTP_UNIX_OFFSET, PlayoutDelayExtensions, audio_level_dbov
from dyadic.engine.webrtc.tracks import (
    AUDIO_SEND_DELAY,
    PLAYOUT_DELAY_BUFFERED,
    PLAYOUT_DELAY_ON_ARRIVAL,
    PLAYOUT_DELAY_URI,
    VIDEO_CLOCK,
    VIDEO_SEND_DELAY,
    SessionAudioTrack,
    SessionVideoTrack,
)


def test_every_hooked_name_is_where_the_tested_releases_have_it():
    """An aiortc/aioice upgrade that renames what a hook needs fails here (and at the server's
    start), loudly, instead of silently falling back to aiortc's own behaviour."""
    assert aiortc_patches.missing_hooks() == []
    assert aiortc_patches.untested_versions() == {}


def test_a_renamed_attribute_is_reported(monkeypatch):
    from aiortc.codecs.h264 import H264Encoder

    monkeypatch.delattr(H264Encoder, "_split_bitstream")
    assert aiortc_patches.missing_hooks() == ["H264Encoder._split_bitstream"]


class _CapturingTransport:
    """What aiortc's RTCRtpSender needs of its DTLS transport, keeping every datagram sent."""

    state = "connected"

    def __init__(self):
        self.sent: list[tuple[float, bytes]] = []

    def _register_rtp_sender(self, sender, parameters) -> None:
        pass

    def _unregister_rtp_sender(self, sender) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append((time.monotonic(), data))


def test_sender_reports_map_rtp_time_to_content_time():
    """The sender reports (RTCP SR) pair RTP time with the time the audio was captured, not with
    when it was sent, and audio goes out on a 20 ms beat after its content time: 1 s of audio
    captured at once still leaves paced, and its reports still say when it was captured."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
    from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket, is_rtcp

    aiortc_patches.install()
    from aiortc import rtcpeerconnection

    async def send_for(seconds: float):
        track = SessionAudioTrack(asyncio.get_running_loop())
        captured = time.monotonic() + 1.2  # 1 s whose first sample is due in 0.2 s, all here now
        track.push(np.zeros(AUDIO_RATE, np.float32), captured=captured)
        transport = _CapturingTransport()
        sender = rtcpeerconnection.RTCRtpSender(track, transport)
        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=AUDIO_RATE, channels=2, payloadType=111)
        await sender.send(RTCRtpSendParameters(codecs=[opus]))
        await asyncio.sleep(seconds)
        await sender.stop()
        return track, transport.sent

    track, sent = asyncio.run(send_for(2.2))  # the first report comes 0.5-1.5 s in
    media = [(t, RtpPacket.parse(d)) for t, d in sent if not is_rtcp(d)]
    reports = [p for _, d in sent if is_rtcp(d) for p in RtcpPacket.parse(d) if isinstance(p, RtcpSrPacket)]
    assert len(media) > 20 and reports
    first_rtp = media[0][1].timestamp  # sample 0
    to_wall = time.time() - time.monotonic()
    for sr in reports:
        content = track.content_epoch + ((sr.sender_info.rtp_timestamp - first_rtp) % 2**32) / AUDIO_RATE
        reported = sr.sender_info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET - to_wall
        assert abs(reported - content) < 0.002, (reported, content)
    # paced: each packet leaves AUDIO_SEND_DELAY after its last sample's content time (+ loop lag)
    for t, packet in media:
        end = track.content_epoch + (((packet.timestamp - first_rtp) % 2**32) + 960) / AUDIO_RATE
        assert end + AUDIO_SEND_DELAY - 0.002 <= t < end + AUDIO_SEND_DELAY + 0.05, t - end


def test_video_sender_reports_map_rtp_time_to_content_time():
    """The same for video: frames captured every 1/30 s but rendered late (here: offered 20 ms
    after capture, 10 ms in a few cases) leave at capture + VIDEO_SEND_DELAY, and the reports pair
    their RTP time with the capture. Every packet carries the playout-delay header extension next
    to aiortc's own: "render on arrival" while the track asks for it, the usual buffering after."""
    import struct

    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
    from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket, is_rtcp, unpack_header_extensions

    aiortc_patches.install()
    from aiortc import rtcpeerconnection

    async def send_for(n_frames: int):
        track = SessionVideoTrack(asyncio.get_running_loop(), repeat_after=2 / 30)
        transport = _CapturingTransport()
        sender = rtcpeerconnection.RTCRtpSender(track, transport)
        h264 = RTCRtpCodecParameters(
            mimeType="video/H264",
            clockRate=VIDEO_CLOCK,
            payloadType=102,
            parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
        )
        extensions = [
            RTCRtpHeaderExtensionParameters(id=9, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=5, uri=PLAYOUT_DELAY_URI),
        ]
        await sender.send(RTCRtpSendParameters(codecs=[h264], headerExtensions=extensions, muxId="0"))
        start = time.monotonic() + 0.1
        track.render_on_arrival = True
        for k in range(n_frames):
            if k == n_frames // 2:
                track.render_on_arrival = False
            trace = FrameTrace(k)
            trace.mark("captured", start + k / 30)
            await asyncio.sleep(max(0.0, start + k / 30 + (0.010 if k % 7 == 0 else 0.020) - time.monotonic()))
            track.offer(np.full((64, 64, 3), k % 255, np.uint8), trace)
        await asyncio.sleep(0.2)
        await sender.stop()
        return track, transport.sent, start

    _, sent, start = asyncio.run(send_for(66))  # 2.2 s: the first report comes 0.5-1.5 s in
    media = [(t, RtpPacket.parse(d)) for t, d in sent if not is_rtcp(d)]
    reports = [p for _, d in sent if is_rtcp(d) for p in RtcpPacket.parse(d) if isinstance(p, RtcpSrPacket)]
    assert reports
    frames = {}  # RTP timestamp -> when its first packet left
    for t, packet in media:
        frames.setdefault(packet.timestamp, t)
    first_rtp = min(frames)
    assert len(frames) >= 60
    to_wall = time.time() - time.monotonic()
    for sr in reports:
        content = start + ((sr.sender_info.rtp_timestamp - first_rtp) % 2**32) / VIDEO_CLOCK
        reported = sr.sender_info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET - to_wall
        assert abs(reported - content) < 0.002, (reported, content)
    for rtp, t in frames.items():  # every frame left at its capture + VIDEO_SEND_DELAY
        captured = start + ((rtp - first_rtp) % 2**32) / VIDEO_CLOCK
        assert VIDEO_SEND_DELAY - 0.002 <= t - captured < VIDEO_SEND_DELAY + 0.05, t - captured
    delays = []
    for _, data in sent:
        if not is_rtcp(data):
            profile, length = struct.unpack_from("!HH", data, 12)
            elements = dict(unpack_header_extensions(profile, data[16 : 16 + 4 * length]))
            assert elements[9] == b"0"  # aiortc's mid, still there
            value = int.from_bytes(elements[5], "big")
            delays.append((value >> 12, value & 0xFFF))
    changed = delays.index(PLAYOUT_DELAY_BUFFERED)
    assert changed > 20 and set(delays[:changed]) == {PLAYOUT_DELAY_ON_ARRIVAL}
    assert set(delays[changed:]) == {PLAYOUT_DELAY_BUFFERED}


def test_playout_delay_extension_in_both_header_forms_and_only_when_asked():
    """With a negotiated id up to 14 the element goes in the one-byte header form before aiortc's
    own; with a larger id everything is re-packed in the two-byte form; a track that does not ask
    (audio: no render_on_arrival) or a connection that did not negotiate it gets aiortc's header."""
    from types import SimpleNamespace

    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, unpack_header_extensions

    def header(track, playout_id):
        extensions = [RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]
        if playout_id is not None:
            extensions.append(RTCRtpHeaderExtensionParameters(id=playout_id, uri=PLAYOUT_DELAY_URI))
        mapping = PlayoutDelayExtensions(SimpleNamespace(track=track))
        mapping.configure(RTCRtpParameters(headerExtensions=extensions))
        return mapping.set(HeaderExtensions(mid="0"))

    video = SimpleNamespace(render_on_arrival=True)
    low, high = PLAYOUT_DELAY_ON_ARRIVAL
    expected = ((low << 12) | high).to_bytes(3, "big")
    for playout_id, form in ((5, 0xBEDE), (15, 0x1000)):
        profile, data = header(video, playout_id)
        assert profile == form and dict(unpack_header_extensions(profile, data)) == {1: b"0", playout_id: expected}
    plain = HeaderExtensionsMap()
    plain.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]
        )
    )
    aiortc_own = plain.set(HeaderExtensions(mid="0"))
    assert header(SimpleNamespace(), 5) == aiortc_own  # an audio track
    assert header(video, None) == aiortc_own  # the browser did not offer the extension


def test_audio_level_is_rfc_6465s_as_aiortc_computes_it():
    import math
    import struct

    import av

    def reference(frame):  # aiortc's loop over the first plane's samples, written out
        total = sum(s * s for (s,) in struct.iter_unpack("h", bytes(frame.planes[0])))
        rms = math.sqrt(total / (frame.samples * 32767 * 32767))
        return round(min(max(20 * math.log10(rms), -127), 0)) if rms > 0 else -127

    rng = np.random.default_rng(1)
    for scale in (0, 2, 300, 3000, 40000):
        for layout, channels in (("mono", 1), ("stereo", 2)):
            pcm = np.clip(rng.normal(size=(1, 960 * channels)) * scale, -32768, 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
            assert audio_level_dbov(frame) == reference(frame)
