"""Every source's audio leaves ahead of its video: a recording's read ahead, a live source's
silence stamped ahead."""

from __future__ import annotations

import asyncio

import pytest

from dyadic.datasets import load_interaction
from dyadic.engine.contracts import AUDIO_RATE, frame_end
from dyadic.engine.pipeline.audio_lead import AUDIO_LEAD_FRAMES, AudioLead
from dyadic.engine.pipeline.session import Session
from dyadic.engine.pipeline.sources import MicrophoneSource, PlaybackSource
from dyadic.engine.webrtc.tracks import AUDIO_GAP_TOLERANCE, AUDIO_LEAD_SEND_DELAY, SessionAudioTrack


def test_a_session_sends_its_audio_ahead_and_shows_video_on_arrival():
    loop = asyncio.new_event_loop()
    try:
        session = Session("t", loop, models={}, default_dataset=None)
        assert session.audio.send_delay == AUDIO_LEAD_SEND_DELAY < 0 and session.video.render_on_arrival
    finally:
        loop.close()


def test_audio_leads_its_frames_for_a_recording_and_a_microphone(sample_root):
    """A recording's audio goes to the audio track AUDIO_LEAD_FRAMES frames before the frame falls
    due (stamped with its own content time), to be sent before its content time; a live source's
    audio (silence: the user hears themselves) goes when its frame is read, stamped as many frames
    ahead."""
    interaction = load_interaction(sample_root, None)
    loop = asyncio.new_event_loop()
    try:
        audio = SessionAudioTrack(loop)
        lead = AudioLead(audio)
        recording = PlaybackSource(interaction)
        period, n = 1 / interaction.fps, frame_end(0, interaction.fps)
        frames = [lead.read(recording, 10.0 + k * period) for k in range(3)]
        assert [f.position for f in frames] == pytest.approx([k * period for k in range(3)])
        assert [f.captured for f in frames] == pytest.approx([10.0 + k * period for k in range(3)])
        assert audio.pushed_samples == (3 + AUDIO_LEAD_FRAMES) * n  # audio up to frame 5 is out
        assert audio.content_epoch == pytest.approx(10.0 - n / AUDIO_RATE)
        mic = MicrophoneSource("browser-mic", wait_s=0.0)
        try:
            lead.reset()
            pushed = audio.pushed_samples
            # nothing captured yet: the frame is silence that ends when it is due, right after
            # the recording's last audio; stamped AUDIO_LEAD_FRAMES ahead, the track fills the
            # frames in between with silence
            due = 10.0 + (3 + AUDIO_LEAD_FRAMES) * period
            assert lead.read(mic, due).captured == due and mic.underruns == 1
            gap = AUDIO_LEAD_FRAMES * n
            assert gap > AUDIO_GAP_TOLERANCE
            assert audio.pushed_samples == pushed + n + gap and audio.gap_samples == gap
            assert not audio.backlog()[-(n + gap) :].any()  # silence goes out
        finally:
            mic.close()
    finally:
        loop.close()
