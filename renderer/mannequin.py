"""Geometry of the embedded default avatar: a stylised mannequin on SMPL-H's 52-joint skeleton.

Rest pose is SMPL's T-pose (so dataset SMPL-H poses mean the same thing here): y-up, facing +z, the
avatar's left on +x, pelvis at the origin, about 1.75 m tall. Limbs are tapered capsules whose end
caps are centred on the joints, plus ball joints; because a sphere centred on a joint maps onto
itself under any rotation about that joint, bends stay clean. Skinning weights still blend smoothly
across each joint (over a few cm) so the skin between parts never tears.

Surfaces are lofted from rings by our own small `loft()` rather than trimesh's primitives because we
need tapered, elliptical/superelliptic cross-sections, a known ring structure (for weights, the face
rig and the iris/lid layouts) and deterministic vertex order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_JOINTS = 52
JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    *[f"left_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)],
    *[f"right_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)],
)
# SMPL-H kinematic tree: parent of each joint (fingers chain off their wrist, three per finger).
PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    + [p for base in (22,) for f in range(5) for p in (20, base + 3 * f, base + 3 * f + 1)]
    + [p for base in (37,) for f in range(5) for p in (21, base + 3 * f, base + 3 * f + 1)],
    dtype=np.int64,
)
assert len(JOINT_NAMES) == NUM_JOINTS == len(PARENTS)

# sRGB colours of the parts; the renderer converts to linear.
COLORS = {
    "skin": (0.87, 0.69, 0.56),
    "shirt": (0.24, 0.46, 0.66),
    "trousers": (0.26, 0.27, 0.33),
    "shoes": (0.17, 0.14, 0.13),
    "eye_white": (0.96, 0.96, 0.94),
    "iris": (0.22, 0.36, 0.50),
    "pupil": (0.04, 0.04, 0.05),
    "lid": (0.82, 0.63, 0.51),
    "brow": (0.20, 0.14, 0.11),
    "lips": (0.72, 0.36, 0.36),
    "mouth": (0.26, 0.07, 0.08),
    "teeth": (0.93, 0.92, 0.88),
    "nose": (0.85, 0.64, 0.52),
    "hair": (0.23, 0.16, 0.12),
}
LABELS = tuple(COLORS)
CLOTHING = ("shirt", "trousers", "shoes")


def _left_right(x: float, y: float, z: float) -> list[tuple[float, float, float]]:
    return [(x, y, z), (-x, y, z)]


def rest_joints() -> np.ndarray:
    """(52, 3) joint centres in the rest pose; symmetric, proportions after SMPL's neutral body."""
    j = np.zeros((NUM_JOINTS, 3))
    j[0] = (0, 0, 0)
    j[1], j[2] = _left_right(0.075, -0.085, -0.005)
    j[3] = (0, 0.11, -0.02)
    j[4], j[5] = _left_right(0.10, -0.47, 0.0)
    j[6] = (0, 0.245, -0.015)
    j[7], j[8] = _left_right(0.095, -0.87, -0.04)
    j[9] = (0, 0.30, 0.0)
    j[10], j[11] = _left_right(0.11, -0.935, 0.085)
    j[12] = (0, 0.51, -0.02)
    j[13], j[14] = _left_right(0.075, 0.42, -0.01)
    j[15] = (0, 0.60, 0.02)
    j[16], j[17] = _left_right(0.19, 0.455, -0.02)
    j[18], j[19] = _left_right(0.45, 0.455, -0.03)
    j[20], j[21] = _left_right(0.70, 0.455, -0.03)
    for side, base in ((1.0, 22), (-1.0, 37)):
        for f, (start, lengths) in enumerate(FINGERS.values()):
            p = np.array([side * start[0], start[1], start[2]])
            direction = np.array([side * FINGER_DIRS[f][0], FINGER_DIRS[f][1], FINGER_DIRS[f][2]])
            direction /= np.linalg.norm(direction)
            for k in range(3):
                j[base + 3 * f + k] = p
                p = p + direction * lengths[k]
    return j


# SMPL-H finger order: index, middle, pinky, ring, thumb. Left hand: first joint and phalanx lengths.
# T-pose hand: palm down, fingers along +x, index towards the front (+z), thumb front and down.
FINGERS = {
    "index": ((0.793, 0.455, 0.024), (0.036, 0.025, 0.021)),
    "middle": ((0.798, 0.456, 0.004), (0.040, 0.028, 0.023)),
    "pinky": ((0.782, 0.452, -0.033), (0.028, 0.020, 0.018)),
    "ring": ((0.792, 0.455, -0.015), (0.036, 0.026, 0.021)),
    "thumb": ((0.722, 0.442, 0.028), (0.032, 0.028, 0.024)),
}
FINGER_DIRS = ((1, 0, 0.05), (1, 0, 0), (1, 0, -0.12), (1, 0, -0.06), (0.7, -0.12, 0.7))
FINGER_RADII = {"index": 0.0085, "middle": 0.0088, "pinky": 0.0072, "ring": 0.0082, "thumb": 0.0098}


# ---------------------------------------------------------------------------------------------
# Surfaces


def _frame(axis: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (u, v, d): d along `axis`, u as close to `hint` as possible, u x v = d."""
    d = axis / np.linalg.norm(axis)
    u = hint - d * np.dot(hint, d)
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    return u, np.cross(d, u), d


def loft(centres, u, v, ru, rv, n_around: int, exponent: float = 2.0, phase: float = 0.0):
    """Open tube through rings: ring i is centres[i] + ru[i]*cos(t)*u[i] + rv[i]*sin(t)*v[i].

    `exponent` > 2 gives superelliptic (boxier) rings. Close the ends with `close_tube()`.
    Returns (vertices (R*n_around, 3), faces (F, 3)), vertex index = ring * n_around + k.
    """
    centres, u, v = (np.asarray(a, float) for a in (centres, u, v))
    n_rings = len(centres)
    ru = np.broadcast_to(np.asarray(ru, float), n_rings)
    rv = np.broadcast_to(np.asarray(rv, float), n_rings)
    t = phase + 2 * np.pi * np.arange(n_around) / n_around
    p = 2.0 / exponent
    c, s = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** p, np.sign(np.sin(t)) * np.abs(np.sin(t)) ** p
    rings = (
        centres[:, None, :]
        + ru[:, None, None] * c[None, :, None] * u[:, None, :]
        + rv[:, None, None] * s[None, :, None] * v[:, None, :]
    )
    k = np.arange(n_around)
    k1 = (k + 1) % n_around
    faces = []
    for r in range(n_rings - 1):
        a, b = r * n_around + k, r * n_around + k1
        faces += [np.stack([a, b, b + n_around], 1), np.stack([a, b + n_around, a + n_around], 1)]
    return rings.reshape(-1, 3), np.concatenate(faces)


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def close_tube(verts, faces, n_around, tip0, tip1):
    """Close a loft() tube with a pole vertex at each end and orient all faces outwards."""
    n_rings = len(verts) // n_around
    k = np.arange(n_around)
    k1 = (k + 1) % n_around
    i0, i1 = len(verts), len(verts) + 1
    last = (n_rings - 1) * n_around
    extra = np.concatenate(
        [np.stack([np.full(n_around, i0), k1, k], 1), np.stack([np.full(n_around, i1), last + k, last + k1], 1)]
    )
    verts = np.vstack([verts, tip0, tip1])
    faces = np.vstack([faces, extra])
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]
    return verts, faces


def capsule(
    p0, p1, r0: float, r1: float, n_around: int, n_body: int, n_cap: int, hint=(0, 0, 1.0), flatten: float = 1.0
):
    """Tapered capsule whose hemispherical caps are centred on p0 and p1 (the joints).

    `flatten` < 1 squashes the cross-section along v (e.g. a flat palm). Returns loft()'s result plus
    `s`, each vertex's signed distance along the axis from p0.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    u, v, d = _frame(p1 - p0, np.asarray(hint, float))
    length = np.linalg.norm(p1 - p0)
    alphas = np.linspace(0, np.pi / 2, n_cap + 1)[1:]  # cap rings, from the pole towards the equator
    offsets, radii = [], []
    for a in alphas:
        offsets.append(-r0 * np.cos(a))
        radii.append(r0 * np.sin(a))
    for t in np.linspace(0, 1, n_body + 2)[1:-1]:
        offsets.append(t * length)
        radii.append(r0 + (r1 - r0) * t)
    for a in alphas[::-1]:
        offsets.append(length + r1 * np.cos(a))
        radii.append(r1 * np.sin(a))
    offs, rads = np.array(offsets), np.array(radii)
    centres = p0 + offs[:, None] * d
    n = len(centres)
    verts, faces = loft(centres, np.tile(u, (n, 1)), np.tile(v, (n, 1)), rads, rads * flatten, n_around)
    verts, faces = close_tube(verts, faces, n_around, p0 - d * r0, p1 + d * r1)
    s = (verts - p0) @ d
    return verts, faces, s


def ellipsoid(centre, radii, n_around: int, n_rings: int, axis=(0, 1.0, 0), hint=(1.0, 0, 0), polar_angles=None):
    """Ellipsoid with its poles on `axis` (radii: along u, along v, along the axis).

    `polar_angles` (radians from the pole at -axis towards +axis, exclusive of 0 and pi) lets a
    caller place rings exactly, e.g. at the iris edge of an eye.
    """
    u, v, d = _frame(np.asarray(axis, float), np.asarray(hint, float))
    if polar_angles is None:
        polar_angles = np.linspace(0, np.pi, n_rings + 2)[1:-1]
    a = np.asarray(polar_angles)
    centres = np.asarray(centre, float) - np.cos(a)[:, None] * radii[2] * d
    n = len(a)
    verts, faces = loft(
        centres, np.tile(u, (n, 1)), np.tile(v, (n, 1)), radii[0] * np.sin(a), radii[1] * np.sin(a), n_around
    )
    return close_tube(
        verts, faces, n_around, np.asarray(centre, float) - d * radii[2], np.asarray(centre, float) + d * radii[2]
    )


# ---------------------------------------------------------------------------------------------
# Skinning weights


def _smooth_step(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def chain_weights(s: np.ndarray, bones: list[int], bounds: list[float], blend: float) -> np.ndarray:
    """(n, 52) weights for vertices at coordinate `s` along a chain of bones.

    bones[i] owns s in [bounds[i-1], bounds[i]]; across each bound the weight moves smoothly from
    one bone to the next over +-blend (half and half exactly at the joint). Rows sum to 1.
    """
    w = np.zeros((len(s), NUM_JOINTS))
    edges = [_smooth_step((s - b + blend) / (2 * blend)) for b in bounds]  # 0 below, 1 above
    for i, bone in enumerate(bones):
        lower = edges[i - 1] if i > 0 else 1.0
        upper = edges[i] if i < len(bounds) else 0.0
        w[:, bone] += lower - upper
    return w


def rigid_weights(n: int, bone: int) -> np.ndarray:
    w = np.zeros((n, NUM_JOINTS))
    w[:, bone] = 1.0
    return w


# ---------------------------------------------------------------------------------------------
# Assembly


@dataclass
class Part:
    name: str
    verts: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    labels: np.ndarray  # (n,) index into LABELS
    head: bool = False  # part of the head (moves with the head joint, carries the face rig)


@dataclass
class MeshBuilder:
    parts: list[Part] = field(default_factory=list)

    def add(self, name, verts, faces, weights, label: str | np.ndarray, head: bool = False) -> Part:
        labels = np.full(len(verts), LABELS.index(label)) if isinstance(label, str) else np.asarray(label)
        part = Part(name, np.asarray(verts, float), np.asarray(faces, np.int64), weights, labels, head)
        self.parts.append(part)
        return part

    def offset(self, name: str) -> int:
        n = 0
        for p in self.parts:
            if p.name == name:
                return n
            n += len(p.verts)
        raise KeyError(name)

    def build(self):
        verts, faces, weights, labels, head, n = [], [], [], [], [], 0
        for p in self.parts:
            verts.append(p.verts)
            faces.append(p.faces + n)
            weights.append(p.weights)
            labels.append(p.labels)
            head.append(np.full(len(p.verts), p.head))
            n += len(p.verts)
        return (
            np.concatenate(verts),
            np.concatenate(faces),
            np.concatenate(weights),
            np.concatenate(labels),
            np.concatenate(head),
        )


def _torso(b: MeshBuilder, J: np.ndarray) -> None:
    # (height, half width, half depth, z centre): hips -> waist -> chest -> shoulders -> neck base
    profile = np.array(
        [
            (-0.155, 0.02, 0.02, -0.01),
            (-0.15, 0.10, 0.075, -0.005),
            (-0.12, 0.145, 0.098, 0.0),
            (-0.06, 0.160, 0.106, 0.0),
            (0.015, 0.158, 0.102, -0.005),
            (0.03, 0.155, 0.100, -0.006),
            (0.045, 0.152, 0.098, -0.007),
            (0.12, 0.146, 0.094, -0.01),
            (0.22, 0.158, 0.102, -0.005),
            (0.32, 0.172, 0.108, 0.0),
            (0.40, 0.185, 0.100, -0.01),
            (0.45, 0.185, 0.085, -0.015),
            (0.485, 0.14, 0.070, -0.02),
            (0.505, 0.07, 0.055, -0.02),
            (0.51, 0.02, 0.02, -0.02),
        ]
    )
    y = np.interp(np.linspace(0, 1, 25), np.linspace(0, 1, len(profile)), profile[:, 0])
    # denser rings where the profile changes fast: resample the profile by arc position
    a = np.interp(y, profile[:, 0], profile[:, 1])
    d = np.interp(y, profile[:, 0], profile[:, 2])
    z = np.interp(y, profile[:, 0], profile[:, 3])
    n = len(y)
    centres = np.stack([np.zeros(n), y, z], 1)
    verts, faces = loft(centres, np.tile([1.0, 0, 0], (n, 1)), np.tile([0, 0, -1.0], (n, 1)), a, d, 44, exponent=2.6)
    verts, faces = close_tube(verts, faces, 44, centres[0], centres[-1])
    s = verts[:, 1]
    w = chain_weights(s, [0, 3, 6, 9, 12], [J[3, 1], J[6, 1], J[9, 1], J[12, 1] - 0.01], 0.05)
    # the shoulder tops follow the collar bones
    collar = _smooth_step((np.abs(verts[:, 0]) - 0.06) / 0.08) * _smooth_step((verts[:, 1] - 0.36) / 0.07)
    for side, joint in ((1, 13), (-1, 14)):
        m = collar * (np.sign(verts[:, 0]) == side)
        w *= (1 - m)[:, None]
        w[:, joint] += m
    labels = np.where(verts[:, 1] < 0.035, LABELS.index("trousers"), LABELS.index("shirt"))
    b.add("torso", verts, faces, w, labels)


def _limbs(b: MeshBuilder, J: np.ndarray) -> None:
    def seg(
        name,
        j0,
        end,
        r0,
        r1,
        parent,
        child,
        label,
        n_around=20,
        n_body=6,
        n_cap=4,
        blend=0.03,
        hint=(0, 0, 1.0),
        flatten=1.0,
    ):
        """Capsule for bone j0 from J[j0] to `end`, blending into `parent` and `child` (or None)."""
        p1 = np.asarray(end, float)
        verts, faces, s = capsule(J[j0], p1, r0, r1, n_around, n_body, n_cap, hint, flatten)
        length = float(np.linalg.norm(p1 - J[j0]))
        bones, bounds = [parent, j0], [0.0]
        if child is not None:
            bones.append(child)
            bounds.append(length)
        label_arr = label(s, length) if callable(label) else label
        b.add(name, verts, faces, chain_weights(s, bones, bounds, blend), label_arr)

    def ball(name, j, r, label, n_around=16, n_rings=9):
        verts, faces = ellipsoid(J[j], (r, r, r), n_around, n_rings)
        b.add(name, verts, faces, rigid_weights(len(verts), j), label)

    for side, (hip, knee, ankle, foot) in (("l", (1, 4, 7, 10)), ("r", (2, 5, 8, 11))):
        seg(f"thigh_{side}", hip, J[knee], 0.078, 0.054, 0, knee, "trousers", n_around=16, n_body=5)
        ball(f"knee_{side}", knee, 0.056, "trousers", n_around=12, n_rings=7)
        seg(f"shin_{side}", knee, J[ankle], 0.050, 0.036, hip, ankle, "trousers", n_around=14, n_body=4, n_cap=3)
        ball(f"ankle_{side}", ankle, 0.038, "shoes", n_around=10, n_rings=5)
        heel = J[ankle] + (0, -0.055, -0.05)
        toe = J[foot] + (0, -0.02, 0.075)
        verts, faces, s = capsule(heel, toe, 0.04, 0.035, 12, 4, 3, hint=(1.0, 0, 0), flatten=0.75)
        w = chain_weights(s, [ankle, foot], [float(np.linalg.norm(J[foot] - heel))], 0.03)
        b.add(f"foot_{side}", verts, faces, w, "shoes")

    for side, (collar, shoulder, elbow, wrist, base) in (("l", (13, 16, 18, 20, 22)), ("r", (14, 17, 19, 21, 37))):
        sx = 1.0 if side == "l" else -1.0
        ball(f"shoulder_{side}", shoulder, 0.053, "shirt", n_around=18, n_rings=9)
        # short sleeves: the upper arm is shirt down to 60% of its length, then skin
        seg(
            f"upper_arm_{side}",
            shoulder,
            J[elbow],
            0.050,
            0.041,
            collar,
            elbow,
            lambda s, L: np.where(s < 0.6 * L, LABELS.index("shirt"), LABELS.index("skin")),
            n_around=18,
            n_body=6,
        )
        ball(f"elbow_{side}", elbow, 0.043, "skin", n_around=14, n_rings=7)
        seg(f"forearm_{side}", elbow, J[wrist], 0.040, 0.029, shoulder, wrist, "skin", n_around=16, n_body=5)
        ball(f"wrist_{side}", wrist, 0.031, "skin", n_around=10, n_rings=6)
        # palm: a flattened capsule from the wrist to the knuckles, palm facing down (-y)
        knuckles = J[base + 3] - np.array([sx * 0.012, 0, 0])
        verts, faces, s = capsule(
            J[wrist] + (sx * 0.012, 0, 0), knuckles, 0.040, 0.042, 14, 4, 3, hint=(0, 0, 1.0), flatten=0.42
        )
        w = chain_weights(s, [elbow, wrist], [-0.01], 0.015)
        b.add(f"palm_{side}", verts, faces, w, "skin")
        for f, fname in enumerate(FINGERS):
            r = FINGER_RADII[fname]
            lengths = FINGERS[fname][1]
            for k in range(3):
                j0 = base + 3 * f + k
                child = j0 + 1 if k < 2 else None
                if child is not None:
                    end = J[child]
                else:  # the fingertip continues the last phalanx's direction
                    direction = J[j0] - J[j0 - 1]
                    end = J[j0] + direction / np.linalg.norm(direction) * lengths[2]
                seg(
                    f"{fname}{k + 1}_{side}",
                    j0,
                    end,
                    r,
                    r * 0.93,
                    PARENTS[j0],
                    child,
                    "skin",
                    n_around=7,
                    n_body=1,
                    n_cap=1,
                    blend=0.006,
                    hint=(0, 1.0, 0),
                )
                r *= 0.93

    # neck: from inside the torso up into the head
    verts, faces, s = capsule(J[12] + (0, -0.06, 0), J[15] + (0, 0.02, 0.0), 0.057, 0.052, 24, 6, 2)
    neck_len = float(np.linalg.norm(J[15] - J[12]))
    w = chain_weights(s - 0.06, [9, 12, 15], [0.0, neck_len], 0.025)
    b.add("neck", verts, faces, w, "skin")


def build_body(J: np.ndarray) -> MeshBuilder:
    """Everything but the head: torso, neck, arms, hands, legs."""
    b = MeshBuilder()
    _torso(b, J)
    _limbs(b, J)
    return b
