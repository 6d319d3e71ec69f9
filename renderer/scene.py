"""Where the two people sit and where the camera looks: one layout for the server's renderer
(offscreen.py) and for pages that draw the avatars themselves (sent as JSON with the answer).

Speaker on the left, listener on the right, each turned slightly towards the other; the "body"
framing has one camera on both upper bodies, the "faces" framing one camera per person, each
straight in front of the head, framing head and shoulders in its half of the picture.
Poses are 4x4 matrices (world from object); cameras look along their -z axis (OpenGL, pyrender
and three.js alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

SEAT_OFFSET_X = 0.40  # metres from the centre line to each avatar's pelvis (4:3 framing)
TURN_DEG = 25.0  # each avatar turns this much towards the other
GHOST_FORWARD = 0.02  # the ghost sits 2 cm in front of the listener so it is not hidden in it
FRAME_Y = (-0.14, 0.86)  # hips to just above the head, body frame
FACE_FRAME = (-0.38, 0.18)  # "faces" framing: chest to just above the head, about the head's centre
CAMERA_YFOV = math.radians(30.0)
BODY_NEAR, FACE_NEAR, FAR = 0.1, 0.05, 10.0


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """4x4 pose whose -z axis looks from eye to target."""
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = eye - target
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


def placement(x: float, yaw_deg: float, forward: float = 0.0) -> np.ndarray:
    yaw = math.radians(yaw_deg)
    pose = np.eye(4)
    pose[:3, :3] = [[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0], [-math.sin(yaw), 0.0, math.cos(yaw)]]
    pose[:3, 3] = (x, 0.0, forward)
    return pose


@dataclass(frozen=True)
class View:
    """A camera drawing into a viewport (x, y, w, h; y from the bottom, as GL counts)."""

    viewport: tuple[int, int, int, int]
    camera: np.ndarray  # 4x4 pose
    near: float

    @property
    def aspect(self) -> float:
        return self.viewport[2] / self.viewport[3]


@dataclass(frozen=True)
class SceneLayout:
    size: tuple[int, int]
    speaker: np.ndarray  # 4x4 placements
    listener: np.ndarray
    ghost: np.ndarray
    views: dict[str, list[View]]  # framing -> its views
    yfov: float = CAMERA_YFOV
    far: float = FAR

    def as_json(self) -> dict[str, Any]:
        """For a page: matrices as 16 numbers in column-major order (three.js Matrix4.fromArray)."""

        def cols(m: np.ndarray) -> list[float]:
            return [round(float(v), 6) for v in m.T.reshape(-1)]

        return {
            "size": list(self.size),
            "yfov_deg": math.degrees(self.yfov),
            "far": self.far,
            "speaker": cols(self.speaker),
            "listener": cols(self.listener),
            "views": {
                framing: [{"viewport": list(v.viewport), "camera": cols(v.camera), "near": v.near} for v in views]
                for framing, views in self.views.items()
            },
        }


def scene_layout(size: tuple[int, int], head_centre: np.ndarray) -> SceneLayout:
    """The layout for a picture of `size` (w, h); `head_centre` is the rest head's centre in the
    avatar's body frame (the "faces" cameras aim at it)."""
    w, h = size
    aspect = w / h
    seat_x = SEAT_OFFSET_X * max(1.0, min(aspect / (4 / 3), 1.25))
    speaker, listener = placement(-seat_x, TURN_DEG), placement(seat_x, -TURN_DEG)

    half_h = (FRAME_Y[1] - FRAME_Y[0]) / 2
    half_w = seat_x + 0.40  # shoulders and a little air
    tan = math.tan(CAMERA_YFOV / 2)
    distance = max(half_h / tan, half_w / (tan * aspect)) + 0.15  # avatars stand ~0.15 m deep
    centre_y = (FRAME_Y[0] + FRAME_Y[1]) / 2
    body = View((0, 0, w, h), look_at((0, centre_y + 0.08, distance), (0, centre_y, 0)), BODY_NEAR)

    face_half_h = (FACE_FRAME[1] - FACE_FRAME[0]) / 2
    face_distance = face_half_h / tan
    faces = []
    for k, place in enumerate((speaker, listener)):
        centre = place[:3, :3] @ head_centre + place[:3, 3] + (0.0, (FACE_FRAME[0] + FACE_FRAME[1]) / 2, 0.0)
        camera = look_at(centre + (0.0, 0.03, face_distance), centre)
        faces.append(View((k * (w // 2), 0, w // 2, h), camera, FACE_NEAR))
    return SceneLayout(
        (w, h), speaker, listener, placement(seat_x, -TURN_DEG, GHOST_FORWARD), {"body": [body], "faces": faces}
    )
