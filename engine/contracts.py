"""The data at every hand-off of a live frame, and the protocols of the stages that make it.

    Source.read(due) ──SpeakerFrame──> listener stage ──ListenerMotion──> posing ──AvatarPose x 2──>
    render stage ──RenderJob──> render worker ──WorkerFrame──> video track ──> browser
    Source audio ──────────────────────────────────────────────────────> audio track ──> browser

    the listener stage runs the model: StepInputs ──Stepper.step──> StepOutputs (batched over sessions)

Every frame carries a FrameTrace: the instants it passed each mark of its path, on the server's
monotonic clock. The marks and the intervals between them have one vocabulary, below, shared by the
telemetry, the trace, `dyadic profile` and the page (client/latency.js, checked by a test).

AvatarPose (renderer) and the step's tuples (models) are defined beside the code that consumes them,
so that those packages never import the engine; they are re-exported here so that this module reads
as the list of every contract. Dataset channels are `Channels`: group name -> that group's values for
one frame (datasets.specs names the groups).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from dyadic.datasets.interaction import AUDIO_RATE, audio_sample, frame_end
from dyadic.models.step import StepInputs, StepOutputs, Stepper
from dyadic.renderer.pose import AvatarPose

__all__ = [
    "AUDIO_RATE",
    "CLIENT_INTERVALS",
    "CLIENT_MARKS",
    "MARKS",
    "SERVER_INTERVALS",
    "SERVER_MARKS",
    "AvatarPose",
    "Channels",
    "FrameTrace",
    "ListenerMotion",
    "RenderJob",
    "RenderTimes",
    "Source",
    "SpeakerFrame",
    "StepInputs",
    "StepOutputs",
    "Stepper",
    "WorkerError",
    "WorkerFrame",
    "WorkerReady",
    "WorkerReply",
    "audio_sample",
    "frame_end",
    "interval_name",
    "intervals",
]

Channels = Mapping[str, np.ndarray]


# -- the speaker ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SpeakerFrame:
    """The speaker during one session frame: what a Source reads."""

    audio: np.ndarray  # float32 mono AUDIO_RATE samples of this frame (silence while paused)
    captured: float  # time.monotonic() when the frame's last audio sample was captured or due
    channels: Channels | None = None  # the speaker's dataset channels of this frame (recorded)
    movement: np.ndarray | None = None  # (C,) the model's input channels, dataset units (flattened)
    movement_valid: np.ndarray | None = None  # (G,) 1 valid / 0 masked, per channel group
    recorded_listener: Channels | None = None  # the recording's real listener at this frame
    position: float | None = None  # seconds into the recording


class Source(Protocol):
    """Where the speaker comes from, one frame per read(); steered from the event loop."""

    kind: str  # "none", "clip", "browser-mic", "local-mic"
    fps: float
    playing: bool
    loop: bool

    @property
    def dataset(self) -> str | None:
        """The dataset whose channels the frames carry (None: audio only)."""
        ...

    @property
    def duration(self) -> float | None: ...

    @property
    def position(self) -> float | None: ...

    @property
    def underruns(self) -> int:
        """Frames padded with silence because the capture was late (live sources)."""
        ...

    def read(self, due: float) -> SpeakerFrame:
        """The next frame, whose audio ends at `due` on the session clock (or was captured then)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# -- the listener --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ListenerMotion:
    """The model's listener for one frame, in its dataset's units, by channel group."""

    index: int
    channels: Channels


# -- the render worker's pipe (engine/pipeline/render_worker.py) ---------------------------------
class RenderJob(NamedTuple):
    """Parent -> worker: skin and draw both people (None instead asks the worker to stop)."""

    speaker: AvatarPose
    listener: AvatarPose
    framing: str = "body"  # or "faces" for data with no body (renderer/adapters.py framing_for)
    model_listener: bool = True  # the listener is the model's (else the recording's or an idle one)


class RenderTimes(NamedTuple):
    """When the worker started the job, finished skinning and finished drawing (monotonic s)."""

    start: float
    skinned: float
    rendered: float


class WorkerReady(NamedTuple):
    """Worker -> parent once, when it is up: GL backend and renderer, mesh sizes."""

    info: dict[str, Any]


class WorkerFrame(NamedTuple):
    """Worker -> parent: the frame is in the shared buffer."""

    times: RenderTimes


class WorkerError(NamedTuple):
    """Worker -> parent: it could not start or failed on a frame (and stops)."""

    text: str


WorkerReply = WorkerReady | WorkerFrame | WorkerError


# -- the trace and its vocabulary ----------------------------------------------------------------
# Marks of the server side of a frame's path, in order. "captured" is the end of the frame's audio;
# "model_end" is absent without a model (recorded listener, idle); "sent" is when its packets go
# out, after the send pacing.
SERVER_MARKS = (
    "captured",
    "model_end",
    "worker_start",
    "skinned",
    "rendered",
    "encode_start",
    "encode_end",
    "sent",
)
# Marks a client adds: Chromium's page "received" (last packet) and "presented"; the aiortc client
# "decoded" (no display). In browser mode (poses on a data channel): "received" (the pose's message
# arrived) and, in the page, "drawn" (the first animation frame that showed it).
CLIENT_MARKS = ("received", "decoded", "presented", "drawn")
MARKS = SERVER_MARKS + CLIENT_MARKS
# Each interval is named by the mark it ends at and starts at the previous mark present.
SERVER_INTERVALS = {
    "model_end": "features+model",
    "worker_start": "queue",
    "skinned": "skin",
    "rendered": "render",
    "encode_start": "hand-over",
    "encode_end": "encode",
    "sent": "send pacing",
}
CLIENT_INTERVALS = {
    ("sent", "received"): "network",
    ("received", "presented"): "jitter buffer+decode",
    ("sent", "presented"): "network+jitter buffer+decode",
    ("sent", "decoded"): "network+decode",
    ("received", "drawn"): "wait for its audio+draw",
    ("sent", "drawn"): "network+wait for its audio+draw",
}
# Browser mode sends each pose from the event loop as soon as it is made: what ends at "sent" there
# is posing and the hand-over to the data channel, not the video's send pacing.
POSE_INTERVALS = {("model_end", "sent"): "posing+hand-over", ("captured", "sent"): "posing+hand-over"}
INTERVAL_ORDER = list(SERVER_INTERVALS.values()) + ["posing+hand-over"] + list(CLIENT_INTERVALS.values())
# What the frame thread itself spends per frame (not marks: a frame's source, features, model
# and posing run back to back, and several frames may run in one pass), in telemetry's stages_ms
# next to the trace intervals.
FRAME_THREAD_STAGES = ("source", "features", "model", "posing")


def interval_name(start: str, end: str) -> str:
    return POSE_INTERVALS.get((start, end)) or SERVER_INTERVALS.get(end) or CLIENT_INTERVALS[(start, end)]


def intervals(times: Mapping[str, float]) -> dict[str, float]:
    """Milliseconds of each interval of one frame's marks, in path order."""
    present = [m for m in MARKS if m in times]
    return {interval_name(a, b): (times[b] - times[a]) * 1e3 for a, b in zip(present, present[1:])}


class FrameTrace:
    """Monotonic instants of one video frame along its path (marks above), and its video pts
    once sent. Written by the stages in turn, never at once."""

    __slots__ = ("index", "pts", "times")

    def __init__(self, index: int):
        self.index = index
        self.times: dict[str, float] = {}
        self.pts: int | None = None

    def mark(self, stage: str, t: float | None = None) -> None:
        self.times[stage] = time.monotonic() if t is None else t

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "pts": self.pts, "times": self.times}
