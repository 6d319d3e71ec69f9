"""The one adapter stage: a dataset's channels become the AvatarPose each person is drawn from.

For the speaker (the recording's channels, or movement pushed by a tracker), for the model's
listener, and for the recording's real listener alike, through the dataset's pose adapter
(renderer/adapters.py, one documented table per dataset). A person with nothing to show idles,
seated (renderer/idle.py), and a speaker who is only a voice (a microphone) talks with it, so the
picture never freezes in a rest pose; `dyadic replay` poses its frames here too.
"""

from __future__ import annotations

from dyadic.renderer.adapters import adapter_for, framing_for
from dyadic.renderer.idle import VoicedSpeaker, idle_pose, seated_pose

from ..contracts import AvatarPose, Channels, ListenerMotion, SpeakerFrame

SPEAKER_IDLE_SEED, LISTENER_IDLE_SEED = 1, 2  # two different idle motions


class Posing:
    """Poses of one session's two people, for the dataset its source plays (None: audio only).

    `listener()` keeps the last listener pose when a frame brings none (a model between two
    feature frames), and idles only when there is neither a model nor a dataset to pose from."""

    def __init__(self, dataset: str | None, fps: float, has_model: bool):
        self._adapt = adapter_for(dataset) if dataset else None
        self.framing = framing_for(dataset)  # faces for data with no body
        self._fps = fps
        self._has_model = has_model
        self._seated = seated_pose()
        self._listener = idle_pose(0.0, seed=LISTENER_IDLE_SEED, base=self._seated)
        self._voice = VoicedSpeaker(seed=SPEAKER_IDLE_SEED)

    def channels(self, channels: Channels) -> AvatarPose:
        """One frame of the dataset's channels -> its pose (a dataset is set)."""
        if self._adapt is None:
            raise ValueError("posing: no dataset to read channels of")
        return self._adapt(channels)

    def speaker(self, index: int, frame: SpeakerFrame) -> AvatarPose:
        """The recording's (or pushed) movement; for a voice alone, seated and talking with it."""
        if self._adapt is not None and frame.channels is not None:
            return self._adapt(frame.channels)
        return self._voice.pose(index / self._fps, frame.audio)

    def listener(self, index: int, frame: SpeakerFrame, model: ListenerMotion | None) -> AvatarPose:
        """The model's listener; without a model, the recording's; with neither, an idle one."""
        if model is not None:
            self._listener = self.channels(model.channels)
        elif self._has_model:
            pass  # the model has not spoken yet: hold
        elif self._adapt is not None and frame.recorded_listener is not None:
            self._listener = self._adapt(frame.recorded_listener)
        elif self._adapt is None:
            self._listener = idle_pose(index / self._fps, seed=LISTENER_IDLE_SEED, base=self._seated)
        return self._listener
