"""The default avatar: generated model file, smplx's SMPL-H loader, skinning and the face rig."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dyadic.renderer import default_avatar
from dyadic.renderer.avatar import Avatar, BodyModelError, find_body_model
from dyadic.renderer.idle import relaxed_pose
from dyadic.renderer.pose import AvatarPose


@pytest.fixture(scope="session")
def avatar(tmp_path_factory):
    import os

    os.environ.setdefault("DYADIC_CACHE", str(tmp_path_factory.mktemp("dyadic-cache")))
    return Avatar()


def test_smplx_loads_generated_file_through_its_smplh_path(avatar):
    import smplx

    model = smplx.create(
        str(default_avatar.default_model_dir()),
        model_type="smplh",
        gender="neutral",
        ext="npz",
        use_pca=False,
        num_betas=16,
    )
    assert type(model) is smplx.SMPLH
    data = np.load(default_avatar.default_model_dir() / default_avatar.SMPLH_FILE)
    v = data["v_template"].shape[0]
    assert 6000 <= v <= 8000  # about SMPL's 6890, so costs are representative
    assert data["shapedirs"].shape == (v, 3, 16)
    assert data["posedirs"].shape == (v, 3, 459)
    assert data["J_regressor"].shape == (52, v)
    assert data["weights"].shape == (v, 52)
    assert data["kintree_table"].shape == (2, 52)
    assert data["f"].shape[1] == 3
    for side in "lr":
        assert data[f"hands_components{side}"].shape == (45, 45)
        assert data[f"hands_mean{side}"].shape == (45,)
    np.testing.assert_allclose(data["weights"].sum(1), 1.0, atol=1e-9)
    # the regressor reproduces the joint centres exactly
    np.testing.assert_allclose(data["J_regressor"] @ data["v_template"], data["J"], atol=1e-9)
    # smplx's own forward pass agrees with Avatar (up to the pelvis-origin shift)
    out = model(return_verts=True).vertices[0].detach().numpy()
    np.testing.assert_allclose(avatar.vertices(AvatarPose()), out - avatar._pelvis, atol=1e-5)


def test_proportions_and_faces(avatar):
    v = avatar.vertices(AvatarPose())
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.65 < height < 1.85
    head = v[avatar.head_vertex_mask]
    assert head[:, 1].min() > 0.5 and head[:, 2].max() > 0.1  # head on top, face towards +z
    assert avatar.faces.max() < avatar.num_vertices and avatar.has_face_rig
    assert avatar.vertex_colors.shape == (avatar.num_vertices, 3)


def test_bent_elbow_moves_forearm_not_legs(avatar):
    rest = avatar.vertices(AvatarPose())
    bent = AvatarPose()
    bent.body_pose[17] = (0.0, -1.2, 0.0)  # left elbow (joint 18)
    moved = np.linalg.norm(avatar.vertices(bent) - rest, axis=1)
    forearm = rest[:, 0] > 0.52  # left forearm and hand in the T-pose
    legs = rest[:, 1] < -0.2
    assert moved[forearm].min() > 0.01
    assert moved[legs].max() < 1e-6
    assert moved[rest[:, 0] < 0].max() < 1e-6  # the right side stays


def test_face_rig_moves_only_the_head(avatar):
    rest = avatar.vertices(AvatarPose())
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft", "browInnerUp"):
        posed = avatar.vertices(AvatarPose().set_face(**{name: 1.0}))
        moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
        assert moved.any(), name
        assert not (moved & ~avatar.head_vertex_mask).any(), name


def test_head_rotation_turns_the_head(avatar):
    pose = AvatarPose()
    pose.head_rotation = np.array([0.0, 0.6, 0.0], np.float32)
    rest, turned = avatar.vertices(AvatarPose()), avatar.vertices(pose)
    head = avatar.head_vertex_mask
    assert np.linalg.norm(turned[head] - rest[head], axis=1).max() > 0.03
    assert np.abs(turned[~head] - rest[~head])[rest[~head, 1] < 0.4].max() < 1e-6


def test_batch_matches_single(avatar):
    poses = [relaxed_pose(), relaxed_pose().set_face(jawOpen=0.5)]
    batch = avatar.vertices_batch(poses)
    assert batch.shape == (2, avatar.num_vertices, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1], avatar.vertices(poses[1]), atol=1e-5)


def test_body_model_folder_errors(tmp_path):
    with pytest.raises(BodyModelError, match="expected SMPLH_"):
        find_body_model(tmp_path)
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"")
    assert find_body_model(tmp_path) == ("smplx", tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    pkl = tmp_path / "h"
    pkl.mkdir()
    # a pickle that needs chumpy, like the original SMPL-H release
    (pkl / "SMPLH_female.pkl").write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00.")
    with pytest.raises(BodyModelError, match="chumpy"):
        Avatar(pkl)


def test_skinned_normals_match_the_posed_surface(avatar):
    """The normals that come with the skinning (rest normals turned by the bones) agree with the
    normals of the posed mesh itself, so the lighting follows a bent arm or a turned torso."""
    from dyadic.renderer.normals import VertexNormals

    pose = relaxed_pose()
    pose.body_pose[17] = (0.0, -1.2, 0.0)  # bend the left elbow too
    verts, normals = avatar.skin_with_normals([pose])
    assert np.allclose(verts[0], avatar.vertices(pose), atol=1e-5)
    assert np.allclose(np.linalg.norm(normals[0], axis=1), 1.0, atol=1e-4)
    from_faces = VertexNormals(avatar.faces, avatar.num_vertices)(verts[0])
    cos = np.einsum("ij,ij->i", normals[0], from_faces)
    assert np.median(cos) > 0.99 and np.mean(cos > 0.9) > 0.95


def test_fast_skinning_matches_smplx_lbs(avatar):
    """The mannequin's fast path (numpy tree kinematics, no zero pose correctives) gives what
    smplx's own lbs() gives for the same bent, turned, translated poses."""
    import torch
    from smplx.lbs import lbs

    from dyadic.renderer.idle import idle_pose
    from dyadic.renderer.pose import BLENDSHAPE_INDEX

    poses = [idle_pose(0.7, seed=1, talking=True), idle_pose(2.1, seed=2)]
    poses[1].transl = np.array([0.3, -0.1, 0.2], np.float32)
    poses[1].set_face(jawOpen=0.6, mouthSmileLeft=0.8, eyeBlinkRight=1.0)
    verts, joints = avatar.skin(poses)
    # the reference adds the face rig to the rest pose before skinning, as its file describes it
    rig = np.load(default_avatar.default_model_dir() / "face_rig.npz")
    rest = np.repeat(avatar.model.v_template.numpy()[None], 2, axis=0)
    for k, name in enumerate(rig["names"]):
        weights = np.array([p.face[BLENDSHAPE_INDEX[str(name)]] for p in poses])
        rest[:, rig["vertex_ids"]] += weights[:, None, None] * rig["deltas"][k]
    m = avatar.model
    with torch.inference_mode():
        full = torch.from_numpy(avatar._full_pose(poses).astype(np.float32)).view(2, -1)
        ref_v, ref_j = lbs(
            torch.zeros(2, m.shapedirs.shape[-1]),
            full,
            torch.from_numpy(rest),
            m.shapedirs,
            m.posedirs,
            m.J_regressor,
            m.parents,
            m.lbs_weights,
        )
    offset = np.stack([p.transl for p in poses])[:, None] - avatar._pelvis
    np.testing.assert_allclose(verts, ref_v.numpy() + offset, atol=1e-5)
    np.testing.assert_allclose(joints, ref_j.numpy() + offset, atol=1e-5)


def test_models_with_pose_correctives_go_through_smplx_lbs(avatar, tmp_path):
    """A real SMPL-H has pose correctives, so it takes smplx's lbs() itself (not the sparse path);
    its normals then come from the faces (None here)."""
    import torch
    from smplx.lbs import lbs

    from dyadic.renderer.idle import idle_pose

    data = dict(np.load(default_avatar.default_model_dir() / default_avatar.SMPLH_FILE))
    data["posedirs"] = np.random.default_rng(0).normal(0, 1e-3, data["posedirs"].shape)
    (tmp_path / "smplh").mkdir()
    np.savez(tmp_path / "smplh" / "SMPLH_NEUTRAL.npz", **data)
    real = Avatar(tmp_path)
    assert real.kind == "smplh" and real._skinning is None and not real.has_face_rig
    poses = [idle_pose(0.7, seed=1), idle_pose(1.9, seed=2)]
    poses[1].transl = np.array([0.2, 0.0, -0.1], np.float32)
    verts, normals = real.skin_with_normals(poses)
    assert normals is None
    m = real.model
    with torch.inference_mode():
        full = torch.from_numpy(real._full_pose(poses).astype(np.float32)).view(2, -1)
        ref, _ = lbs(
            torch.zeros(2, m.shapedirs.shape[-1]),
            full,
            m.v_template.expand(2, -1, -1),
            m.shapedirs,
            m.posedirs,
            m.J_regressor,
            m.parents,
            m.lbs_weights,
        )
    offset = np.stack([p.transl for p in poses])[:, None] - real._pelvis
    np.testing.assert_allclose(verts, ref.numpy() + offset, atol=1e-5)
    # the correctives do move the surface: the sparse path would have missed them
    assert np.abs(verts - avatar.skin(poses)[0]).max() > 1e-4


def test_face_rig_must_follow_single_joints(avatar, tmp_path, monkeypatch):
    """The rig is added after skinning, turned by its joint: right only for vertices that follow one
    joint rigidly and that no joint centre is regressed from. The generated model holds both, and
    a model that breaks the first is refused with the file and field named."""
    folder = default_avatar.default_model_dir()
    rig = np.load(folder / "face_rig.npz")["vertex_ids"]
    data = dict(np.load(folder / default_avatar.SMPLH_FILE))
    assert np.all(data["weights"][rig].max(1) == 1.0) and not data["J_regressor"][:, rig].any()
    broken = tmp_path / folder.name
    shutil.copytree(folder, broken)
    data["weights"][rig[0]] = 0.0
    data["weights"][rig[0], [12, 15]] = 0.5  # shared by the neck and the head
    np.savez(broken / default_avatar.SMPLH_FILE, **data)
    monkeypatch.setenv("DYADIC_CACHE", str(tmp_path))
    with pytest.raises(BodyModelError, match=r"face_rig.npz: vertex_ids"):
        Avatar()
