"""The avatar as glTF: loaded back, skinned from the file alone, it gives the server's vertices."""

from __future__ import annotations

import numpy as np
import pygltflib as g
import pytest
from scipy.spatial.transform import Rotation

from dyadic.renderer.avatar import Avatar
from dyadic.renderer.gltf import avatar_glb
from dyadic.renderer.pose import ARKIT_BLENDSHAPES, AvatarPose

DTYPES = {g.FLOAT: np.float32, g.UNSIGNED_INT: np.uint32, g.UNSIGNED_SHORT: np.uint16, g.UNSIGNED_BYTE: np.uint8}
WIDTH = {g.SCALAR: 1, g.VEC3: 3, g.VEC4: 4, g.MAT4: 16}


@pytest.fixture(scope="module")
def avatar():
    return Avatar()


@pytest.fixture(scope="module")
def glb(avatar):
    return g.GLTF2.load_from_bytes(avatar_glb(avatar))


def _view(gltf: g.GLTF2, index: int, dtype, width: int) -> np.ndarray:
    view = gltf.bufferViews[index]
    raw = gltf.binary_blob()[view.byteOffset : view.byteOffset + view.byteLength]
    return np.frombuffer(raw, dtype).reshape(-1, width)


def _read(gltf: g.GLTF2, index: int) -> np.ndarray:
    """An accessor's values, sparse ones expanded (what a glTF loader does)."""
    acc = gltf.accessors[index]
    dtype, width = DTYPES[acc.componentType], WIDTH[acc.type]
    if acc.bufferView is not None:
        out = _view(gltf, acc.bufferView, dtype, width)[: acc.count].copy()
    else:
        out = np.zeros((acc.count, width), dtype)
    if acc.sparse is not None:
        ids = _view(gltf, acc.sparse.indices.bufferView, DTYPES[acc.sparse.indices.componentType], 1).ravel()
        out[ids] = _view(gltf, acc.sparse.values.bufferView, dtype, width)[: acc.sparse.count]
    return out


def _skin_from_file(gltf: g.GLTF2, pose_aa: np.ndarray, transl: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Linear blend skinning as a glTF viewer does it, from the file's arrays only."""
    prim = gltf.meshes[0].primitives[0]
    verts = _read(gltf, prim.attributes.POSITION).astype(np.float64)
    names = gltf.meshes[0].extras["targetNames"]
    for name, target in zip(names, prim.targets):
        verts += face[ARKIT_BLENDSHAPES.index(name)] * _read(gltf, target["POSITION"])  # loaded back as a dict
    skin = gltf.skins[0]
    parent = {c: p for p, node in enumerate(gltf.nodes) for c in (node.children or [])}
    world = np.zeros((len(skin.joints), 4, 4))
    for j in skin.joints:  # parents come first in SMPL's order
        local = np.eye(4)
        local[:3, :3] = Rotation.from_rotvec(pose_aa[j]).as_matrix()
        local[:3, 3] = np.asarray(gltf.nodes[j].translation) + (transl if j == 0 else 0.0)
        world[j] = local if j not in parent else world[parent[j]] @ local
    ibm = _read(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    ids = _read(gltf, prim.attributes.JOINTS_0).astype(np.int64)
    w = _read(gltf, prim.attributes.WEIGHTS_0)
    per_joint = world @ ibm
    blended = np.einsum("vk,vkij->vij", w, per_joint[ids])
    return np.einsum("vij,vj->vi", blended[:, :3, :3], verts) + blended[:, :3, 3]


def test_the_file_is_valid_glb_with_the_rig_the_server_renders(avatar, glb):
    mesh = glb.meshes[0]
    assert len(glb.skins[0].joints) == avatar.num_joints == 52
    assert [glb.nodes[j].name for j in (0, 15, 20, 51)] == ["pelvis", "head", "left_wrist", "right_thumb3"]
    assert set(mesh.extras["targetNames"]) == set(avatar.face_rig_shapes)  # ARKit names, as morph targets
    attrs = mesh.primitives[0].attributes
    assert _read(glb, attrs.POSITION).shape == (avatar.num_vertices, 3)
    assert np.allclose(_read(glb, attrs.WEIGHTS_0).sum(1), 1.0, atol=1e-6)
    speaker, listener = _read(glb, attrs.COLOR_0), _read(glb, attrs.COLOR_1)
    assert (speaker != listener).any(axis=1).sum() == avatar.part_mask("shirt").sum()  # the listener's shirt
    assert len(avatar_glb(avatar)) < 1_200_000  # sparse morph targets: one page load, not tens of MB


def test_skinning_the_file_gives_the_servers_vertices(avatar, glb):
    rng = np.random.default_rng(7)
    pose = AvatarPose(
        body_pose=rng.normal(0, 0.3, (21, 3)).astype(np.float32),
        left_hand_pose=rng.normal(0, 0.2, (15, 3)).astype(np.float32),
        right_hand_pose=rng.normal(0, 0.2, (15, 3)).astype(np.float32),
        global_orient=np.array([0.1, 0.4, -0.05], np.float32),
        transl=np.array([0.05, -0.1, 0.2], np.float32),
        head_rotation=np.array([0.2, -0.1, 0.05], np.float32),
    ).set_face(jawOpen=0.6, mouthSmileLeft=0.8, eyeBlinkRight=1.0, browInnerUp=0.4)
    expected = avatar.vertices(pose)
    got = _skin_from_file(glb, avatar.full_pose([pose])[0], pose.transl, pose.face)
    assert np.abs(got - expected).max() < 1e-4  # metres: a tenth of a millimetre
