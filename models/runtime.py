"""Running the reaction model: ONNX Runtime (CUDA when usable, else CPU) or torch, one step API.

    runtime = load_runtime("model.onnx")          # or a training checkpoint (.pt): torch
    runtime.provider                              # "CUDAExecutionProvider", "CPUExecutionProvider", "torch-cpu", ...
    out = runtime.step(StepInputs(audio, speaker, speaker_valid, previous, latent, hidden))
    out.listener, out.hidden                      # StepOutputs

`step` takes a batch: one call serves many sessions (one row each). Values are in model units
(ChannelLayout.encode); `ReactionSession` wraps one live session: it turns raw audio samples and
dataset-unit speaker frames into inputs, keeps the session's state and latent, and returns the
listener frame in dataset units. `generate` runs K sessions over a recorded clip (eval, replay).
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
from pathlib import Path

import numpy as np

from .config import METADATA_KEY, ReactionConfig
from .features import StreamingLogMel
from .layout import ChannelLayout
from .step import STEP_INPUT_NAMES, StepInputs, StepOutputs, Stepper

log = logging.getLogger("dyadic.models")

DEFAULT_RESAMPLE_SECONDS = 8.0  # a new latent (a new "mood" of the listener) this often
CROSSFADE_SECONDS = 1.0  # ... blended in over this long: no jump at the boundary


def cuda_usable() -> bool:
    """True when the NVIDIA driver library loads (ONNX Runtime's CUDA provider needs it)."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or not a dyadic reaction model."""


class _Runtime:
    config: ReactionConfig
    provider: str

    @property
    def layout(self) -> ChannelLayout:
        return self.config.channel_layout

    @property
    def listener_start(self) -> np.ndarray:
        """(C,) model units: the listener frame a session starts from (the training mean)."""
        return np.asarray(self.config.stats["listener_mean"], np.float32)

    def initial_hidden(self, batch: int) -> np.ndarray:
        return np.zeros((self.config.layers, batch, self.config.hidden), np.float32)


class OnnxRuntime(_Runtime):
    """The exported step through ONNX Runtime."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 1):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # the engine's other stages need the other core
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # a missing CUDA is reported below, in one line
        providers = self._providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for unreadable graphs
            raise ModelFileError(f"{path}: not an ONNX model ONNX Runtime can load ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ModelFileError(f"{path}: an ONNX file without dyadic metadata (export it with `dyadic export`)")
        self.metadata = json.loads(meta)
        self.config = ReactionConfig.from_dict(self.metadata["config"])
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != "CUDAExecutionProvider":  # ORT fell back
            raise RuntimeError(f"--device cuda: ONNX Runtime could not use CUDA here (got {self.provider})")
        self.path = path

    @staticmethod
    def _providers(device: str, available: list[str]) -> list[str]:
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
        cuda = "CUDAExecutionProvider" in available and cuda_usable()
        if device == "cuda" and not cuda:
            raise RuntimeError(
                "--device cuda: no usable CUDA (ONNX Runtime's CUDA provider or the NVIDIA driver is missing)"
            )
        return (["CUDAExecutionProvider"] if cuda and device != "cpu" else []) + ["CPUExecutionProvider"]

    def step(self, inputs: StepInputs) -> StepOutputs:
        feeds = {name: np.ascontiguousarray(v, np.float32) for name, v in zip(STEP_INPUT_NAMES, inputs)}
        listener, hidden = self.session.run(None, feeds)
        return StepOutputs(listener, hidden)


class TorchRuntime(_Runtime):
    """The same step in torch (for comparison, and to run a checkpoint without exporting it)."""

    def __init__(self, model, device: str = "auto"):
        import torch

        from .train import pick_device

        self.torch = torch
        self.device = pick_device(device)
        self.model = model.eval().to(self.device)
        self.config = model.config
        self.provider = f"torch-{self.device.type}"

    def step(self, inputs: StepInputs) -> StepOutputs:
        t = self.torch
        with t.inference_mode():
            args = [t.as_tensor(np.asarray(a, np.float32), device=self.device) for a in inputs]
            listener, hidden = self.model.step(*args)
            return StepOutputs(listener.cpu().numpy(), hidden.cpu().numpy())


def load_runtime(path: str | Path, device: str = "auto") -> OnnxRuntime | TorchRuntime:
    """An .onnx file -> OnnxRuntime; a training checkpoint (.pt) -> TorchRuntime."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxRuntime(path, device)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    from .train import load_checkpoint

    try:
        model = load_checkpoint(path)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a dyadic model (.onnx) or training checkpoint (.pt): {exc}") from exc
    return TorchRuntime(model, device)


# -- latents --------------------------------------------------------------------------------------
class LatentSchedule:
    """The latent of one session, frame by frame: a draw from N(0, I) per seed, re-drawn every
    `resample_seconds` (None: never) and crossfaded along a quarter circle (cos/sin weights keep
    the blend a unit Gaussian), so the listener's style changes without a jump. Deterministic in
    (seed, frame): a replay with the same seed gives the same reaction."""

    def __init__(
        self,
        dim: int,
        seed: int,
        fps: float,
        resample_seconds: float | None = DEFAULT_RESAMPLE_SECONDS,
        crossfade_seconds: float = CROSSFADE_SECONDS,
    ):
        self.dim, self.seed = dim, int(seed)
        self.period = None if not resample_seconds else max(1, int(round(resample_seconds * fps)))
        self.fade = max(1, int(round(crossfade_seconds * fps)))
        if self.period is not None:
            self.fade = min(self.fade, self.period)

    def _draw(self, segment: int) -> np.ndarray:
        return np.random.default_rng([self.seed, segment]).standard_normal(self.dim).astype(np.float32)

    def __call__(self, frame: int) -> np.ndarray:
        if self.period is None:
            return self._draw(0)
        segment, into = divmod(frame, self.period)
        if segment == 0 or into >= self.fade:
            return self._draw(segment)
        theta = (into / self.fade) * math.pi / 2
        return (math.cos(theta) * self._draw(segment - 1) + math.sin(theta) * self._draw(segment)).astype(np.float32)


# -- sessions -------------------------------------------------------------------------------------
class ReactionSession:
    """One listener: features, recurrent state, previous frame and latent of one live session."""

    def __init__(
        self,
        runtime: Stepper,
        seed: int = 0,
        fps: float | None = None,
        resample_seconds: float | None = DEFAULT_RESAMPLE_SECONDS,
    ):
        self.runtime = runtime
        self.layout = runtime.layout
        self.fps = float(fps or runtime.config.fps)
        self.features = StreamingLogMel(self.fps)
        self.latents = LatentSchedule(runtime.config.latent, seed, self.fps, resample_seconds)
        self.hidden = runtime.initial_hidden(1)
        self.previous = runtime.listener_start[None].copy()
        self.frame = 0

    def step(
        self, audio_features: np.ndarray, speaker: np.ndarray | None, speaker_valid: np.ndarray | None
    ) -> np.ndarray:
        """One frame: (A,) audio features, (C,) speaker frame in dataset units or None (no movement),
        (G,) validity -> the listener's (C,) frame in dataset units."""
        c, g = self.layout.size, len(self.layout.names)
        if speaker is None:
            speaker, speaker_valid = np.zeros(c, np.float32), np.zeros(g, np.float32)
        spk = self.layout.encode(np.asarray(speaker, np.float32)[None])
        listener, self.hidden = self.runtime.step(
            StepInputs(
                audio=np.asarray(audio_features, np.float32)[None],
                speaker=spk,
                speaker_valid=np.asarray(speaker_valid, np.float32)[None],
                previous=self.previous,
                latent=self.latents(self.frame)[None],
                hidden=self.hidden,
            )
        )
        self.previous = listener
        self.frame += 1
        return self.layout.decode(listener)[0]


def generate(
    runtime: Stepper,
    audio: np.ndarray,
    speaker: np.ndarray,
    speaker_valid: np.ndarray,
    seeds: list[int],
    resample_seconds: float | None = DEFAULT_RESAMPLE_SECONDS,
    fps: float | None = None,
    decode: bool = True,
) -> np.ndarray:
    """K = len(seeds) listeners for one recorded speaker, as one batched step per frame.

    audio (T, A) features, speaker (T, C) dataset units, speaker_valid (T, G) -> (K, T, C)."""
    k, t = len(seeds), len(audio)
    fps = float(fps or runtime.config.fps)
    layout = runtime.layout
    spk = layout.encode(speaker)
    valid = np.asarray(speaker_valid, np.float32)
    schedules = [LatentSchedule(runtime.config.latent, s, fps, resample_seconds) for s in seeds]
    hidden = runtime.initial_hidden(k)
    prev = np.repeat(runtime.listener_start[None], k, axis=0)
    out = np.zeros((k, t, layout.size), np.float32)
    for f in range(t):
        latent = np.stack([s(f) for s in schedules])
        prev, hidden = runtime.step(
            StepInputs(
                audio=np.repeat(audio[f : f + 1], k, 0),
                speaker=np.repeat(spk[f : f + 1], k, 0),
                speaker_valid=np.repeat(valid[f : f + 1], k, 0),
                previous=prev,
                latent=latent,
                hidden=hidden,
            )
        )
        out[:, f] = prev
    return layout.decode(out) if decode else out
