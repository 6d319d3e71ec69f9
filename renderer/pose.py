"""AvatarPose: what an adapter hands the avatar for one frame (engine/contracts.py lists it).

SMPL-H parameters in axis-angle, face blendshape weights by ARKit name, and an optional head
rotation applied on top of the body's head joint (REACT gives the head pose in its 3DMM, with no
body). Face weights are named and ordered as ARKit's blendshapes (datasets/specs.py, where the
datasets that use the same 52 names find them too). The render frame is y-up, the avatar faces +z
(towards the camera).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dyadic.datasets.specs import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX

__all__ = ["ARKIT_BLENDSHAPES", "BLENDSHAPE_INDEX", "NUM_BODY_JOINTS", "NUM_HAND_JOINTS", "AvatarPose"]

NUM_BODY_JOINTS = 21  # SMPL-H body joints 1..21 (pelvis is global_orient)
NUM_HAND_JOINTS = 15


def _zeros(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


@dataclass
class AvatarPose:
    """One frame of one avatar. Arrays are float32; axis-angle rotations in radians."""

    body_pose: np.ndarray = field(default_factory=lambda: _zeros(NUM_BODY_JOINTS, 3))
    left_hand_pose: np.ndarray = field(default_factory=lambda: _zeros(NUM_HAND_JOINTS, 3))
    right_hand_pose: np.ndarray = field(default_factory=lambda: _zeros(NUM_HAND_JOINTS, 3))
    global_orient: np.ndarray = field(default_factory=lambda: _zeros(3))
    transl: np.ndarray = field(default_factory=lambda: _zeros(3))
    face: np.ndarray = field(default_factory=lambda: _zeros(len(ARKIT_BLENDSHAPES)))  # [0, 1]
    head_rotation: np.ndarray | None = None  # extra axis-angle on the head joint, or None

    def set_face(self, **weights: float) -> AvatarPose:
        """Set blendshape weights by ARKit name: `pose.set_face(jawOpen=0.4)`."""
        for name, w in weights.items():
            self.face[BLENDSHAPE_INDEX[name]] = w
        return self

    def weight(self, name: str) -> float:
        return float(self.face[BLENDSHAPE_INDEX[name]])

    def copy(self) -> AvatarPose:
        """An independent copy (every array copied)."""
        return AvatarPose(
            self.body_pose.copy(),
            self.left_hand_pose.copy(),
            self.right_hand_pose.copy(),
            self.global_orient.copy(),
            self.transl.copy(),
            self.face.copy(),
            None if self.head_rotation is None else self.head_rotation.copy(),
        )
