"""The reaction model's configuration and the metadata key of its exported file: torch-free, so
that serving (ONNX Runtime) never imports torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .features import N_MELS

if TYPE_CHECKING:  # imported where used: the CLI reads DEFAULT_PAST_NOISE without scipy's start-up
    from .layout import ChannelLayout

METADATA_KEY = "dyadic"  # the exported ONNX file's metadata entry (export.py) holding the config

# Training feeds the model the listener's own past frames (teacher forcing); at run time they are
# its own outputs. With little noise on that past (0.3 listener stds, before 2026-12-04) the model
# learnt to copy it and reacted to the speaker late and weakly once it ran on its own outputs: on
# held-out generated data it lost FRCorr (REACT) and FRDist (Seamless) to the mirror row. At 3 stds
# the past is a hint only, and the same recipe beat the mirror by 18-320 % (BENCHMARKS.md, issue 20).
# Here, torch-free, because the CLI shows it as `train --past-noise`'s default.
DEFAULT_PAST_NOISE = 3.0


@dataclass
class ReactionConfig:
    layout: dict[str, Any]  # ChannelLayout.to_dict(): the spec's reaction groups (speaker and listener alike)
    fps: float = 30.0
    audio_dim: int = N_MELS
    hidden: int = 256
    latent: int = 16
    layers: int = 1
    stats: dict[str, Any] = field(default_factory=dict)  # means/stds of audio, speaker, listener (lists)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReactionConfig:
        return cls(**d)

    @property
    def channel_layout(self) -> ChannelLayout:
        from .layout import ChannelLayout

        return ChannelLayout.from_dict(self.layout)
