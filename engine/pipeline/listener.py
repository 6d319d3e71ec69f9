"""The listener stage: the speaker's audio and movement -> the model's listener, frame by frame.

Causal log-mel features of the audio heard so far, then one step of the reaction model (shared by
every session through batching.SharedStepper), holding the session's recurrent state, previous
frame and latent (models/runtime.py ReactionSession). Every due frame goes through it, rendered or
not: the model must hear all the audio.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from dyadic.models.runtime import LatentSchedule, ReactionSession

from ..contracts import ListenerMotion, SpeakerFrame, Stepper


class ListenerStep(NamedTuple):
    frame: ListenerMotion | None  # None when the audio completed no feature frame
    features_end: float  # monotonic marks, for the trace and the telemetry
    model_end: float


class ListenerStage:
    """One session's listener for one source: a fresh reaction state at the source's rate."""

    def __init__(self, stepper: Stepper, seed: int, fps: float):
        self._reaction = ReactionSession(stepper, seed=seed, fps=fps)
        self._layout = stepper.layout

    def resample(self, seed: int) -> None:
        """A new latent seed from the next frame on (a new sample of the reaction)."""
        r = self._reaction
        r.latents = LatentSchedule(r.runtime.config.latent, seed, r.fps)

    def step(self, index: int, frame: SpeakerFrame) -> ListenerStep:
        features = self._reaction.features.push(frame.audio)
        features_end = time.monotonic()
        row = None
        for feature in features:  # exactly one per frame at the session's rate
            row = self._reaction.step(feature, frame.movement, frame.movement_valid)
        model_end = time.monotonic()
        listener = None if row is None else ListenerMotion(index, self._layout.unflatten(row))
        return ListenerStep(listener, features_end, model_end)
