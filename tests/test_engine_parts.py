"""The live engine's parts without a network: protocol, sources, batching, ICE filtering."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dyadic.datasets import load_interaction
from dyadic.engine import ice, protocol
from dyadic.engine.batching import SharedStepper
from dyadic.engine.sources import MicrophoneSource, MovementInbox, PlaybackSource
from dyadic.models.runtime import ReactionSession, load_runtime
from dyadic.models.shipped import default_model_path


@pytest.fixture(scope="module")
def runtime():
    return load_runtime(default_model_path("seamless"), "cpu")


def test_protocol_accepts_the_documented_messages():
    for msg in (
        '{"type": "play"}',
        '{"type": "seek", "seconds": 3}',
        '{"type": "loop", "on": false}',
        '{"type": "source", "kind": "browser-mic"}',
        '{"type": "ping", "t": 12.5}',
        '{"type": "trace", "on": true, "frame_id": true}',
    ):
        assert protocol.parse(msg).type in protocol.KNOWN_TYPES


@pytest.mark.parametrize(
    "text, request_type",
    [
        ('{"type": "seek", "seconds": NaN}', "seek"),
        ('{"type": "seek", "seconds": -1}', "seek"),
        ('{"type": "loop", "on": "yes"}', "loop"),
        ('{"type": "source", "kind": "clip"}', "source"),
        ('{"type": "trace", "on": 1}', "trace"),
        ('{"type": "trace", "on": true, "frame_id": "yes"}', "trace"),
        ('{"type": 3}', None),
        ('{"type": "nope"}', None),
    ],
)
def test_protocol_errors_name_the_request(text, request_type):
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse(text)
    assert err.value.request == request_type


def _sample():
    from dyadic.datasets import default_sample_root

    return default_sample_root()


def test_playback_source_plays_pauses_seeks_and_loops():
    interaction = load_interaction(_sample(), None)
    src = PlaybackSource(interaction, loop=True)
    first = src.read(0.0)
    assert first.position == 0.0 and len(first.audio) == round(48_000 / interaction.fps)
    np.testing.assert_array_equal(first.audio, interaction.speaker.audio()[: len(first.audio)])
    src.pause()
    paused = src.read(0.0)
    assert paused.position == pytest.approx(1 / interaction.fps) and not paused.audio.any()
    assert src.read(0.0).position == paused.position  # holds still
    src.play()
    src.seek(src.duration - 0.5 / interaction.fps)
    assert src.read(0.0).position == pytest.approx((src.n_frames - 1) / interaction.fps)
    assert src.read(0.0).position == 0.0  # looped
    src.set_loop(False)
    src.seek(src.duration)
    src.read(0.0)
    assert src.playing is False  # stopped at the end


def test_audio_leads_its_frames_for_a_recording_and_a_microphone():
    """A recording's audio goes to the audio track AUDIO_LEAD_FRAMES frames before the frame falls
    due (stamped with its own content time), to be sent before its content time; a live source's
    audio (silence: the user hears themselves) goes when its frame is read, stamped as many frames
    ahead. The video always asks for render-on-arrival."""
    import asyncio

    from dyadic.engine.session import AUDIO_LEAD_FRAMES, Session
    from dyadic.engine.tracks import AUDIO_GAP_TOLERANCE, AUDIO_LEAD_SEND_DELAY

    interaction = load_interaction(_sample(), None)
    loop = asyncio.new_event_loop()
    try:
        session = Session("t", loop, models={}, default_dataset=None)
        assert session.audio.send_delay == AUDIO_LEAD_SEND_DELAY < 0 and session.video.render_on_arrival
        session._source = PlaybackSource(interaction)
        period, n = 1 / interaction.fps, round(48_000 / interaction.fps)
        frames = [session._read(10.0 + k * period) for k in range(3)]
        assert [f.position for f in frames] == pytest.approx([k * period for k in range(3)])
        assert [f.captured for f in frames] == pytest.approx([10.0 + k * period for k in range(3)])
        assert session.audio._pushed == (3 + AUDIO_LEAD_FRAMES) * n  # audio up to frame 5 is out
        assert session.audio.content_epoch == pytest.approx(10.0 - n / 48_000)
        mic = MicrophoneSource("browser-mic", wait_s=0.0)
        try:
            session._source = mic
            session._read_ahead.clear()
            pushed = session.audio._pushed
            # nothing captured yet: the frame is silence that ends when it is due, right after
            # the recording's last audio; stamped AUDIO_LEAD_FRAMES ahead, the track fills the
            # frames in between with silence
            due = 10.0 + (3 + AUDIO_LEAD_FRAMES) * period
            assert session._read(due).captured == due and mic.underruns == 1
            gap = AUDIO_LEAD_FRAMES * n
            assert gap > AUDIO_GAP_TOLERANCE
            assert session.audio._pushed == pushed + n + gap and session.audio.gap_samples == gap
            assert not np.concatenate(session.audio._chunks)[-(n + gap) :].any()  # silence goes out
        finally:
            mic.close()
    finally:
        loop.close()


def test_microphone_source_bounds_its_backlog_and_counts_underruns():
    mic = MicrophoneSource("browser-mic", fps=30.0, max_backlog_s=0.1, wait_s=0.0)
    mic.push(np.ones(48_000, np.float32))  # a second arrives at once (a burst after a stall)
    assert mic.trimmed_samples == 48_000 - 4_800
    frames = [mic.read(0.0) for _ in range(3)]
    assert all(len(f.audio) == 1600 and f.audio.all() for f in frames)
    assert mic.underruns == 0
    late = mic.read(0.0)  # 0.1 s held 3 frames; the 4th finds the buffer empty
    assert mic.underruns == 1 and not late.audio.any()


def test_microphone_keeps_little_audio_queued_behind_a_frame():
    """By default what stays queued after a read (latency every frame waits behind) is at most a
    browser's 20 ms packet and a little jitter: 55 ms held, one 33 ms frame read."""
    mic = MicrophoneSource("browser-mic", fps=30.0, wait_s=0.0)
    mic.push(np.ones(9_600, np.float32))  # 0.2 s at once (a backlog built up before the first read)
    arrived = time.monotonic()
    frame = mic.read(0.0)
    assert arrived - frame.captured <= 0.055 - 1 / 30 + 2e-3
    assert mic.underruns == 0 and len(frame.audio) == 1600


def test_microphone_frames_carry_the_capture_time_of_their_last_sample():
    """A frame's `captured` (the content time of its last sample) is the newest push's arrival
    minus what still waits behind it, so a burst after a stall gives frames 1/fps apart, not one
    shared arrival time; a frame padded with silence ends when it is due."""
    mic = MicrophoneSource("browser-mic", fps=30.0, max_backlog_s=0.2, wait_s=0.0)
    mic.push(np.ones(4_800, np.float32))  # 0.1 s at once
    arrived = time.monotonic()
    frames = [mic.read(50.0) for _ in range(3)]
    assert [f.captured for f in frames] == pytest.approx([arrived - 2 / 30, arrived - 1 / 30, arrived], abs=2e-3)
    assert mic.read(50.0).captured == 50.0  # underrun: silence, due time


def test_microphone_source_waits_briefly_for_late_audio():
    mic = MicrophoneSource("local-mic", fps=30.0, wait_s=0.5)
    threading.Timer(0.05, lambda: mic.push(np.full(1600, 0.5, np.float32))).start()
    t = time.monotonic()
    frame = mic.read(0.0)
    assert 0.03 < time.monotonic() - t < 0.4 and frame.audio.min() == 0.5 and mic.underruns == 0


def test_movement_inbox_shapes_and_freshness(runtime):
    inbox = MovementInbox(runtime.layout)
    assert inbox.latest() is None
    inbox.push_channels({"smplh:global_orient": [0.1, 0.2, 0.3]})
    values, valid = inbox.latest()
    g = runtime.layout.names.index("smplh:global_orient")
    assert valid[g] == 1 and valid.sum() == 1
    np.testing.assert_allclose(values[runtime.layout.slices["smplh:global_orient"]], [0.1, 0.2, 0.3])
    c, ng = runtime.layout.size, len(runtime.layout.names)
    inbox.push_binary(np.concatenate([np.ones(c), np.zeros(ng)]).astype("<f4").tobytes())
    assert not inbox.latest()[1].any()  # all masked by the validity tail
    with pytest.raises(ValueError, match="float32"):
        inbox.push_binary(b"\0" * 12)
    with pytest.raises(ValueError, match="finite"):
        inbox.push_binary(np.full(c, np.nan, "<f4").tobytes())
    assert inbox.latest(now=time.monotonic() + 1.0) is None  # stale after 0.5 s


def test_shared_stepper_batches_sessions_without_mixing_them(runtime):
    """Four threads stepping through one SharedStepper get exactly what each would alone."""
    stepper = SharedStepper(runtime)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((4, 40, 40)).astype(np.float32)  # session, frame, mel
    expected, got = [], [None] * 4
    for s in range(4):
        alone = ReactionSession(runtime, seed=s, fps=30)
        expected.append(np.stack([alone.step(a, None, None) for a in audio[s]]))

    def run(s):
        shared = ReactionSession(stepper, seed=s, fps=30)
        got[s] = np.stack([shared.step(a, None, None) for a in audio[s]])

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(4):
        np.testing.assert_allclose(got[s], expected[s], atol=1e-5)
    assert stepper.calls == 160 and stepper.batches <= 160


def test_loopback_sdp_keeps_only_loopback_candidates():
    sdp = "\r\n".join(
        [
            "v=0",
            "a=candidate:1 1 udp 2122260223 192.168.1.7 50000 typ host",
            "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host",
            "a=candidate:3 1 udp 2122260223 0b8e-uuid.local 50002 typ host",
            "a=candidate:4 1 udp 2122260223 ::1 50003 typ host",
            "a=end-of-candidates",
        ]
    )
    out = ice.loopback_sdp(sdp)
    assert "127.0.0.1" in out and "::1" in out and "192.168" not in out and ".local" not in out
    assert out.startswith("v=0") and "end-of-candidates" in out


def test_ice_configuration_has_no_stun_unless_given():
    assert ice.rtc_configuration().iceServers == []
    servers = ice.browser_ice_servers(["stun:127.0.0.1:3478"], ["turn:alice:secret@127.0.0.1:3478"])
    assert servers == [
        {"urls": "stun:127.0.0.1:3478"},
        {"urls": "turn:127.0.0.1:3478", "username": "alice", "credential": "secret"},
    ]


# -- media clocks -----------------------------------------------------------------------------------
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
    import asyncio

    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
    from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket, is_rtcp

    from dyadic.engine.tracks import AUDIO_SEND_DELAY, NTP_UNIX_OFFSET, SessionAudioTrack, install_aiortc_hooks

    install_aiortc_hooks()
    from aiortc import rtcpeerconnection

    async def send_for(seconds: float):
        track = SessionAudioTrack(asyncio.get_running_loop())
        captured = time.monotonic() + 1.2  # 1 s whose first sample is due in 0.2 s, all here now
        track.push(np.zeros(48_000, np.float32), captured=captured)
        transport = _CapturingTransport()
        sender = rtcpeerconnection.RTCRtpSender(track, transport)
        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48_000, channels=2, payloadType=111)
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
        content = track.content_epoch + ((sr.sender_info.rtp_timestamp - first_rtp) % 2**32) / 48_000
        reported = sr.sender_info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET - to_wall
        assert abs(reported - content) < 0.002, (reported, content)
    # paced: each packet leaves AUDIO_SEND_DELAY after its last sample's content time (+ loop lag)
    for t, packet in media:
        end = track.content_epoch + (((packet.timestamp - first_rtp) % 2**32) + 960) / 48_000
        assert end + AUDIO_SEND_DELAY - 0.002 <= t < end + AUDIO_SEND_DELAY + 0.05, t - end


def test_video_sender_reports_map_rtp_time_to_content_time():
    """The same for video: frames captured every 1/30 s but rendered late (here: offered 20 ms
    after capture, 10 ms in a few cases) leave at capture + VIDEO_SEND_DELAY, and the reports pair
    their RTP time with the capture. Every packet carries the playout-delay header extension next
    to aiortc's own: "render on arrival" while the track asks for it, the usual buffering after."""
    import asyncio
    import struct

    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
    from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket, is_rtcp, unpack_header_extensions

    from dyadic.engine.tracks import (
        NTP_UNIX_OFFSET,
        PLAYOUT_DELAY_BUFFERED,
        PLAYOUT_DELAY_ON_ARRIVAL,
        PLAYOUT_DELAY_URI,
        VIDEO_CLOCK,
        VIDEO_SEND_DELAY,
        FrameTrace,
        SessionVideoTrack,
        install_aiortc_hooks,
    )

    install_aiortc_hooks()
    from aiortc import rtcpeerconnection

    async def send_for(n_frames: int):
        track = SessionVideoTrack(asyncio.get_running_loop(), fps=30.0)
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

    track, sent, start = asyncio.run(send_for(66))  # 2.2 s: the first report comes 0.5-1.5 s in
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

    from dyadic.engine.tracks import PLAYOUT_DELAY_ON_ARRIVAL, PLAYOUT_DELAY_URI, PlayoutDelayExtensions

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


def test_tracks_stamp_content_time():
    """Video pts is the frame's capture time (the end of its audio); the sender, once it has encoded
    a frame, holds it until its send time (capture + VIDEO_SEND_DELAY), and a frame rendered later
    than that goes at once; a repeat ages from the last frame by the time since it was sent, and
    goes at once. Audio samples stay content time across a gap in the capture (silence
    fills it), and the audio clock moves back when samples run ahead of the capture."""
    import asyncio

    from dyadic.engine.tracks import (
        AUDIO_GAP_TOLERANCE,
        VIDEO_CLOCK,
        VIDEO_SEND_DELAY,
        FrameTrace,
        SessionAudioTrack,
        SessionVideoTrack,
    )

    async def run():
        loop = asyncio.get_running_loop()
        video = SessionVideoTrack(loop, fps=30.0)
        trace = FrameTrace(0)
        trace.mark("captured", time.monotonic())
        video.offer(np.zeros((32, 32, 3), np.uint8), trace)
        first = await video.recv()
        first_pts = first.pts
        assert "sent" not in trace.times  # not before the sender's before_send
        await video.before_send()  # what ContentClockSender does once the frame is encoded
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
        audio.push(np.zeros(1600, np.float32), captured=10.0 + 1600 / 48_000 + 0.2)  # 200 ms skipped
        gap = audio.gap_samples
        audio.push(np.zeros(9600, np.float32), captured=10.0 + 2 * 1600 / 48_000 + 0.2)  # 0.2 s in no time
        return first_pts, held, late_wait, late_pts, repeat.pts, repeat_age, audio, gap, (video.sent, video.repeated)

    first_pts, held, late_wait, late_pts, repeat_pts, repeat_age, audio, gap, video_counts = asyncio.run(run())
    assert VIDEO_SEND_DELAY <= held < VIDEO_SEND_DELAY + 0.03
    assert late_wait < 0.01 and late_pts == first_pts + 1  # RTP time never goes back
    assert video_counts == (2, 1)  # sent (the repeat is counted apart), repeated
    assert (repeat_pts - late_pts) / VIDEO_CLOCK == pytest.approx(repeat_age, abs=0.01)
    assert gap == pytest.approx(0.2 * 48_000, abs=1)
    # the third push ends 0.2 s + 2 frames after the start but holds 0.2 s more than that: 8000
    # samples ahead (> AUDIO_GAP_TOLERANCE), so sample 0 is moved that much earlier
    assert audio.reanchored == 1 and 8000 > AUDIO_GAP_TOLERANCE
    assert audio.content_epoch == pytest.approx(10.0 - (1600 + 8000) / 48_000, abs=1e-9)


@pytest.mark.parametrize("size", [(640, 480), (161, 121)])  # 161: rows padded in the frame's plane
@pytest.mark.parametrize("channels", [3, 4])
def test_video_frame_holds_the_pixels_it_was_given(size, channels):
    from dyadic.engine.tracks import video_frame

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


def test_audio_level_is_rfc_6465s_as_aiortc_computes_it():
    import math
    import struct

    import av

    from dyadic.engine.tracks import audio_level_dbov

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
