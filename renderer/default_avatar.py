"""The embedded default avatar: generated on first use into a cache folder that smplx loads.

Layout of the generated folder (DYADIC_CACHE/avatar-v1 or ~/.cache/dyadic/avatar-v1):

    smplh/SMPLH_NEUTRAL.npz   SMPL-H parameter file, read by smplx's own SMPL-H loader
    face_rig.npz              names (K,), vertex_ids (H,), deltas (K, H, 3): ARKit blendshapes, rest space
    appearance.npz            vertex_colors (V, 3) sRGB, labels (V,), head_mask (V,), clothing_mask (V,)

Only this generator ships; the files are written deterministically, into a temporary folder first
and then renamed, so concurrent first uses never see a half-written model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import mannequin
from .face_rig import build_head
from .mannequin import CLOTHING, COLORS, LABELS, NUM_JOINTS, PARENTS

VERSION = "avatar-v1"
SMPLH_FILE = Path("smplh") / "SMPLH_NEUTRAL.npz"
NUM_BETAS = 16
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 459, as in SMPL-H


def default_model_dir(create: bool = True) -> Path:
    """Folder of the default avatar, generated on first use (unless create=False)."""
    root = Path(os.environ["DYADIC_CACHE"]) if os.environ.get("DYADIC_CACHE") else (Path.home() / ".cache" / "dyadic")
    folder = root / VERSION
    if create and not (folder / SMPLH_FILE).exists():
        generate(folder)
    return folder


def generate(folder: Path) -> None:
    """Write the model files into `folder` atomically (temp folder in the same parent + rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model, rig, appearance = build()
        (tmp / SMPLH_FILE).parent.mkdir(parents=True)
        np.savez(tmp / SMPLH_FILE, **model)
        np.savez(tmp / "face_rig.npz", **rig)
        np.savez(tmp / "appearance.npz", **appearance)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process won the race: keep its copy
            if not (folder / SMPLH_FILE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build() -> tuple[dict, dict, dict]:
    """(SMPL-H arrays, face-rig arrays, appearance arrays) of the default avatar."""
    joints = mannequin.rest_joints()
    builder = mannequin.build_body(joints)
    shapes = build_head(builder)
    verts, faces, weights, labels, head = builder.build()
    n = len(verts)

    face_ids = np.flatnonzero(head)
    names = sorted(shapes)
    deltas = np.zeros((len(names), n, 3))
    for k, name in enumerate(names):
        for part, delta in shapes[name].items():
            start = builder.offset(part)
            deltas[k, start : start + len(delta)] += delta

    model = {
        "v_template": verts.astype(np.float64),
        "f": faces.astype(np.uint32),
        "weights": weights.astype(np.float64),
        "J_regressor": joint_regressor(verts, weights, joints, exclude=head),
        "kintree_table": np.stack([PARENTS, np.arange(NUM_JOINTS)]).astype(np.int64),
        # identity-free shape space: a smooth overall scale and a few proportions, so betas do
        # something plausible; the engine always uses beta = 0
        "shapedirs": shape_directions(verts, joints, weights),
        # no pose correctives: a mannequin's rigid segments and ball joints need none
        "posedirs": np.zeros((n, 3, NUM_POSE_BASIS)),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "J": joints,
        "bs_style": np.array("lbs"),
        "bs_type": np.array("lrotmin"),
    }
    rig = {
        "names": np.array(names),
        "vertex_ids": face_ids.astype(np.int64),
        "deltas": deltas[:, face_ids].astype(np.float32),
    }
    palette = np.array([COLORS[name] for name in LABELS])
    appearance = {
        "vertex_colors": palette[labels].astype(np.float32),
        "labels": labels.astype(np.int16),
        "label_names": np.array(LABELS),
        "head_mask": head,
        "clothing_mask": np.isin(labels, [LABELS.index(c) for c in CLOTHING]),
    }
    return model, rig, appearance


def joint_regressor(
    verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, exclude: np.ndarray, n_nearest: int = 32
) -> np.ndarray:
    """(52, V) regressor that reproduces each rest joint exactly from the vertices around it.

    For each joint: the nearest vertices skinned to that joint or its parent, in a thin slab across
    the bone (a ring around the joint), weighted uniformly plus the smallest correction that moves
    their mean onto the joint. Face-rig vertices are excluded so expressions never move joints.
    """
    n = len(verts)
    reg = np.zeros((NUM_JOINTS, n))
    children = {j: np.flatnonzero(PARENTS == j) for j in range(NUM_JOINTS)}
    for j in range(NUM_JOINTS):
        parent = PARENTS[j]
        if len(children[j]):
            axis = joints[children[j]].mean(0) - joints[j]
        else:
            axis = joints[j] - joints[parent]
        axis /= np.linalg.norm(axis) + 1e-12
        owned = weights[:, j] + (weights[:, parent] if parent >= 0 else 0) > 0.3
        rel = verts - joints[j]
        along = np.abs(rel @ axis)
        dist = np.linalg.norm(rel, axis=1)
        score = np.where(owned & ~exclude, dist + 4 * along, np.inf)
        order = np.argsort(score)
        for k in (n_nearest, 2 * n_nearest, 4 * n_nearest, 8 * n_nearest):
            # a single flat ring cannot move its mean off its plane: widen until it is exact
            ids = order[:k][np.isfinite(score[order[:k]])]
            p = verts[ids]
            w = np.full(len(ids), 1.0 / len(ids))
            a = (p - p.mean(0)).T  # (3, k): moving weight along a shifts the mean by a @ dw
            dw = a.T @ np.linalg.solve(a @ a.T + 1e-12 * np.eye(3), joints[j] - w @ p)
            if np.abs((w + dw) @ p - joints[j]).max() < 1e-9:
                break
        reg[j, ids] = w + dw
    return reg


def shape_directions(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 16) shape space: beta 0 scales the body, 1 widens it, 2 lengthens the legs; rest zero."""
    dirs = np.zeros((len(verts), 3, NUM_BETAS))
    dirs[:, :, 0] = verts * 0.05
    dirs[:, 0, 1] = verts[:, 0] * 0.05
    legs = weights[:, [1, 2, 4, 5, 7, 8, 10, 11]].sum(1)
    dirs[:, 1, 2] = np.minimum(verts[:, 1], 0) * 0.05 * legs
    return dirs
