"""Avatar: AvatarPose -> posed vertices, through smplx (SMPL-H or SMPL-X) plus the face rig.

Body models:
- the embedded default (no folder given): the generated mannequin (default_avatar.py), loaded by
  smplx's SMPL-H loader, with its ARKit face rig; each rig vertex follows one joint rigidly, so the
  rig's offsets are added after skinning, turned by that joint (the same as adding them first);
- a real SMPL-H folder: face weights are ignored (SMPL-H has no face);
- a real SMPL-X folder: `jawOpen` drives jaw_pose (pitch); all other face weights, the expression
  space and eye poses are ignored (SMPL-X's expression basis is not ARKit's).
Always: beta = 0, hand poses are full axis-angle (flat hand mean), `head_rotation` is composed onto
joint 15 (head) after the body's own head rotation, in the neck's frame (R = R_extra @ R_body).

Output vertices are in the avatar's body frame: y-up, facing +z, relative to the rest-pose pelvis
(so every body model shares one frame), plus `pose.transl`.

Skinning: models without pose correctives (the mannequin) are skinned by sparse products
(skinning.py) after the joint chain in numpy (kinematics.py), equal to smplx's lbs(); models with
them (real SMPL-H/SMPL-X) go through smplx's lbs() itself.

Threads: torch (lbs(), the face rig's product) runs with torch.set_num_threads(1) by default
(stack-probe section 3b: two torch threads next to llvmpipe on 2 cores gave 40 ms p95 spikes). That
is set once, by the first Avatar created with `torch_threads` not None; pass torch_threads=None to
leave the caller's setting alone.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import lbs, vertices2joints

from .default_avatar import SMPLH_FILE, default_model_dir
from .kinematics import TreeKinematics
from .normals import VertexNormals
from .pose import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX, AvatarPose
from .skinning import SparseSkinning

HEAD_JOINT = 15
SMPLX_JAW_OPEN_RAD = 0.45  # jaw pitch at jawOpen = 1
CLAY = (0.80, 0.72, 0.66)  # colour of real body models, which carry none

_threads_configured = False


class BodyModelError(ValueError):
    """The body-model folder holds nothing smplx can load as SMPL-H or SMPL-X."""


def limit_torch_threads(n: int = 1) -> None:
    """Set torch's intra-op threads once per process (see the module docstring)."""
    global _threads_configured
    if not _threads_configured:
        torch.set_num_threads(n)
        _threads_configured = True


def find_body_model(folder: str | Path, gender: str = "neutral") -> tuple[str, Path]:
    """(kind "smplh"|"smplx", model file) for a user's body-model folder.

    Accepts a folder with SMPLH_<GENDER>.npz/.pkl or SMPLX_<GENDER>.npz/.pkl (any case), a folder
    with an smplh/ or smplx/ subfolder holding those, or a path to such a file. Prefers `gender`,
    then neutral, then any gender, and .npz over .pkl.
    """
    path = Path(folder).expanduser()
    if path.is_file():
        kind = path.name.split("_")[0].lower()
        if kind in ("smplh", "smplx"):
            return kind, path
        raise BodyModelError(f"{path}: expected a SMPLH_*.npz/pkl or SMPLX_*.npz/pkl file")
    if not path.is_dir():
        raise BodyModelError(f"body model folder {path} does not exist")
    for kind in ("smplh", "smplx"):
        for where in (path, path / kind):
            files = [
                f
                for f in where.glob("*")
                if f.is_file() and f.name.lower().startswith(kind + "_") and f.suffix.lower() in (".npz", ".pkl")
            ]
            if files:

                def rank(f: Path):
                    g = f.stem.split("_", 1)[1].lower()
                    return (g != gender.lower(), g != "neutral", f.suffix.lower() != ".npz", f.name)

                return kind, sorted(files, key=rank)[0]
    raise BodyModelError(
        f"no SMPL-H or SMPL-X model in {path}: expected SMPLH_<GENDER>.npz/.pkl or "
        "SMPLX_<GENDER>.npz/.pkl there or in an smplh/ or smplx/ subfolder "
        "(download them from mano.is.tue.mpg.de / smpl-x.is.tue.mpg.de)"
    )


def _load_smplx(kind: str, model_file: Path):
    import smplx

    cls = {"smplh": smplx.SMPLH, "smplx": smplx.SMPLX}[kind]
    kwargs: dict[str, Any] = {
        "ext": model_file.suffix.lower()[1:],
        "use_pca": False,
        "flat_hand_mean": True,
        "num_betas": 16,
        "batch_size": 1,
    }
    if kind == "smplx":
        kwargs.update(num_expression_coeffs=10, use_face_contour=False)
    try:
        # smplx prints a warning for shape spaces under 300 betas (all SMPL-H files): silence it
        with contextlib.redirect_stdout(io.StringIO()):
            return cls(model_path=str(model_file), **kwargs)
    except (ModuleNotFoundError, pickle.UnpicklingError, UnicodeDecodeError) as exc:
        if "chumpy" in str(exc) or model_file.suffix.lower() == ".pkl":
            raise BodyModelError(
                f"{model_file}: this .pkl holds chumpy objects (the original SMPL-family release), "
                "which need the unmaintained chumpy package. Use the .npz version of the model "
                "(the SMPL-X site offers npz downloads; SMPL+H npz files come with AMASS) or "
                "convert the .pkl to .npz once in an environment with chumpy."
            ) from exc
        raise


def _as_slice(ids: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (numpy updates a slice far faster), else as is."""
    if len(ids) and np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids))):
        return slice(int(ids[0]), int(ids[0]) + len(ids))
    return ids


class Avatar:
    """A body model ready to skin AvatarPoses. Not thread-safe; create one per worker thread."""

    def __init__(self, body_model: str | Path | None = None, gender: str = "neutral", torch_threads: int | None = 1):
        if torch_threads is not None:
            limit_torch_threads(torch_threads)
        if body_model is None:
            folder = default_model_dir()
            self.kind, model_file = "default", folder / SMPLH_FILE
            self.model = _load_smplx("smplh", model_file)
        else:
            self.kind, model_file = find_body_model(body_model, gender)
            self.model = _load_smplx(self.kind, model_file)
        self.model_file = model_file
        self.model.requires_grad_(False)
        m = self.model
        self.faces = np.asarray(m.faces, dtype=np.int64)
        self.num_vertices = int(m.v_template.shape[0])
        self.num_joints = int(m.J_regressor.shape[0])
        self._template = m.v_template.detach().clone()
        self._weights = m.lbs_weights
        self._parents = m.parents
        self._has_pose_correctives = bool(m.posedirs.abs().max() > 0)
        self._rest_joints = vertices2joints(m.J_regressor, self._template[None])
        self._pelvis = self._rest_joints[0, 0].numpy().astype(np.float32)
        self._kinematics = TreeKinematics(self._parents.numpy(), self._rest_joints[0].numpy())
        self._skinning = (
            None
            if self._has_pose_correctives
            else SparseSkinning(
                self._weights.numpy(),
                self._template.numpy(),
                VertexNormals(self.faces, self.num_vertices)(self._template.numpy()),
            )
        )

        self.has_face_rig = False
        self.clothing_mask: np.ndarray | None = None
        self._labels: dict[str, np.ndarray] = {}
        if self.kind == "default":
            self._load_default_extras(model_file.parent.parent)
        else:
            w = m.lbs_weights.numpy()
            head_joints = [HEAD_JOINT] + ([22, 23, 24] if self.kind == "smplx" else [])
            self.head_vertex_mask = w[:, head_joints].sum(1) > 0.5
            self.vertex_colors = np.tile(np.array(CLAY, np.float32), (self.num_vertices, 1))

    def _load_default_extras(self, folder: Path) -> None:
        rig = np.load(folder / "face_rig.npz")
        look = np.load(folder / "appearance.npz")
        names = [str(n) for n in rig["names"]]
        self._rig_ids = rig["vertex_ids"].astype(np.int64)
        # The rig's offsets are added after skinning, turned by the one joint each rig vertex
        # follows: the same as adding them to the rest pose, because that joint moves it rigidly.
        rig_weights = self._weights.numpy()[self._rig_ids]
        if not np.allclose(rig_weights.max(1), 1.0):  # a broken generator, not a user's file
            raise BodyModelError(
                f"{folder / 'face_rig.npz'}: vertex_ids: every face-rig vertex must "
                "follow exactly one joint (skinning weight 1)"
            )
        joint_of = rig_weights.argmax(1)
        self._rig_groups = []  # (joint, its vertices in the mesh, their rows in the rig's basis)
        for joint in np.unique(joint_of):
            rows = np.flatnonzero(joint_of == joint)
            self._rig_groups.append((joint, _as_slice(self._rig_ids[rows]), _as_slice(rows)))
        # basis indexed by ARKit order; shapes the rig lacks stay zero
        basis = np.zeros((len(ARKIT_BLENDSHAPES), len(self._rig_ids) * 3), np.float32)
        for k, name in enumerate(names):
            basis[BLENDSHAPE_INDEX[name]] = rig["deltas"][k].reshape(-1)
        self._face_basis = torch.from_numpy(basis)
        self.face_rig_shapes = tuple(names)
        self.has_face_rig = True
        self.head_vertex_mask = look["head_mask"].astype(bool)
        self.clothing_mask = look["clothing_mask"].astype(bool)
        self.vertex_colors = look["vertex_colors"].astype(np.float32)
        labels = look["labels"]
        self._labels = {str(n): labels == i for i, n in enumerate(look["label_names"])}

    def part_mask(self, name: str) -> np.ndarray | None:
        """(V,) bool mask of a named part ("shirt", "skin", "lips", ...), or None if unknown here."""
        return self._labels.get(name)

    # -- the rig as data (gltf.py exports it) -------------------------------------------------
    def rest_mesh(self) -> np.ndarray:
        """(V, 3) float32 rest vertices in the body frame (what vertices() gives at zero pose)."""
        return (self._template.numpy() - self._pelvis).astype(np.float32)

    def rest_normals(self) -> np.ndarray:
        """(V, 3) float32 smooth unit normals of the rest mesh."""
        return VertexNormals(self.faces, self.num_vertices)(self.rest_mesh()).astype(np.float32)

    def rest_joints(self) -> np.ndarray:
        """(J, 3) float32 rest joint centres in the body frame."""
        return (self._rest_joints[0].numpy() - self._pelvis).astype(np.float32)

    def parents(self) -> np.ndarray:
        """(J,) int: each joint's parent, -1 for the root."""
        return self._parents.numpy().astype(np.int64)

    def skin_weights(self) -> np.ndarray:
        """(V, J) float32 linear blend skinning weights."""
        return self._weights.numpy().astype(np.float32)

    def face_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(rig vertex ids (R,), offsets (52, R, 3) in ARKit order, zero for shapes the rig lacks)
        in the rest frame; empty when there is no face rig."""
        if not self.has_face_rig:
            return np.zeros(0, np.int64), np.zeros((len(ARKIT_BLENDSHAPES), 0, 3), np.float32)
        return self._rig_ids.copy(), self._face_basis.numpy().reshape(len(ARKIT_BLENDSHAPES), -1, 3).copy()

    def full_pose(self, poses: list[AvatarPose]) -> np.ndarray:
        """(B, J, 3) float32 axis-angle per joint in the model's order, as skinned (the head
        rotation composed in): node j's rotation in the glTF export."""
        return self._full_pose(poses).astype(np.float32)

    # ------------------------------------------------------------------------------------------
    def _full_pose(self, poses: list[AvatarPose]) -> np.ndarray:
        """(B, J, 3) axis-angle in the model's joint order, head rotation composed in."""
        b = len(poses)
        body = np.stack([p.body_pose for p in poses]).reshape(b, 21, 3).astype(np.float64)
        extra = [(i, p.head_rotation) for i, p in enumerate(poses) if p.head_rotation is not None]
        if extra:
            idx = [i for i, _ in extra]
            r = Rotation.from_rotvec(np.stack([e for _, e in extra]).reshape(-1, 3))
            body[idx, HEAD_JOINT - 1] = (r * Rotation.from_rotvec(body[idx, HEAD_JOINT - 1])).as_rotvec()
        parts = [np.stack([p.global_orient for p in poses]).reshape(b, 1, 3), body]
        if self.kind == "smplx":
            jaw = np.zeros((b, 3, 3))  # jaw, left eye, right eye
            jaw[:, 0, 0] = SMPLX_JAW_OPEN_RAD * np.clip([p.weight("jawOpen") for p in poses], 0, 1)
            parts.append(jaw)
        parts += [
            np.stack([p.left_hand_pose for p in poses]).reshape(b, 15, 3),
            np.stack([p.right_hand_pose for p in poses]).reshape(b, 15, 3),
        ]
        return np.concatenate(parts, axis=1)

    def _add_face(self, verts: np.ndarray, poses: list[AvatarPose], transforms: np.ndarray) -> None:
        """Add the face rig's blendshape offsets to skinned vertices (B, V, 3), in place."""
        if not self.has_face_rig:
            return
        face = np.clip(np.stack([p.face for p in poses]), 0, 1).astype(np.float32)
        if not face.any():
            return
        # torch, not numpy, for this product: numpy hands it to OpenBLAS, whose worker threads
        # then spin on the cores llvmpipe and x264 need (31 % of a replay's CPU, measured);
        # torch runs it on the one thread it is allowed (limit_torch_threads)
        offsets = (torch.from_numpy(face) @ self._face_basis).numpy().reshape(len(poses), -1, 3)
        for joint, vertex_ids, rig_rows in self._rig_groups:
            rotation_t = transforms[:, joint, :3, :3].transpose(0, 2, 1).astype(np.float32)
            verts[:, vertex_ids] += offsets[:, rig_rows] @ rotation_t

    def skin(self, poses: list[AvatarPose]) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (B, V, 3), joints (B, J, 3)) float32 in the body frame."""
        verts, joints, _ = self._skin(poses, with_normals=False)
        return verts, joints

    def skin_with_normals(self, poses: list[AvatarPose]) -> tuple[np.ndarray, np.ndarray | None]:
        """(vertices (B, V, 3), unit normals (B, V, 3) or None) float32 in the body frame.

        For models without pose correctives (the embedded avatar) the normals come with the
        skinning: the rest normals turned by each vertex's blended bone rotation, a fraction of the
        cost of rebuilding them from the faces every frame. (The face rig's small deltas keep their
        neutral normals.) Models skinned with smplx's full lbs() return None: the renderer then
        computes normals from the faces.
        """
        verts, _, normals = self._skin(poses, with_normals=True)
        return verts, normals

    def _skin(self, poses: list[AvatarPose], with_normals: bool):
        m = self.model
        b = len(poses)
        offset = self._offsets(poses)
        if self._skinning is not None:
            # smplx's lbs() minus its pose-corrective matmul, which is all zeros for the mannequin
            # yet costs most of lbs (a 459 x 3V product per frame, stack-probe 3b); the rig's
            # vertices are outside J_regressor, so the rest joints never change: the joint chain
            # is evaluated in numpy (kinematics.py) and the vertices by sparse products (skinning.py)
            joints, transforms = self._kinematics(self._full_pose(poses))
            transforms[..., :3, 3] += offset  # lbs weights sum to 1: the offset moves every vertex
            verts, normals = self._skinning(transforms, with_normals)
            self._add_face(verts, poses, transforms)
            return verts, (joints + offset).astype(np.float32), normals
        with torch.inference_mode():
            full_pose = torch.from_numpy(self._full_pose(poses).astype(np.float32))
            betas = torch.zeros(b, m.shapedirs.shape[-1])
            verts, joints = lbs(
                betas,
                full_pose.view(b, -1),
                self._template.expand(b, -1, -1),
                m.shapedirs,
                m.posedirs,
                m.J_regressor,
                self._parents,
                self._weights,
            )
        return (verts.numpy() + offset), (joints.numpy() + offset), None

    def _offsets(self, poses: list[AvatarPose]) -> np.ndarray:
        """(B, 1, 3) float32: the rest pelvis moved to each pose's translation."""
        return (np.stack([p.transl for p in poses]).astype(np.float32) - self._pelvis)[:, None]

    def vertices_batch(self, poses: list[AvatarPose]) -> np.ndarray:
        """(B, V, 3) float32 posed vertices, one batched skinning call."""
        return self.skin(poses)[0]

    def vertices(self, pose: AvatarPose) -> np.ndarray:
        """(V, 3) float32 posed vertices."""
        return self.skin([pose])[0][0]

    def joints(self, pose: AvatarPose) -> np.ndarray:
        """(J, 3) float32 posed joint centres (52 for SMPL-H, 55 for SMPL-X)."""
        return self.skin([pose])[1][0]
