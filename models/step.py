"""The reaction model's step as a contract: named inputs and outputs, and what steps it.

One step advances a batch of B listeners by one frame (models/reaction.py says what each input
means). Everything that runs a step speaks these two tuples: the ONNX Runtime and torch runtimes
(runtime.py), the engine's batching of many sessions into one call, and the exported graph, whose
input and output names are these field names. Torch-free: the live engine imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

if TYPE_CHECKING:
    from .config import ReactionConfig
    from .layout import ChannelLayout


class StepInputs(NamedTuple):
    """One frame of B listeners, float32, model units."""

    audio: np.ndarray  # (B, A) the speaker's causal log-mel frame
    speaker: np.ndarray  # (B, C) the speaker's reaction channels (zeros where masked)
    speaker_valid: np.ndarray  # (B, G) 1 valid / 0 masked, per channel group
    previous: np.ndarray  # (B, C) each listener's previous frame
    latent: np.ndarray  # (B, Z) each listener's latent
    hidden: np.ndarray  # (layers, B, H) each listener's recurrent state


class StepOutputs(NamedTuple):
    listener: np.ndarray  # (B, C) the listeners' frame, model units
    hidden: np.ndarray  # (layers, B, H) their next recurrent state


STEP_INPUT_NAMES: tuple[str, ...] = StepInputs._fields
# the exported graph's names: "hidden" is an input, so the state that comes out is "hidden_out"
STEP_OUTPUT_NAMES: tuple[str, ...] = ("listener", "hidden_out")


def stack(batch: list[StepInputs]) -> StepInputs:
    """Many batches -> one: rows after rows, the recurrent state along its batch axis (1)."""
    rows = [np.concatenate([b[i] for b in batch], axis=0) for i in range(len(StepInputs._fields) - 1)]
    return StepInputs._make([*rows, np.concatenate([b.hidden for b in batch], axis=1)])  # hidden: the last field


def split(out: StepOutputs, sizes: list[int]) -> list[StepOutputs]:
    """One batch's outputs -> the parts of the batches `stack` joined, in order."""
    parts, start = [], 0
    for n in sizes:
        parts.append(StepOutputs(out.listener[start : start + n], out.hidden[:, start : start + n]))
        start += n
    return parts


class Stepper(Protocol):
    """What runs the step: a model runtime, or the engine's batcher in front of one."""

    @property
    def config(self) -> ReactionConfig: ...

    @property
    def layout(self) -> ChannelLayout: ...

    @property
    def provider(self) -> str: ...

    @property
    def listener_start(self) -> np.ndarray: ...

    def initial_hidden(self, batch: int) -> np.ndarray: ...

    def step(self, inputs: StepInputs) -> StepOutputs: ...
