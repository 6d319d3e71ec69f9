"""Offline replay to MP4, on real generated files, real smplx, real pyrender and real PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic.datasets import load_interaction
from dyadic.datasets.interaction import AUDIO_RATE, audio_sample
from dyadic.engine.offline.replay import exact_rate, replay


@pytest.fixture(scope="module")
def avatar():
    from dyadic.renderer.avatar import Avatar

    return Avatar()


@pytest.fixture(scope="module")
def renderer(avatar):
    from dyadic.renderer.offscreen import DyadRenderer

    with DyadRenderer(avatar, size=(320, 240)) as r:
        yield r


@pytest.mark.parametrize("clip, fps", [("V00_S0809_I00000582", 30), ("V00_S0809_I00000583", 30000 / 1001)])
def test_replay_mp4_matches_the_clip(sample_root, avatar, renderer, tmp_path, clip, fps, decode_mp4):
    interaction = load_interaction(sample_root / "seamless", clip)
    assert interaction.fps == pytest.approx(fps)
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=2.0)
    n = round(2.0 * fps)
    assert result.frames == n and result.path.exists()
    assert not (tmp_path / "r.mp4.part").exists()

    frames, rate, audio = decode_mp4(result.path)
    assert len(frames) == n  # every frame, none dropped or duplicated
    assert rate == exact_rate(fps)  # 29.97 stays 30000/1001, not 30
    expected = audio_sample(n, fps)
    # AAC works in 1024-sample blocks: the decoded track may end up to one block longer
    assert expected <= len(audio) <= expected + 1024
    assert frames[0].shape == (240, 320, 3)


def test_replay_audio_is_the_speakers_in_sync(sample_root, avatar, renderer, tmp_path, decode_mp4):
    interaction = load_interaction(sample_root / "seamless")
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=3.0)
    _, _, audio = decode_mp4(result.path)
    source = interaction.speaker.audio()[: audio_sample(result.frames, result.fps)]
    other = interaction.listener.audio()[: len(source)]
    a = audio[: len(source)]
    # the speaker's voice (through lossy AAC), not the listener's
    assert np.corrcoef(a, source)[0, 1] > 0.85
    assert abs(np.corrcoef(a, other)[0, 1]) < 0.5
    # and no offset: the cross-correlation peaks at lag 0 (within 1 ms)
    lags = range(-96, 97)
    window = slice(4800, len(source) - 4800)
    score = [float(np.dot(a[window], np.roll(source, lag)[window])) for lag in lags]
    assert abs(list(lags)[int(np.argmax(score))]) <= AUDIO_RATE // 1000


def test_replay_shows_both_avatars_moving(sample_root, avatar, renderer, tmp_path, decode_mp4):
    interaction = load_interaction(sample_root / "seamless")
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=2.0)
    frames, _, _ = decode_mp4(result.path)
    first, last = frames[0].astype(int), frames[-1].astype(int)
    half = first.shape[1] // 2
    for side in (slice(0, half), slice(half, None)):  # speaker left, listener right
        assert np.abs(first[:, side] - last[:, side]).sum(axis=2).max() > 60


def test_replay_react_clip(sample_root, avatar, renderer, tmp_path, decode_mp4):
    interaction = load_interaction(sample_root / "react")
    result = replay(interaction, tmp_path / "react.mp4", avatar=avatar, renderer=renderer, seconds=1.0)
    frames, _, audio = decode_mp4(result.path)
    assert len(frames) == 30 and len(audio) >= audio_sample(30, 30.0)


def test_captions_name_each_person_and_can_be_left_out(sample_root, avatar, renderer, tmp_path, decode_mp4):
    from dyadic.engine.offline.replay import caption_texts

    interaction = load_interaction(sample_root / "seamless")
    speaker = interaction.speaker.participant
    assert caption_texts(interaction, False, False) == (
        f"speaker {speaker}, recorded",
        f"listener {interaction.listener.participant}, recorded",
    )
    assert caption_texts(interaction, True, True)[1] == "listener: the model (blue: the recorded one)"
    react = load_interaction(sample_root / "react")
    assert caption_texts(react, True, False) == ("speaker, recorded", "listener: the model")
    with_captions = replay(interaction, tmp_path / "c.mp4", avatar=avatar, renderer=renderer, seconds=0.2)
    without = replay(interaction, tmp_path / "n.mp4", avatar=avatar, renderer=renderer, seconds=0.2, captions=False)
    a, b = (decode_mp4(r.path)[0][0].astype(int) for r in (with_captions, without))
    changed = np.abs(a - b).max(axis=2) > 40
    h, w = changed.shape
    assert changed[int(h * 0.85) :, : w // 2].any() and changed[int(h * 0.85) :, w // 2 :].any()  # both corners
    assert not changed[: int(h * 0.7)].any()  # nothing above the captions


def test_face_only_data_is_replayed_as_two_faces(sample_root, avatar, renderer, tmp_path, decode_mp4):
    from dyadic.renderer.offscreen import DIVIDER_RGB

    interaction = load_interaction(sample_root / "react")
    result = replay(interaction, tmp_path / "faces.mp4", avatar=avatar, renderer=renderer, seconds=0.2)
    frame = decode_mp4(result.path)[0][0].astype(int)
    h, w = frame.shape[:2]
    divider = np.round(np.array(DIVIDER_RGB) * 255)
    column = frame[: int(h * 0.8), w // 2 - 1]  # above the captions
    assert np.abs(column - divider).max(axis=1).mean() < 12  # the line between the two faces (through H.264)
