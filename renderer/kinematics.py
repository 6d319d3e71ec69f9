"""Forward kinematics of a joint tree, level by level, in numpy.

smplx's batch_rigid_transform walks the 52 joints one by one with small torch ops; at the batch
sizes of a live engine (1-8 bodies) that is ~1.3 ms of per-op overhead. The same chain evaluated
one tree level at a time (12 levels for SMPL-H) is a dozen batched 4x4 products: ~0.1 ms.
The result is the same as smplx's (tested against it).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


class TreeKinematics:
    """Posed joints and per-joint skinning transforms for a fixed tree and rest joints."""

    def __init__(self, parents: np.ndarray, rest_joints: np.ndarray):
        self.parents = np.asarray(parents, dtype=np.int64)
        self.rest_joints = np.asarray(rest_joints, dtype=np.float64)  # (J, 3)
        offsets = self.rest_joints.copy()
        offsets[1:] -= self.rest_joints[self.parents[1:]]
        self.offsets = offsets  # each joint relative to its parent, the root absolute
        depth = np.zeros(len(self.parents), dtype=np.int64)
        for j in range(1, len(self.parents)):
            depth[j] = depth[self.parents[j]] + 1  # parents precede children in SMPL trees
        self.levels = [np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)]

    def __call__(self, rotvecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rotvecs (B, J, 3) axis-angle -> (joints (B, J, 3), transforms (B, J, 4, 4)).

        transforms[b, j] maps a rest-pose point rigidly attached to joint j to its posed place
        (smplx's "relative" transforms: world transform with the rest joint taken out).
        """
        b, n = rotvecs.shape[:2]
        world = np.zeros((b, n, 4, 4))
        world[..., :3, :3] = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(b, n, 3, 3)
        world[..., :3, 3] = self.offsets
        world[..., 3, 3] = 1.0
        for idx in self.levels:  # local -> world, one tree level at a time
            world[:, idx] = world[:, self.parents[idx]] @ world[:, idx]
        joints = world[..., :3, 3].copy()
        world[..., :3, 3] -= np.einsum("bjik,jk->bji", world[..., :3, :3], self.rest_joints)
        return joints, world
