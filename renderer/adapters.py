"""Pose adapters: one dataset frame (MotionSpec channel groups) -> AvatarPose.

Every face mapping goes through one documented table, `AU_TO_BLENDSHAPES`: a FACS action unit
drives the ARKit blendshapes that show the same muscle movement. Where a dataset leaves the meaning
of its columns undocumented, the assumed order is in `dyadic.datasets.specs` and says so.

| source (dataset)                          | drives                                   |
|-------------------------------------------|------------------------------------------|
| Seamless `smplh:*`                         | body, hands, global orientation          |
| Seamless `movement:FAUValue` (24 AUs)      | face, through AU_TO_BLENDSHAPES          |
| REACT `react:au` (15 binary AUs)           | face, through AU_TO_BLENDSHAPES          |
| REACT `react:3dmm_expression` (52)         | face, one-to-one (FaceVerse v2 is ARKit-fitted) |
| REACT `react:3dmm_rotation`                | head rotation (Euler xyz, radians)        |
| REACT (no body in the data)                | a fixed seated posture: no motion is made up |

Seamless `movement:alignment_head_rotation` is not applied: the SMPL-H head and neck joints already
carry the head's motion, and applying both would double it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from dyadic.datasets.specs import REACT_AU_ORDER, SEAMLESS_FAU_ORDER

from .idle import seated_pose
from .pose import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX, AvatarPose

Channels = Mapping[str, np.ndarray]

# FACS action unit -> ARKit blendshapes (weight per unit of AU intensity in [0, 1]).
AU_TO_BLENDSHAPES: dict[str, dict[str, float]] = {
    "AU01": {"browInnerUp": 1.0},  # inner brow raiser
    "AU02": {"browOuterUpLeft": 1.0, "browOuterUpRight": 1.0},  # outer brow raiser
    "AU04": {"browDownLeft": 1.0, "browDownRight": 1.0},  # brow lowerer
    "AU05": {"eyeWideLeft": 1.0, "eyeWideRight": 1.0},  # upper lid raiser
    "AU06": {
        "cheekSquintLeft": 1.0,
        "cheekSquintRight": 1.0,  # cheek raiser (Duchenne smile)
        "eyeSquintLeft": 0.4,
        "eyeSquintRight": 0.4,
    },
    "AU07": {"eyeSquintLeft": 1.0, "eyeSquintRight": 1.0},  # lid tightener
    "AU09": {"noseSneerLeft": 1.0, "noseSneerRight": 1.0},  # nose wrinkler
    "AU10": {"mouthUpperUpLeft": 1.0, "mouthUpperUpRight": 1.0},  # upper lip raiser
    "AU11": {"mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3},  # nasolabial deepener
    "AU12": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},  # lip corner puller
    "AU13": {"mouthSmileLeft": 0.4, "mouthSmileRight": 0.4, "cheekPuff": 0.3},  # sharp lip puller
    "AU14": {"mouthDimpleLeft": 1.0, "mouthDimpleRight": 1.0},  # dimpler
    "AU15": {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0},  # lip corner depressor
    "AU16": {"mouthLowerDownLeft": 1.0, "mouthLowerDownRight": 1.0},  # lower lip depressor
    "AU17": {"mouthShrugLower": 1.0},  # chin raiser
    "AU18": {"mouthPucker": 1.0},  # lip pucker
    "AU20": {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0},  # lip stretcher
    "AU22": {"mouthFunnel": 1.0},  # lip funneler
    "AU23": {"mouthPressLeft": 0.6, "mouthPressRight": 0.6},  # lip tightener
    "AU24": {"mouthPressLeft": 1.0, "mouthPressRight": 1.0},  # lip pressor
    "AU25": {"jawOpen": 0.25, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},  # lips part
    "AU26": {"jawOpen": 1.0},  # jaw drop
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},  # lip suck
    "AU43": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},  # eyes closed
    "AU45": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},  # blink
}

# Seamless FAU intensities lie in [0, 2]; 1.0 is taken as a fully formed expression.
SEAMLESS_FAU_FULL_SCALE = 1.0


def _au_matrix(order: tuple[str, ...]) -> np.ndarray:
    """(len(order), 52) matrix: AU intensities @ matrix = blendshape weights."""
    m = np.zeros((len(order), len(ARKIT_BLENDSHAPES)), np.float32)
    for i, au in enumerate(order):
        for shape, w in AU_TO_BLENDSHAPES.get(au, {}).items():
            m[i, BLENDSHAPE_INDEX[shape]] = w
    return m


_SEAMLESS_AU = _au_matrix(SEAMLESS_FAU_ORDER)
_REACT_AU = _au_matrix(REACT_AU_ORDER)

# Cameras of HMR-style regressors look down +z with y pointing down; the render frame is y-up with
# the avatar facing +z (the viewer). A half turn about x maps one onto the other.
_CAMERA_TO_RENDER = Rotation.from_rotvec([np.pi, 0.0, 0.0])


def camera_to_render_orient(global_orient: np.ndarray) -> np.ndarray:
    """Seamless `smplh:global_orient` (camera frame) -> axis-angle in the render frame."""
    return (_CAMERA_TO_RENDER * Rotation.from_rotvec(global_orient)).as_rotvec().astype(np.float32)


SEATED_BODY_POSE = seated_pose().body_pose  # for datasets with no body (renderer/idle.py)


def seamless_pose(ch: Channels) -> AvatarPose:
    """One Seamless frame (SEAMLESS_SPEC groups) -> AvatarPose."""
    pose = AvatarPose()
    if "smplh:body_pose" in ch:
        pose.body_pose[:] = np.asarray(ch["smplh:body_pose"]).reshape(21, 3)
        pose.left_hand_pose[:] = np.asarray(ch["smplh:left_hand_pose"]).reshape(15, 3)
        pose.right_hand_pose[:] = np.asarray(ch["smplh:right_hand_pose"]).reshape(15, 3)
        pose.global_orient[:] = camera_to_render_orient(np.asarray(ch["smplh:global_orient"]))
    else:
        pose.body_pose[:] = SEATED_BODY_POSE
    if "movement:FAUValue" in ch:
        aus = np.clip(np.asarray(ch["movement:FAUValue"], np.float32) / SEAMLESS_FAU_FULL_SCALE, 0, 1)
        pose.face[:] = np.clip(aus @ _SEAMLESS_AU, 0.0, 1.0)
    return pose


def react_head_rotation(euler_xyz: np.ndarray) -> np.ndarray:
    """FaceVerse rotation (Euler xyz, radians) -> axis-angle for the head joint.

    Trackers that start from a camera looking at the face from behind (FaceVerse initialises x at
    pi) leave a half turn in x; it is folded back so that a frontal face is the identity.
    """
    x, y, z = (float(v) for v in euler_xyz)
    if abs(x) > np.pi / 2:
        x -= np.sign(x) * np.pi
    return Rotation.from_euler("xyz", [x, y, z]).as_rotvec().astype(np.float32)


def react_pose(ch: Channels) -> AvatarPose:
    """One REACT frame (REACT_SPEC groups) -> AvatarPose on a fixed seated body."""
    pose = AvatarPose()
    pose.body_pose[:] = SEATED_BODY_POSE
    face = np.zeros(len(ARKIT_BLENDSHAPES), np.float32)
    if "react:au" in ch:
        face = np.asarray(ch["react:au"], np.float32).clip(0, 1) @ _REACT_AU
    if "react:3dmm_expression" in ch:
        face = np.maximum(face, np.asarray(ch["react:3dmm_expression"], np.float32))
    pose.face[:] = np.clip(face, 0.0, 1.0)
    if "react:3dmm_rotation" in ch:
        pose.head_rotation = react_head_rotation(np.asarray(ch["react:3dmm_rotation"]))
    return pose


ADAPTERS: dict[str, Callable[[Channels], AvatarPose]] = {"seamless": seamless_pose, "react": react_pose}


def adapter_for(dataset: str) -> Callable[[Channels], AvatarPose]:
    try:
        return ADAPTERS[dataset]
    except KeyError:
        raise ValueError(f"no pose adapter for dataset {dataset!r}; known: {sorted(ADAPTERS)}") from None


def framing_for(dataset: str | None) -> str:
    """How a dataset's people are framed (renderer/offscreen.py FRAMINGS): "faces", each head and
    shoulders in its half, for a dataset whose channels hold no body (REACT); else "body"."""
    from dyadic.datasets.specs import SPECS

    spec = SPECS.get(dataset or "")
    if spec is None:
        return "body"
    return "body" if any(g.name.endswith("body_pose") for g in spec.groups) else "faces"
