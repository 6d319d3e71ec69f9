"""ChannelLayout: a participant's channel groups <-> one flat float32 vector per frame.

The model is built from a MotionSpec (datasets/interaction.py): the layout lists the spec's reaction
groups (`datasets.specs.REACTION_GROUPS`) in order, with their sizes and kinds, and flattens a
track's arrays into (n, size) values and (n, groups) validity. A group the track lacks is zeros and
invalid: masked, never faked.

Rotations (kind "axis_angle") are encoded relative to a reference rotation per joint (the training
data's mean): Seamless's camera-frame global orientation sits near a half turn, where axis-angle
wraps from +pi to -pi, and a network regressing raw axis-angle there would jump. Relative to the
mean the angles are small and continuous; decode() turns them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from dyadic.datasets.interaction import MotionSpec, ParticipantTrack
from dyadic.datasets.specs import REACTION_GROUPS


@dataclass
class ChannelLayout:
    spec_name: str
    names: list[str]
    sizes: list[int]
    kinds: list[str]
    shapes: list[tuple[int, ...]]
    reference_rotations: dict[str, list[list[float]]] = field(default_factory=dict)  # name -> (J, 3)

    @classmethod
    def for_spec(cls, spec: MotionSpec, names: tuple[str, ...] | None = None) -> ChannelLayout:
        default = REACTION_GROUPS.get(spec.name, spec.names)
        names = tuple(names or default)
        groups = [spec[n] for n in names]
        return cls(
            spec.name, list(names), [g.size for g in groups], [g.kind for g in groups], [tuple(g.shape) for g in groups]
        )

    # -- shape --------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def group_matrix(self) -> np.ndarray:
        """(groups, size) 0/1: a per-group mask @ this = the per-channel mask."""
        m = np.zeros((len(self.names), self.size), np.float32)
        for g, sl in enumerate(self.slices.values()):
            m[g, sl] = 1.0
        return m

    # -- tracks <-> flat rows -----------------------------------------------------------------
    def flatten(self, track: ParticipantTrack, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """((n, size) float32 values, (n, groups) bool valid) of a track's first n frames."""
        values = np.zeros((n_frames, self.size), np.float32)
        valid = np.zeros((n_frames, len(self.names)), bool)
        for g, (name, sl) in enumerate(self.slices.items()):
            if name in track.channels:
                values[:, sl] = track.channels[name][:n_frames].reshape(n_frames, -1)
                valid[:, g] = track.valid[name][:n_frames]
        return values, valid

    def unflatten(self, row: np.ndarray) -> dict[str, np.ndarray]:
        """(..., size) -> {group: (..., *shape)}."""
        row = np.asarray(row)
        lead = row.shape[:-1]
        return {
            name: row[..., sl].reshape(*lead, *shape) for (name, sl), shape in zip(self.slices.items(), self.shapes)
        }

    # -- rotation encoding --------------------------------------------------------------------
    def fit_reference_rotations(self, values: np.ndarray, valid: np.ndarray) -> None:
        """Set each rotation group's per-joint reference to the mean of its valid frames."""
        self.reference_rotations = {}
        for g, (name, sl) in enumerate(self.slices.items()):
            if self.kinds[g] != "axis_angle":
                continue
            rows = values[valid[:, g], sl].reshape(-1, self.sizes[g] // 3, 3)
            if len(rows) == 0:
                ref = np.zeros((self.sizes[g] // 3, 3))
            else:
                ref = np.stack([Rotation.from_rotvec(rows[:, j]).mean().as_rotvec() for j in range(rows.shape[1])])
            self.reference_rotations[name] = ref.tolist()

    def _rotation_columns(self) -> tuple[np.ndarray, Rotation] | None:
        """(columns (J, 3) of every referenced rotation, their references as one Rotation), cached:
        one batched scipy call per conversion instead of several per group (the live engine
        converts every frame)."""
        refs = self.reference_rotations
        cache = self.__dict__.get("_rotation_cache")
        if cache is not None and cache[0] is refs:
            return cache[1]
        columns, base = [], []
        for name, sl in self.slices.items():
            if name in refs:
                columns.append(np.arange(sl.start, sl.stop).reshape(-1, 3))
                base.append(np.asarray(refs[name], np.float64).reshape(-1, 3))
        result = (np.concatenate(columns), Rotation.from_rotvec(np.concatenate(base))) if columns else None
        self.__dict__["_rotation_cache"] = (refs, result)
        return result

    def _convert(self, values: np.ndarray, inverse: bool) -> np.ndarray:
        out = np.array(values, np.float32, copy=True)
        rotations = self._rotation_columns()
        if rotations is None:
            return out
        columns, base = rotations
        lead = out.shape[:-1]
        n = int(np.prod(lead))
        rv = out.reshape(n, -1)[:, columns].reshape(-1, 3).astype(np.float64)  # (n * J, 3)
        quat = np.tile(base.as_quat(), (n, 1))
        ref = Rotation.from_quat(quat)
        r = Rotation.from_rotvec(rv)
        conv = (ref * r) if inverse else (ref.inv() * r)
        flat = out.reshape(n, -1)
        flat[:, columns] = conv.as_rotvec().reshape(n, -1, 3).astype(np.float32)
        return flat.reshape(*lead, -1)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Dataset units -> model units (rotations relative to their references)."""
        return self._convert(values, inverse=False)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Model units -> dataset units."""
        return self._convert(values, inverse=True)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "spec": self.spec_name,
            "names": self.names,
            "sizes": self.sizes,
            "kinds": self.kinds,
            "shapes": [list(s) for s in self.shapes],
            "reference_rotations": self.reference_rotations,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ChannelLayout:
        return cls(
            d["spec"],
            list(d["names"]),
            [int(s) for s in d["sizes"]],
            list(d["kinds"]),
            [tuple(s) for s in d["shapes"]],
            dict(d.get("reference_rotations", {})),
        )
