"""The avatar as binary glTF 2.0 (`/avatar.glb`), for pages that draw it themselves (three.js).

Exported from the same `Avatar` the server skins, so that the browser's linear blend skinning of
this file gives the server's vertices:
- the rest mesh in the avatar's body frame (relative to the rest pelvis, as Avatar's output), smooth
  normals, and two vertex colour sets in linear RGB: COLOR_0 the speaker's albedo, COLOR_1 the
  listener's (the renderer's shirt colour, which tells the two apart);
- the body model's skeleton (52 joints for SMPL-H, 55 for SMPL-X), one node per joint named as
  smplx names it, each at its rest offset from its parent, and the skin weights (the four largest
  per vertex, renormalised: glTF and three.js take four; the embedded avatar has at most three);
- the face rig as morph targets named by ARKit (`mesh.extras.targetNames`, three.js's
  morphTargetDictionary), stored sparse: each moves only the rig's face vertices. The rig moves each
  of its vertices rigidly with one joint, so a morph before skinning equals the server's offset
  added after it.

A pose then maps onto the nodes directly (AvatarPose -> Avatar.full_pose): node j's rotation is
joint j's axis-angle, and the root node's translation is the pose's `transl`. What glTF cannot carry
is left out: a real SMPL-H/SMPL-X model's pose correctives (posedirs) and SMPL-X's expression space.

Written with pygltflib (the glTF structure as dataclasses, its GLB container) rather than by hand.
"""

from __future__ import annotations

import numpy as np
import pygltflib as g
from smplx.joint_names import JOINT_NAMES

from .avatar import Avatar
from .offscreen import LISTENER_SHIRT, srgb_to_linear
from .pose import ARKIT_BLENDSHAPES

INFLUENCES = 4  # joints per vertex, glTF's JOINTS_0/WEIGHTS_0


def joint_names(kind: str, num_joints: int) -> list[str]:
    """smplx's names in the model's joint order (SMPL-H has no jaw and eyes)."""
    names = JOINT_NAMES[:22] + (JOINT_NAMES[22:25] if kind == "smplx" else []) + JOINT_NAMES[25:55]
    return names[:num_joints] if len(names) >= num_joints else [f"joint_{j}" for j in range(num_joints)]


def _top_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 4) joint ids and weights: the four largest per vertex, summing to 1."""
    ids = np.argsort(-weights, axis=1)[:, :INFLUENCES]
    w = np.take_along_axis(weights, ids, axis=1).clip(min=0)
    w /= w.sum(axis=1, keepdims=True)
    ids[w == 0] = 0  # glTF: unused influences point at joint 0 with weight 0
    return ids.astype(np.uint8 if weights.shape[1] <= 256 else np.uint16), w.astype(np.float32)


class _Blob:
    """The GLB's one binary buffer, its views and accessors, built as the file is described."""

    def __init__(self, gltf: g.GLTF2):
        self.gltf = gltf
        self.data = bytearray()

    def view(self, array: np.ndarray, target: int | None = None) -> int:
        while len(self.data) % 4:  # accessors must be aligned to their component size
            self.data.append(0)
        raw = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(
            g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target)
        )
        self.data += raw
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        component = {
            np.dtype(np.float32): g.FLOAT,
            np.dtype(np.uint32): g.UNSIGNED_INT,
            np.dtype(np.uint16): g.UNSIGNED_SHORT,
            np.dtype(np.uint8): g.UNSIGNED_BYTE,
        }[array.dtype]
        flat = array.reshape(len(array), -1)
        acc = g.Accessor(
            bufferView=self.view(array, target),
            componentType=component,
            count=len(array),
            type=kind,
            min=flat.min(axis=0).tolist() if bounds else None,
            max=flat.max(axis=0).tolist() if bounds else None,
        )
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_accessor(self, count: int, ids: np.ndarray, deltas: np.ndarray) -> int:
        """A VEC3 float accessor of `count` zeros but for `deltas` at `ids` (glTF sparse storage)."""
        acc = g.Accessor(
            componentType=g.FLOAT,
            count=count,
            type=g.VEC3,
            min=np.minimum(deltas.min(axis=0), 0).tolist(),
            max=np.maximum(deltas.max(axis=0), 0).tolist(),
            sparse=g.Sparse(
                count=len(ids),
                indices=g.AccessorSparseIndices(
                    bufferView=self.view(ids.astype(np.uint32)), componentType=g.UNSIGNED_INT
                ),
                values=g.AccessorSparseValues(bufferView=self.view(deltas.astype(np.float32))),
            ),
        )
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def avatar_glb(avatar: Avatar) -> bytes:
    """The avatar as a GLB file (see the module's docstring)."""
    rest = avatar.rest_mesh()
    joints, parents = avatar.rest_joints(), avatar.parents()
    speaker = srgb_to_linear(avatar.vertex_colors).astype(np.float32)
    listener_srgb = avatar.vertex_colors.copy()
    if (shirt := avatar.part_mask("shirt")) is not None:
        listener_srgb[shirt] = LISTENER_SHIRT
    listener = srgb_to_linear(listener_srgb).astype(np.float32)

    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="dyadic"))
    blob = _Blob(gltf)
    influence_ids, influence_w = _top_influences(avatar.skin_weights())
    attributes = g.Attributes(
        POSITION=blob.accessor(rest, g.VEC3, g.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.accessor(avatar.rest_normals(), g.VEC3, g.ARRAY_BUFFER),
        COLOR_0=blob.accessor(speaker, g.VEC3, g.ARRAY_BUFFER),
        COLOR_1=blob.accessor(listener, g.VEC3, g.ARRAY_BUFFER),
        JOINTS_0=blob.accessor(influence_ids, g.VEC4, g.ARRAY_BUFFER),
        WEIGHTS_0=blob.accessor(influence_w, g.VEC4, g.ARRAY_BUFFER),
    )
    targets, names = [], []
    if avatar.has_face_rig:
        ids, basis = avatar.face_basis()
        for k, name in enumerate(ARKIT_BLENDSHAPES):
            moved = np.any(basis[k] != 0, axis=1)  # each shape moves a part of the face
            if moved.any():
                targets.append(g.Attributes(POSITION=blob.sparse_accessor(len(rest), ids[moved], basis[k][moved])))
                names.append(name)
    indices = blob.accessor(avatar.faces.astype(np.uint32).reshape(-1), g.SCALAR, g.ELEMENT_ARRAY_BUFFER)
    gltf.meshes.append(
        g.Mesh(
            name="avatar",
            primitives=[g.Primitive(attributes=attributes, indices=indices, targets=targets or None)],
            extras={"targetNames": names} if names else {},
        )
    )

    # joints 0..J-1 are nodes 0..J-1; the skinned mesh is node J
    for j, name in enumerate(joint_names(avatar.kind, len(joints))):
        offset = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0.0)
        children = [int(c) for c in np.flatnonzero(parents == j)]
        gltf.nodes.append(g.Node(name=name, translation=offset.tolist(), children=children or None))
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (len(joints), 1, 1))
    inverse_bind[:, :3, 3] = -joints
    # glTF matrices are column-major: each matrix transposed before it is flattened
    ibm = blob.accessor(inverse_bind.transpose(0, 2, 1).reshape(len(joints), 16).copy(), g.MAT4)
    gltf.skins.append(g.Skin(name="skeleton", joints=list(range(len(joints))), inverseBindMatrices=ibm, skeleton=0))
    gltf.nodes.append(g.Node(name="avatar", mesh=0, skin=0))
    gltf.scenes.append(g.Scene(nodes=[len(joints), 0]))
    gltf.scene = 0
    gltf.buffers.append(g.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes())
