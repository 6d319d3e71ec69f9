"""Export the reaction model's step as an ONNX graph: `dyadic export CHECKPOINT --out model.onnx`.

The graph is ReactionModel.step for a batch of sessions, with the recurrent state explicit (its
inputs and outputs are named as step.py's StepInputs and StepOutputs):

    inputs:  audio (B, A), speaker (B, C), speaker_valid (B, G), previous (B, C), latent (B, Z),
             hidden (layers, B, H)
    outputs: listener (B, C), hidden_out (layers, B, H)

Everything the runtime needs besides the graph (the channel layout and its rotation references, the
frame rate, the latent size, the listener's starting frame) is stored as JSON in the model's
metadata under "dyadic", so one .onnx file is a complete model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

from .config import METADATA_KEY
from .reaction import ReactionModel
from .step import STEP_INPUT_NAMES, STEP_OUTPUT_NAMES

INPUTS = list(STEP_INPUT_NAMES)  # the graph's names are the step contract's (step.py)
OUTPUTS = list(STEP_OUTPUT_NAMES)


class _Step(torch.nn.Module):
    def __init__(self, model: ReactionModel):
        super().__init__()
        self.model = model

    def forward(self, audio, speaker, speaker_valid, previous, latent, hidden):
        return self.model.step(audio, speaker, speaker_valid, previous, latent, hidden)


def example_inputs(model: ReactionModel, batch: int = 2) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    c, g = model.listener_mean.shape[0], model.group_matrix.shape[0]
    return (
        torch.zeros(batch, cfg.audio_dim),
        torch.zeros(batch, c),
        torch.ones(batch, g),
        model.listener_mean.expand(batch, -1).clone(),
        torch.zeros(batch, cfg.latent),
        model.initial_hidden(batch),
    )


def metadata(model: ReactionModel, **extra) -> dict:
    return {"format": 1, "config": model.config.to_dict(), "inputs": INPUTS, "outputs": OUTPUTS, **extra}


def export_onnx(model: ReactionModel, out: str | Path, **extra_metadata) -> Path:
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = {
        "audio": {0: batch},
        "speaker": {0: batch},
        "speaker_valid": {0: batch},
        "previous": {0: batch},
        "latent": {0: batch},
        "hidden": {1: batch},
    }
    tmp = out.with_name(out.name + ".tmp")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's own deprecation chatter, not ours to fix
            # the example batch is 2: torch.export specialises a dimension of size 1
            program = torch.onnx.export(
                _Step(model),
                example_inputs(model, 2),
                dynamo=True,
                input_names=INPUTS,
                output_names=OUTPUTS,
                dynamic_shapes=shapes,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None  # dynamo=True always returns a program
    program.save(str(tmp))
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata(model, **extra_metadata))
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return out
