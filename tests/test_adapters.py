"""Pose adapters: dataset channels -> AvatarPose through the one documented table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dyadic.datasets.specs import REACT_AU_ORDER, SEAMLESS_FAU_ORDER
from dyadic.renderer.adapters import (
    AU_TO_BLENDSHAPES,
    SEATED_BODY_POSE,
    camera_to_render_orient,
    react_head_rotation,
    react_pose,
    seamless_pose,
)
from dyadic.renderer.pose import BLENDSHAPE_INDEX


def seamless_frame(**over):
    ch = {
        "smplh:global_orient": np.array([np.pi, 0, 0], np.float32),
        "smplh:body_pose": np.zeros((21, 3), np.float32),
        "smplh:left_hand_pose": np.zeros((15, 3), np.float32),
        "smplh:right_hand_pose": np.zeros((15, 3), np.float32),
        "movement:FAUValue": np.zeros(24, np.float32),
    }
    ch.update(over)
    return ch


def test_every_au_in_the_table_drives_known_blendshapes():
    for au, shapes in AU_TO_BLENDSHAPES.items():
        assert set(shapes) <= set(BLENDSHAPE_INDEX), au
    # every AU the two datasets carry is mapped, except those with no ARKit counterpart
    assert set(SEAMLESS_FAU_ORDER) <= set(AU_TO_BLENDSHAPES)
    assert set(REACT_AU_ORDER) <= set(AU_TO_BLENDSHAPES)


def test_upright_person_facing_the_camera_faces_the_viewer():
    # HMR-style camera frame: y down; a person facing the camera has global_orient ~ pi about x
    orient = camera_to_render_orient(np.array([np.pi, 0.0, 0.0]))
    assert np.allclose(Rotation.from_rotvec(orient).as_matrix(), np.eye(3), atol=1e-6)
    turned = camera_to_render_orient(Rotation.from_euler("xy", [np.pi, 0.3]).as_rotvec())
    assert abs(np.linalg.norm(turned) - 0.3) < 1e-5  # a head turn stays a turn of the same size


def test_seamless_smile_au_gives_a_smile_and_nothing_else():
    fau = np.zeros(24, np.float32)
    fau[SEAMLESS_FAU_ORDER.index("AU12")] = 0.5
    pose = seamless_pose(seamless_frame(**{"movement:FAUValue": fau}))
    assert pose.weight("mouthSmileLeft") == pytest.approx(0.5)
    assert pose.weight("mouthSmileRight") == pytest.approx(0.5)
    assert np.count_nonzero(pose.face) == 2


def test_seamless_intensities_saturate_at_one():
    fau = np.full(24, 2.0, np.float32)  # the dataset's range is [0, 2]
    pose = seamless_pose(seamless_frame(**{"movement:FAUValue": fau}))
    assert pose.face.max() == pytest.approx(1.0) and pose.face.min() >= 0.0


def test_seamless_without_face_features_keeps_a_neutral_face():
    ch = seamless_frame()
    del ch["movement:FAUValue"]  # non-V00 vendors have no movement features
    assert not seamless_pose(ch).face.any()


def test_react_uses_3dmm_expression_aus_and_head_pose_on_a_seated_body():
    expression = np.zeros(52, np.float32)
    expression[BLENDSHAPE_INDEX["jawOpen"]] = 0.7
    aus = np.zeros(15, np.float32)
    aus[REACT_AU_ORDER.index("AU12")] = 1.0
    pose = react_pose(
        {
            "react:3dmm_expression": expression,
            "react:au": aus,
            "react:3dmm_rotation": np.array([np.pi + 0.1, 0.0, 0.0], np.float32),
        }
    )
    assert pose.weight("jawOpen") == pytest.approx(0.7)
    assert pose.weight("mouthSmileLeft") == pytest.approx(1.0)
    assert np.allclose(pose.body_pose, SEATED_BODY_POSE)  # no body motion is made up
    assert np.allclose(pose.head_rotation, [0.1, 0, 0], atol=1e-6)  # the tracker's half turn folded away


def test_react_head_rotation_is_identity_for_a_frontal_face():
    assert np.allclose(react_head_rotation(np.zeros(3)), 0)
