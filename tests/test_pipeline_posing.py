"""The one adapter stage: dataset channels become the AvatarPose of either person."""

from __future__ import annotations

import numpy as np

from dyadic.datasets import load_interaction
from dyadic.engine.contracts import ListenerMotion, SpeakerFrame
from dyadic.engine.pipeline.posing import Posing
from dyadic.renderer.adapters import seamless_pose
from dyadic.renderer.idle import idle_pose, seated_pose


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("body_pose", "global_orient", "face"))


def test_recorded_speaker_and_listener_through_their_dataset_adapter(sample_root):
    interaction = load_interaction(sample_root / "seamless", None)
    frame = SpeakerFrame(
        np.zeros(1600, np.float32),
        captured=0.0,
        channels=interaction.speaker.frame(5),
        recorded_listener=interaction.listener.frame(5),
    )
    posing = Posing("seamless", interaction.fps, has_model=False)
    assert _same(posing.speaker(5, frame), seamless_pose(interaction.speaker.frame(5)))
    assert _same(posing.listener(5, frame, None), seamless_pose(interaction.listener.frame(5)))


def test_the_models_listener_wins_and_is_held_between_its_frames(sample_root):
    interaction = load_interaction(sample_root / "seamless", None)
    frame = SpeakerFrame(np.zeros(1600, np.float32), captured=0.0, recorded_listener=interaction.listener.frame(0))
    posing = Posing("seamless", 30.0, has_model=True)
    model = ListenerMotion(0, interaction.listener.frame(9))
    first = posing.listener(0, frame, model)
    assert _same(first, seamless_pose(interaction.listener.frame(9)))
    assert posing.listener(1, frame, None) is first  # no model frame this time: hold, not the recording


def test_nothing_to_pose_from_idles_seated():
    frame = SpeakerFrame(np.zeros(1600, np.float32), captured=0.0)
    posing = Posing(None, 30.0, has_model=False)
    seated = seated_pose()
    listener = posing.listener(30, frame, None)
    assert _same(listener, idle_pose(1.0, seed=2, base=seated))
    speaker = posing.speaker(30, frame)
    for pose in (speaker, listener):  # thighs forward and knees bent, as the datasets' people sit
        assert pose.body_pose[0, 0] < -1.0 and pose.body_pose[3, 0] > 1.0
    assert speaker.weight("jawOpen") == 0.0  # silence: the mouth stays shut


def test_a_voice_alone_moves_the_speakers_mouth_causally():
    """A microphone source: no movement data, only the frame's audio. The jaw follows the voice
    within a few frames and closes in the pauses; the body keeps idling."""
    fps, n = 30.0, 1600
    t = np.arange(n) / 48_000
    voice = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    silence = np.zeros(n, np.float32)
    posing = Posing("seamless", fps, has_model=True)  # a microphone session: the model's dataset
    audio = [silence] * 10 + [voice] * 10 + [silence] * 20
    poses = [posing.speaker(k, SpeakerFrame(a, captured=0.0)) for k, a in enumerate(audio)]
    jaw = np.array([p.weight("jawOpen") for p in poses])
    assert jaw[:10].max() == 0.0
    assert jaw[12] > 0.4 and jaw[19] > 0.5  # opens within 3 frames of the voice
    assert jaw[-1] < 0.05 and jaw[29] < jaw[19]  # and closes in the pause
    assert not _same(poses[0], poses[-1])  # never frozen: the body idles meanwhile
    assert all(p.body_pose[0, 0] < -1.0 for p in poses)  # seated throughout


def test_face_only_data_is_framed_as_faces():
    assert Posing("react", 30.0, has_model=False).framing == "faces"
    assert Posing("seamless", 30.0, has_model=False).framing == "body"
    assert Posing(None, 30.0, has_model=False).framing == "body"  # a voice alone: a seated body
