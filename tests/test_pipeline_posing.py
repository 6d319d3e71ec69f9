"""The one adapter stage: dataset channels become the AvatarPose of either person."""

from __future__ import annotations

import numpy as np

from dyadic.datasets import load_interaction
from dyadic.engine.contracts import ListenerMotion, SpeakerFrame
from dyadic.engine.pipeline.posing import Posing
from dyadic.renderer.adapters import seamless_pose
from dyadic.renderer.idle import idle_pose


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


def test_nothing_to_pose_from_idles():
    frame = SpeakerFrame(np.zeros(1600, np.float32), captured=0.0)
    posing = Posing(None, 30.0, has_model=False)
    assert _same(posing.speaker(30, frame), idle_pose(1.0, seed=1))
    assert _same(posing.listener(30, frame, None), idle_pose(1.0, seed=2))
