"""The data contracts every dataset reader produces: MotionSpec, ParticipantTrack, Interaction.

A reader turns files on disk into `Interaction`s; everything downstream (adapters, model, renderer,
replay, engine) sees only these types, never a dataset's file layout.

Conventions (the same for every dataset):
- one row per video frame; `fps` is the recording's real rate (30, 30000/1001, ...);
- frame k covers audio samples `audio_sample(k)` = `round(k*48000/fps)` to `frame_end(k)` at 48 kHz
  (AUDIO_RATE, the one constant for that rate);
- every channel group carries a per-frame validity mask; invalid frames are *bridged* in the
  array (held/interpolated from the nearest valid frames) so that a renderer never draws garbage,
  and the mask says which frames were bridged. A missing group is absent, not zero-filled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AUDIO_RATE = 48_000
log = logging.getLogger("dyadic.datasets")


def audio_sample(frame: int | float, fps: float, rate: int = AUDIO_RATE) -> int:
    """First audio sample of video frame `frame` (sample-accurate, no drift over hours)."""
    return int(round(frame * rate / fps))


def frame_end(frame: int, fps: float, rate: int = AUDIO_RATE) -> int:
    """The audio sample where video frame `frame` ends (the next frame's first): its audio is
    samples [audio_sample(frame), frame_end(frame))."""
    return audio_sample(frame + 1, fps, rate)


@dataclass(frozen=True)
class ChannelGroup:
    """One named group of per-frame channels, e.g. `smplh:body_pose` with shape (21, 3)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "axis_angle" | "position" | "value" | "probability" | "binary"
    description: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class MotionSpec:
    """The named channel groups of a dataset; the model is built from one, nothing hard-codes one."""

    name: str
    groups: tuple[ChannelGroup, ...]

    def __getitem__(self, name: str) -> ChannelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"{self.name} spec has no channel group {name!r}")

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def size(self) -> int:
        return sum(g.size for g in self.groups)


@dataclass(frozen=True)
class Segment:
    """A timed span in seconds from the clip start: a VAD speech segment or a transcript segment."""

    start: float
    end: float
    text: str = ""


@dataclass
class ParticipantTrack:
    """One participant of one interaction, as read from disk."""

    file_id: str  # opaque: participant ids may end in a letter (P0602A)
    participant: str  # e.g. "P0947"; REACT: "speaker" / "listener"
    fps: float
    n_frames: int
    channels: dict[str, np.ndarray]  # group name -> float32 (n_frames, *group.shape), bridged
    valid: dict[str, np.ndarray]  # group name -> bool (n_frames,): False where bridged
    audio_path: Path | None = None
    audio_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    vad: list[Segment] = field(default_factory=list)
    transcript: list[Segment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one readable line each: file + field

    def audio(self) -> np.ndarray:
        """Mono float32 audio at 48 kHz (empty when the file has none)."""
        if self.audio_loader is None:
            return np.zeros(0, np.float32)
        from .errors import DatasetError

        try:
            return self.audio_loader()
        except DatasetError as exc:  # the header looked fine but the samples do not decode
            line = f"{exc}: no audio"
            log.warning(line)
            self.problems.append(line)
            self.audio_loader = None
            return np.zeros(0, np.float32)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def frame(self, k: int) -> dict[str, np.ndarray]:
        """Frame k of every channel group: group name -> (*group.shape) values."""
        return {name: arr[k] for name, arr in self.channels.items()}

    def speaking(self, t: float) -> bool:
        """True when the VAD says this participant speaks at time t (seconds)."""
        return any(s.start <= t < s.end for s in self.vad)

    def talk_time(self) -> float:
        return float(sum(max(0.0, s.end - s.start) for s in self.vad))


@dataclass
class Interaction:
    """Two participants of one interaction on one clock: the speaker and the listener.

    Seamless Interaction has no fixed roles: the speaker is the participant who talks more (VAD),
    which the reader decides; REACT has them in its folder names.
    """

    id: str  # Seamless: V00_S0809_I00000582; REACT: "{split}/session3/Camera-..."
    dataset: str  # "seamless" | "react"
    spec: MotionSpec
    speaker: ParticipantTrack
    listener: ParticipantTrack
    problems: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.speaker.fps

    @property
    def n_frames(self) -> int:
        """Frames both participants have (the shorter of the two)."""
        return min(self.speaker.n_frames, self.listener.n_frames)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def audio_span(self, k0: int, k1: int) -> tuple[int, int]:
        """Audio sample range [s0, s1) of video frames [k0, k1) at 48 kHz."""
        return audio_sample(k0, self.fps), audio_sample(k1, self.fps)


@dataclass
class InteractionInfo:
    """What `dyadic data ls` shows, found without decoding the arrays."""

    id: str
    dataset: str
    participants: list[str]
    n_frames: int
    fps: float
    groups: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps if self.fps else 0.0

    @property
    def families(self) -> list[str]:
        """The families of the feature groups present (`face`, `movement`, `smplh`, ...), sorted."""
        return sorted({g.split(":")[0] for g in self.groups})
