"""The default avatar's stylised head and its face rig (ARKit-named blendshapes).

The head is an ellipsoid with separate features in front of it: eyeballs (white, iris, pupil as
rings around the gaze axis so the iris edge is crisp), upper and lower eyelids (spherical shells
around each eye whose rows slide to close, widen or squint), brows, a nose, lips (a closed tube
around the mouth) and a dark mouth "decal" between the lips that stretches open with the jaw.
Features sit a millimetre or two in front of the skin, so no boolean cut of the head is needed.

Every blendshape is a rest-space vertex offset, stored sparse (head vertices only) and added to the
template before skinning, so the head carries it. Rotational shapes (jaw, eye gaze, lids) are stored
as the exact offset at weight 1; intermediate weights interpolate linearly, which is why the lids
are a little larger than the eyes (the chord of a half-closed lid stays outside the eyeball).
ARKit shapes not listed in SHAPES (tongueOut) have no effect on this avatar.
"""

from __future__ import annotations

import numpy as np

from .mannequin import LABELS, MeshBuilder, _frame, _smooth_step, close_tube, ellipsoid, loft, rigid_weights

HEAD_JOINT = 15
HEAD_CENTRE = np.array([0.0, 0.678, 0.015])
HEAD_RADII = np.array([0.082, 0.108, 0.098])  # x, y, z
EYE_RADIUS = 0.019
EYE_Y = 0.695
EYE_X = 0.034
MOUTH_Y = 0.612
MOUTH_HALF_WIDTH = 0.027
JAW_HINGE = np.array([0.0, 0.643, -0.005])
LID_SCALE = 1.3  # lid radius / eye radius

# Upper-lid edge elevation (degrees above the gaze axis) for each lid state.
UPPER_LID_TOP, UPPER_LID_OPEN, UPPER_LID_CLOSED, UPPER_LID_WIDE, UPPER_LID_SQUINT = 100, 27, -38, 52, 10
LOWER_LID_BOTTOM, LOWER_LID_OPEN, LOWER_LID_SQUINT = -100, -36, -16


def surface_z(x, y, lift: float = 0.0):
    """z of the head's front surface at (x, y), plus `lift` along z."""
    q = 1 - (np.asarray(x) / HEAD_RADII[0]) ** 2 - ((np.asarray(y) - HEAD_CENTRE[1]) / HEAD_RADII[1]) ** 2
    return HEAD_CENTRE[2] + HEAD_RADII[2] * np.sqrt(np.clip(q, 0, None)) + lift


def surface_normal(p: np.ndarray) -> np.ndarray:
    n = (p - HEAD_CENTRE) / HEAD_RADII**2
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _rotate(points: np.ndarray, centre, axis, angle: float) -> np.ndarray:
    """Offsets that rotate `points` about `centre` around `axis` by `angle` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    p = points - centre
    rotated = p * np.cos(angle) + np.cross(k, p) * np.sin(angle) + k * (p @ k)[:, None] * (1 - np.cos(angle))
    return rotated - p


def _gauss(points: np.ndarray, centre, radius: float) -> np.ndarray:
    return np.exp(-np.sum((points - np.asarray(centre)) ** 2, axis=1) / (2 * radius**2))


def _orient_outwards(verts, faces, centre):
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    out = np.einsum("ij,ij->i", n, verts[faces].mean(1) - centre) > 0
    return np.where(out[:, None], faces, faces[:, ::-1])


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    return np.concatenate([np.stack([a, a + 1, a + cols + 1], 1), np.stack([a, a + cols + 1, a + cols], 1)])


def _lid_points(eye, elevations_deg, azimuths):
    """Points on the lid sphere; elevation about the x axis (0 = gaze), azimuth about y."""
    el = np.radians(np.asarray(elevations_deg))[:, None]
    az = np.asarray(azimuths)[None, :]
    r = EYE_RADIUS * LID_SCALE
    pts = np.stack(
        np.broadcast_arrays(np.sin(az) * np.ones_like(el), np.cos(az) * np.sin(el), np.cos(az) * np.cos(el)), -1
    )
    return (eye + r * pts).reshape(-1, 3)


class _Rig:
    """Collects head parts and, per blendshape, per-part offsets."""

    def __init__(self, builder: MeshBuilder):
        self.b = builder
        self.shapes: dict[str, dict[str, np.ndarray]] = {}
        self.rest: dict[str, np.ndarray] = {}

    def part(self, name, verts, faces, label):
        self.b.add(name, verts, faces, rigid_weights(len(verts), HEAD_JOINT), label, head=True)
        self.rest[name] = np.asarray(verts, float)

    def offset(self, shape: str, part: str, delta: np.ndarray) -> None:
        parts = self.shapes.setdefault(shape, {})
        parts[part] = parts.get(part, 0) + np.asarray(delta, float)


def build_head(builder: MeshBuilder) -> dict[str, dict[str, np.ndarray]]:
    """Add the head's parts to `builder`; return {shape name: {part name: (n, 3) offsets}}."""
    rig = _Rig(builder)
    lab = LABELS.index

    # --- skull and face skin; hair is painted on the back and top
    verts, faces = ellipsoid(HEAD_CENTRE, HEAD_RADII[[0, 2, 1]], 34, 24, axis=(0, 1.0, 0), hint=(1.0, 0, 0))
    rel = verts - HEAD_CENTRE
    hair = (rel[:, 1] > 0.058 - 0.035 * np.clip(-rel[:, 2] / 0.05, 0, 1)) | (
        (rel[:, 2] < -0.035) & (rel[:, 1] > -0.055)
    )
    rig.part("head", verts, faces, np.where(hair, lab("hair"), lab("skin")))

    # --- eyes: the sphere's poles lie on the gaze axis (+z) so iris/pupil edges are rings
    from_front = np.radians([150, 120, 95, 75, 58, 44, 34, 30.5, 27.5, 20, 12.5, 10.5, 5])
    for side, s in (("l", 1.0), ("r", -1.0)):
        eye = np.array([s * EYE_X, EYE_Y, surface_z(EYE_X, EYE_Y) - 0.0095])
        verts, faces = ellipsoid(
            eye, (EYE_RADIUS,) * 3, 16, 0, axis=(0, 0, 1.0), hint=(1.0, 0, 0), polar_angles=np.pi - from_front
        )
        angle = np.arccos(np.clip((verts - eye)[:, 2] / EYE_RADIUS, -1, 1))
        label = np.select(
            [angle < np.radians(11.5), angle < np.radians(29)], [lab("pupil"), lab("iris")], lab("eye_white")
        )
        rig.part(f"eye_{side}", verts, faces, label)
        gaze = 0.38  # radians at weight 1
        side_name = "Left" if s > 0 else "Right"
        rest = rig.rest[f"eye_{side}"]
        rig.offset(f"eyeLookUp{side_name}", f"eye_{side}", _rotate(rest, eye, (1, 0, 0), -gaze * 0.8))
        rig.offset(f"eyeLookDown{side_name}", f"eye_{side}", _rotate(rest, eye, (1, 0, 0), gaze * 0.8))
        # "out" is towards the avatar's own side (+x for the left eye)
        rig.offset(f"eyeLookOut{side_name}", f"eye_{side}", _rotate(rest, eye, (0, 1, 0), s * gaze))
        rig.offset(f"eyeLookIn{side_name}", f"eye_{side}", _rotate(rest, eye, (0, 1, 0), -s * gaze))

        # --- eyelids: rows of constant elevation; the edge row is dark (lash line)
        azimuths = np.radians(np.linspace(-80, 80, 11))
        rows_u = np.array([0.0, 0.3, 0.55, 0.75, 0.88, 0.95, 1.0])

        def lid(top, edge, eye=eye, rows_u=rows_u, azimuths=azimuths):  # this iteration's values
            return _lid_points(eye, top + rows_u * (edge - top), azimuths)

        lid_label = np.repeat(np.where(rows_u >= 0.95, lab("brow"), lab("lid")), len(azimuths))
        grid = _grid_faces(len(rows_u), len(azimuths))
        upper = lid(UPPER_LID_TOP, UPPER_LID_OPEN)
        rig.part(f"lid_upper_{side}", upper, _orient_outwards(upper, grid, eye), lid_label)
        rig.offset(f"eyeBlink{side_name}", f"lid_upper_{side}", lid(UPPER_LID_TOP, UPPER_LID_CLOSED) - upper)
        rig.offset(f"eyeWide{side_name}", f"lid_upper_{side}", lid(UPPER_LID_TOP, UPPER_LID_WIDE) - upper)
        rig.offset(f"eyeSquint{side_name}", f"lid_upper_{side}", lid(UPPER_LID_TOP, UPPER_LID_SQUINT) - upper)
        rig.offset(f"eyeLookUp{side_name}", f"lid_upper_{side}", 0.35 * (lid(UPPER_LID_TOP, UPPER_LID_WIDE) - upper))
        rig.offset(f"eyeLookDown{side_name}", f"lid_upper_{side}", 0.4 * (lid(UPPER_LID_TOP, 0.0) - upper))
        lower = lid(LOWER_LID_BOTTOM, LOWER_LID_OPEN)
        lower_label = np.repeat(np.where(rows_u >= 0.95, lab("lid"), lab("skin")), len(azimuths))
        rig.part(f"lid_lower_{side}", lower, _orient_outwards(lower, grid, eye), lower_label)
        rig.offset(f"eyeSquint{side_name}", f"lid_lower_{side}", lid(LOWER_LID_BOTTOM, LOWER_LID_SQUINT) - lower)
        rig.offset(
            f"cheekSquint{side_name}", f"lid_lower_{side}", 0.6 * (lid(LOWER_LID_BOTTOM, LOWER_LID_SQUINT) - lower)
        )
        rig.offset(
            f"mouthSmile{side_name}", f"lid_lower_{side}", 0.25 * (lid(LOWER_LID_BOTTOM, LOWER_LID_SQUINT) - lower)
        )

        # --- brows: a flattened tube arching over the eye; t = 0 inner end, 1 outer end
        t = np.linspace(0, 1, 9)
        bx = s * (0.010 + 0.052 * t)
        by = EYE_Y + 0.030 + 0.007 * np.sin(np.pi * np.clip(t * 1.1, 0, 1)) - 0.004 * t
        centres = np.stack([bx, by, surface_z(bx, by, 0.0035)], 1)
        tangent = np.gradient(centres, axis=0)
        normals = surface_normal(centres)
        us, vs = [], []
        for tan, _nrm in zip(tangent, normals):
            u, v, _ = _frame(tan, np.array([0, 1.0, 0]))
            us.append(u)
            vs.append(np.cross(tan / np.linalg.norm(tan), u))
        thick = 0.0052 - 0.002 * t
        verts, faces = loft(centres, us, vs, thick, 0.0028, 8)
        verts, faces = close_tube(
            verts,
            faces,
            8,
            centres[0] - tangent[0] / np.linalg.norm(tangent[0]) * 0.003,
            centres[-1] + tangent[-1] / np.linalg.norm(tangent[-1]) * 0.002,
        )
        rig.part(f"brow_{side}", verts, faces, "brow")
        tv = np.clip((np.abs(verts[:, 0]) - 0.010) / 0.052, 0, 1)
        up = np.array([0, 1.0, 0])
        inward = np.array([-s, 0, 0])
        rig.offset("browInnerUp", f"brow_{side}", (0.011 * (1 - tv) ** 1.3)[:, None] * up)
        rig.offset(
            f"browDown{side_name}",
            f"brow_{side}",
            (-(0.005 + 0.006 * (1 - tv)))[:, None] * up + (0.003 * (1 - tv))[:, None] * inward,
        )
        rig.offset(f"browOuterUp{side_name}", f"brow_{side}", (0.011 * tv**1.3)[:, None] * up)

    # --- nose
    nose_y = 0.651
    nose = np.array([0.0, nose_y, surface_z(0, nose_y) - 0.002])
    verts, faces = ellipsoid(nose, (0.012, 0.017, 0.024), 12, 7, axis=(0, 1.0, 0.35), hint=(1.0, 0, 0))
    rig.part("nose", verts, faces, "nose")
    for s, side_name in ((1.0, "Left"), (-1.0, "Right")):
        side_w = _smooth_step((s * verts[:, 0]) / 0.012 + 0.5)
        rig.offset(f"noseSneer{side_name}", "nose", side_w[:, None] * np.array([0, 0.004, -0.001]))

    # --- mouth: lips (closed tube around the opening) and the dark opening between them
    n_ring, n_tube = 28, 6
    phi = 2 * np.pi * np.arange(n_ring) / n_ring
    half_height = 0.0032
    cx, cy = MOUTH_HALF_WIDTH * np.cos(phi), MOUTH_Y + half_height * np.sin(phi)
    centres = np.stack([cx, cy, surface_z(cx, cy, 0.0012)], 1)
    tangent = np.roll(centres, -1, 0) - np.roll(centres, 1, 0)
    radius = 0.0024 + 0.0030 * np.abs(np.sin(phi)) ** 0.7  # full in the middle, thin at the corners
    ring_verts = []
    theta = 2 * np.pi * np.arange(n_tube) / n_tube
    for c, tan, r, p in zip(centres, tangent, radius, phi):
        d = tan / np.linalg.norm(tan)
        outward = np.array([np.cos(p), np.sin(p) * 1.6, 0.0])  # away from the mouth centre
        u, v, _ = _frame(d, outward)
        ring_verts.append(c + r * (np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * v))
    lips = np.concatenate(ring_verts)
    k = np.arange(n_tube)
    faces = []
    for i in range(n_ring):
        a, b = i * n_tube + k, ((i + 1) % n_ring) * n_tube + k
        a1, b1 = i * n_tube + (k + 1) % n_tube, ((i + 1) % n_ring) * n_tube + (k + 1) % n_tube
        faces += [np.stack([a, b, b1], 1), np.stack([a, b1, a1], 1)]
    faces = np.concatenate(faces)
    lip_phi = np.repeat(phi, n_tube)
    # orient outwards from each vertex's own tube centre
    n = np.cross(lips[faces[:, 1]] - lips[faces[:, 0]], lips[faces[:, 2]] - lips[faces[:, 0]])
    tube_centre = np.repeat(centres, n_tube, 0)
    if np.mean(np.einsum("ij,ij->i", n, lips[faces].mean(1) - tube_centre[faces[:, 0]]) > 0) < 0.5:
        faces = faces[:, ::-1]
    rig.part("lips", lips, faces, "lips")

    # the opening: concentric rings filling the ellipse; teeth painted along the top
    rho = np.array([0.35, 0.7, 1.0])
    disc_phi = np.tile(phi, len(rho))
    disc_rho = np.repeat(rho, n_ring)
    dx = MOUTH_HALF_WIDTH * 0.97 * disc_rho * np.cos(disc_phi)
    dy = MOUTH_Y + half_height * disc_rho * np.sin(disc_phi)
    disc = np.vstack([[0.0, MOUTH_Y, surface_z(0, MOUTH_Y, 0.0004)], np.stack([dx, dy, surface_z(dx, dy, 0.0004)], 1)])
    disc_v = np.concatenate([[0.0], disc_rho * np.sin(disc_phi)])  # -1 bottom .. 1 top
    disc_x = disc[:, 0] / MOUTH_HALF_WIDTH
    blocks = [np.stack([np.zeros(n_ring, int), 1 + (np.arange(n_ring) + 1) % n_ring, 1 + np.arange(n_ring)], 1)]
    for ring in range(len(rho) - 1):
        a = 1 + ring * n_ring + np.arange(n_ring)
        b = 1 + ring * n_ring + (np.arange(n_ring) + 1) % n_ring
        blocks += [np.stack([a, b, b + n_ring], 1), np.stack([a, b + n_ring, a + n_ring], 1)]
    dfaces = np.concatenate(blocks)
    dn = np.cross(disc[dfaces[:, 1]] - disc[dfaces[:, 0]], disc[dfaces[:, 2]] - disc[dfaces[:, 0]])
    dfaces = np.where((dn[:, 2] > 0)[:, None], dfaces, dfaces[:, ::-1])
    teeth = (disc_v > 0.55) & (np.abs(disc_x) < 0.75)
    rig.part("mouth", disc, dfaces, np.where(teeth, lab("teeth"), lab("mouth")))

    _mouth_shapes(rig, lip_phi, disc_v, disc_x)
    _skin_shapes(rig)
    return rig.shapes


def _mouth_shapes(rig: _Rig, lip_phi, disc_v, disc_x) -> None:
    lips, disc, head = rig.rest["lips"], rig.rest["mouth"], rig.rest["head"]
    a = MOUTH_HALF_WIDTH
    # how much each vertex belongs to the lower lip / jaw: 1 bottom, 0.5 corners, 0 top
    lips_low = np.clip(0.5 - 0.75 * np.sin(lip_phi), 0, 1)
    disc_low = (1 - disc_v) / 2
    rel = head - HEAD_CENTRE
    head_jaw = _smooth_step((MOUTH_Y + 0.004 - head[:, 1]) / 0.018) * _smooth_step((rel[:, 2] + 0.02) / 0.05)
    jaw_angle = 0.34
    weights = {"lips": lips_low, "mouth": disc_low, "head": head_jaw}
    rests = {"lips": lips, "mouth": disc, "head": head}
    for part in weights:
        rot = _rotate(rests[part], JAW_HINGE, (1, 0, 0), jaw_angle)
        w = weights[part][:, None]
        rig.offset("jawOpen", part, w * rot)
        rig.offset("jawForward", part, w * np.array([0, 0, 0.009]))
        rig.offset("jawLeft", part, w * np.array([0.009, 0, 0]))  # towards the avatar's left (+x)
        rig.offset("jawRight", part, w * np.array([-0.009, 0, 0]))
        if part != "head":
            rig.offset("mouthClose", part, -0.9 * w * rot)

    for part, rest, low, xs in (("lips", lips, lips_low, lips[:, 0] / a), ("mouth", disc, disc_low, disc_x)):
        high = 1 - low
        centre_y = rest[:, 1] - MOUTH_Y
        for s, name in ((1.0, "Left"), (-1.0, "Right")):
            corner = _smooth_step((s * xs - 0.2) / 0.8) ** 1.4
            side = _smooth_step(s * xs * 2 + 0.5)
            c = corner[:, None]
            rig.offset(f"mouthSmile{name}", part, c * np.array([s * 0.006, 0.0105, -0.004]))
            rig.offset(f"mouthFrown{name}", part, c * np.array([s * 0.002, -0.0095, -0.001]))
            rig.offset(f"mouthStretch{name}", part, c * np.array([s * 0.007, -0.003, -0.002]))
            rig.offset(f"mouthDimple{name}", part, c * np.array([s * 0.003, 0.001, -0.004]))
            rig.offset(
                f"mouthPress{name}",
                part,
                (side * 0.5)[:, None]
                * np.stack([np.zeros_like(centre_y), -centre_y, np.full_like(centre_y, -0.0015)], 1),
            )
            rig.offset(f"mouthLowerDown{name}", part, (side * low)[:, None] * np.array([0, -0.008, 0.0]))
            rig.offset(f"mouthUpperUp{name}", part, (side * high)[:, None] * np.array([0, 0.006, 0.0]))
        rig.offset("mouthLeft", part, np.tile([0.008, 0, 0], (len(rest), 1)))
        rig.offset("mouthRight", part, np.tile([-0.008, 0, 0], (len(rest), 1)))
        squeeze = np.stack([-0.45 * rest[:, 0], -0.3 * centre_y, np.full(len(rest), 0.009)], 1)
        rig.offset("mouthPucker", part, squeeze)
        funnel = np.stack([-0.3 * rest[:, 0], (high - low) * 0.006, np.full(len(rest), 0.007)], 1)
        rig.offset("mouthFunnel", part, funnel)
        rig.offset("mouthRollLower", part, low[:, None] * np.array([0, 0.002, -0.004]))
        rig.offset("mouthRollUpper", part, high[:, None] * np.array([0, -0.002, -0.004]))
        rig.offset("mouthShrugLower", part, low[:, None] * np.array([0, 0.004, 0.002]))
        rig.offset("mouthShrugUpper", part, high[:, None] * np.array([0, 0.004, 0.001]))
    # the skin around the mouth follows a little
    for s, name in ((1.0, "Left"), (-1.0, "Right")):
        near = _gauss(head, (s * 0.03, MOUTH_Y, surface_z(0.03, MOUTH_Y)), 0.01)[:, None]
        rig.offset(f"mouthSmile{name}", "head", near * np.array([s * 0.003, 0.006, 0.0]))
        rig.offset(f"mouthFrown{name}", "head", near * np.array([0, -0.005, 0.0]))
    around = _gauss(head, (0, MOUTH_Y, surface_z(0, MOUTH_Y)), 0.014)[:, None]
    rig.offset("mouthLeft", "head", around * np.array([0.006, 0, 0]))
    rig.offset("mouthRight", "head", around * np.array([-0.006, 0, 0]))
    rig.offset("mouthPucker", "head", around * np.array([0, 0, 0.006]))


def _skin_shapes(rig: _Rig) -> None:
    head = rig.rest["head"]
    normal = surface_normal(head)
    for s, name in ((1.0, "Left"), (-1.0, "Right")):
        cheek = _gauss(head, (s * 0.052, 0.623, surface_z(0.052, 0.623)), 0.02)[:, None]
        rig.offset("cheekPuff", "head", cheek * normal * 0.013)
        squint = _gauss(head, (s * 0.045, 0.659, surface_z(0.045, 0.659)), 0.014)[:, None]
        rig.offset(f"cheekSquint{name}", "head", squint * (np.array([0, 0.005, 0]) + normal * 0.002))
        rig.offset(f"mouthSmile{name}", "head", squint * np.array([0, 0.003, 0]))
        sneer = _gauss(head, (s * 0.016, 0.645, surface_z(0.016, 0.645)), 0.009)[:, None]
        rig.offset(f"noseSneer{name}", "head", sneer * np.array([0, 0.003, 0]))
