"""Bridge invalid frames so that a renderer never draws garbage; the mask keeps the truth.

Between two valid frames a value is interpolated linearly and a rotation along the geodesic (slerp
from the previous to the next valid rotation); before the first and after the last valid frame the
nearest valid value is held. Axis-angle inputs need not be wrapped to norm <= pi (Seamless's are
not): interpolation goes through rotations, never through raw vector differences.
"""

from __future__ import annotations

import numpy as np

# No channel of either dataset measures anything near a million (pixels, radians, metres, scores):
# a finite value beyond it is a corrupt file, and would overflow float32 arithmetic downstream.
VALUE_LIMIT = 1e6


def finite_rows(array: np.ndarray) -> np.ndarray:
    """Frames (rows) whose every value is finite."""
    return np.isfinite(array.reshape(len(array), -1)).all(axis=1)


def usable_rows(array: np.ndarray) -> np.ndarray:
    """Frames whose every value is finite and within +/-VALUE_LIMIT (NaN and inf fail the test)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(array.reshape(len(array), -1)) <= VALUE_LIMIT).all(axis=1)


def _neighbours(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each frame: previous valid index, next valid index, and the fraction between them."""
    frames = np.arange(len(valid))
    valid_idx = np.flatnonzero(valid)
    prev = valid_idx[np.clip(np.searchsorted(valid_idx, frames, "right") - 1, 0, None)]
    nxt = valid_idx[np.clip(np.searchsorted(valid_idx, frames, "left"), None, len(valid_idx) - 1)]
    span = nxt - prev
    frac = np.where(span > 0, (frames - prev) / np.maximum(span, 1), 0.0)
    return prev, nxt, np.clip(frac, 0.0, 1.0)


def _nearest_representation(rotvec: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The same rotations, each written as the axis-angle vector (angle + 2*pi*k) closest to
    `reference`, so bridged frames continue the unwrapped representation of their neighbours."""
    angle = np.linalg.norm(rotvec, axis=1, keepdims=True)
    axis = np.divide(rotvec, angle, out=np.zeros_like(rotvec), where=angle > 1e-12)
    candidates = np.stack([axis * (angle + 2 * np.pi * k) for k in (-1, 0, 1)])  # (3, M, 3)
    best = np.argmin(np.linalg.norm(candidates - reference[None], axis=2), axis=0)
    return candidates[best, np.arange(len(rotvec))]


def bridge(values: np.ndarray, valid: np.ndarray, kind: str, neutral: np.ndarray | float = 0.0) -> np.ndarray:
    """Return float32 `values` (N, ...) with the frames where `valid` is False filled in.

    kind "axis_angle": trailing dims hold 3-vectors, slerped; anything else is interpolated
    linearly. With no valid frame at all the group becomes `neutral` everywhere.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    valid = np.asarray(valid, bool)
    if valid.all() or len(out) == 0:
        return out
    if not valid.any():
        out[...] = neutral
        return out
    prev, nxt, frac = _neighbours(valid)
    bad = np.flatnonzero(~valid)
    p, n, t = prev[bad], nxt[bad], frac[bad]
    if kind == "axis_angle":
        from scipy.spatial.transform import Rotation  # here: half a second to import, and indexing never bridges

        joints = out.shape[1:-1]
        count = int(np.prod(joints)) if joints else 1
        r_prev = Rotation.from_rotvec(out[p].reshape(-1, 3).astype(np.float64))
        r_next = Rotation.from_rotvec(out[n].reshape(-1, 3).astype(np.float64))
        step = (r_prev.inv() * r_next).as_rotvec() * np.repeat(t, count)[:, None]
        filled = (r_prev * Rotation.from_rotvec(step)).as_rotvec()
        lerp = out[p] + t.reshape((-1,) + (1,) * (out.ndim - 1)) * (out[n] - out[p])
        filled = _nearest_representation(filled, lerp.reshape(-1, 3).astype(np.float64))
        out[bad] = filled.reshape((len(bad),) + out.shape[1:])
    else:
        shape = (-1,) + (1,) * (out.ndim - 1)
        out[bad] = out[p] + t.reshape(shape) * (out[n] - out[p])
    return out
