"""Sources: a recording plays, pauses, seeks and loops; a microphone bounds its backlog."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dyadic.datasets import load_interaction
from dyadic.engine.contracts import AUDIO_RATE, frame_end
from dyadic.engine.pipeline.sources import IdleSource, MicrophoneSource, PlaybackSource


def test_playback_source_plays_pauses_seeks_and_loops(sample_root):
    interaction = load_interaction(sample_root, None)
    src = PlaybackSource(interaction, loop=True)
    first = src.read(0.0)
    assert first.position == 0.0 and len(first.audio) == frame_end(0, interaction.fps)
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


def test_microphone_source_bounds_its_backlog_and_counts_underruns():
    mic = MicrophoneSource("browser-mic", fps=30.0, max_backlog_s=0.1, wait_s=0.0)
    mic.push(np.ones(AUDIO_RATE, np.float32))  # a second arrives at once (a burst after a stall)
    assert mic.trimmed_samples == AUDIO_RATE - 4_800
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


def test_a_recordings_frame_carries_both_peoples_channels_and_no_renderer_types(sample_root):
    interaction = load_interaction(sample_root, None)
    src = PlaybackSource(interaction)
    src.seek(4 / interaction.fps)
    frame = src.read(0.0)
    assert src.dataset == interaction.dataset and frame.position == 4 / interaction.fps
    for mine, recorded in ((frame.channels, interaction.speaker), (frame.recorded_listener, interaction.listener)):
        assert mine.keys() == recorded.channels.keys()
        assert all(np.array_equal(mine[g], recorded.channels[g][4]) for g in mine)
    assert all(isinstance(v, np.ndarray) for v in frame.channels.values())


def test_before_a_source_is_picked_the_speaker_is_silent():
    src = IdleSource()
    frame = src.read(3.0)
    assert len(frame.audio) == frame_end(0, 30.0) and not frame.audio.any() and frame.captured == 3.0
    assert frame.channels is None and frame.movement is None and src.dataset is None
