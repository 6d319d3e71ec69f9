"""One frame's poses as one binary data-channel message (`?render=client`: the browser draws).

Little-endian, 20-byte header then one 864-byte block per person (speaker first, then listener):

    offset  type      field
    0       u8        version (1)
    1       u8        people (2)
    2       u8        framing: 0 body, 1 faces (renderer/offscreen.py FRAMINGS)
    3       u8        flags: bit 0 set when the listener is the model's (else the recording's)
    4       u32       frame index (the session's frame counter)
    8       u32       audio sample: the speaker audio's sample index, at 48 kHz since the session's
                      first sample, at the end of this frame's audio (its content time; RTP arithmetic,
                      modulo 2^32); the audio's RTP timestamp minus `audio_rtp_origin` (telemetry)
                      counts in the same samples
    12      f64       captured: the end of this frame's audio on the server's monotonic clock, in
                      seconds (glass to glass starts here; the page's pongs map its clock to it)
    per person, 216 float32 (864 bytes):
    0       3         transl (metres, body frame)
    3       3         global_orient (axis-angle, radians)
    6       63        body_pose, joints 1..21
    69      45        left_hand_pose
    114     45        right_hand_pose
    159     3         head_rotation, composed onto joint 15 (zeros: none)
    162     52        face weights in ARKit order (datasets/specs.py ARKIT_BLENDSHAPES)
    214     2         reserved (zeros)

1748 bytes a frame, 52 KB/s at 30 FPS. Sent unordered with no retransmission: a lost or late pose is
skipped by the page, which interpolates between the ones it has.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from dyadic.renderer.pose import ARKIT_BLENDSHAPES, AvatarPose

VERSION = 1
PEOPLE = 2
FRAMINGS = ("body", "faces")
HEADER = struct.Struct("<BBBBIId")
FLOATS_PER_PERSON = 216
PACKET_BYTES = HEADER.size + PEOPLE * FLOATS_PER_PERSON * 4
_SLICES = {
    "transl": slice(0, 3),
    "global_orient": slice(3, 6),
    "body_pose": slice(6, 69),
    "left_hand_pose": slice(69, 114),
    "right_hand_pose": slice(114, 159),
    "head_rotation": slice(159, 162),
    "face": slice(162, 162 + len(ARKIT_BLENDSHAPES)),
}
MODEL_LISTENER = 1


class PosePacketError(ValueError):
    pass


@dataclass
class PosePacket:
    index: int
    audio_sample: int
    captured_s: float
    speaker: AvatarPose
    listener: AvatarPose
    framing: str = "body"
    model_listener: bool = True


def _person(pose: AvatarPose) -> np.ndarray:
    out = np.zeros(FLOATS_PER_PERSON, np.float32)
    for name, where in _SLICES.items():
        value = getattr(pose, name)
        if value is not None:
            out[where] = np.asarray(value, np.float32).reshape(-1)
    return out


def pack(packet: PosePacket) -> bytes:
    flags = MODEL_LISTENER if packet.model_listener else 0
    header = HEADER.pack(
        VERSION,
        PEOPLE,
        FRAMINGS.index(packet.framing),
        flags,
        packet.index & 0xFFFFFFFF,
        packet.audio_sample & 0xFFFFFFFF,
        packet.captured_s,
    )
    return header + np.concatenate([_person(packet.speaker), _person(packet.listener)]).tobytes()


def unpack(data: bytes) -> PosePacket:
    """The packet, or PosePacketError naming what is wrong (a client's bytes, in tests and probes)."""
    if len(data) != PACKET_BYTES:
        raise PosePacketError(f"pose packet: {len(data)} bytes, expected {PACKET_BYTES}")
    version, people, framing, flags, index, sample, captured = HEADER.unpack_from(data)
    if version != VERSION or people != PEOPLE or framing >= len(FRAMINGS):
        raise PosePacketError(f"pose packet: version {version}, people {people}, framing {framing} not understood")
    floats = np.frombuffer(data, np.float32, offset=HEADER.size).reshape(PEOPLE, FLOATS_PER_PERSON)
    if not np.isfinite(floats).all():
        raise PosePacketError("pose packet: a value is not finite")
    speaker, listener = (_pose(row) for row in floats)
    return PosePacket(index, sample, captured, speaker, listener, FRAMINGS[framing], bool(flags & MODEL_LISTENER))


def _pose(row: np.ndarray) -> AvatarPose:
    fields = {name: row[where].copy() for name, where in _SLICES.items()}
    head = fields.pop("head_rotation")
    return AvatarPose(
        body_pose=fields["body_pose"].reshape(21, 3),
        left_hand_pose=fields["left_hand_pose"].reshape(15, 3),
        right_hand_pose=fields["right_hand_pose"].reshape(15, 3),
        global_orient=fields["global_orient"],
        transl=fields["transl"],
        face=fields["face"],
        head_rotation=head if head.any() else None,
    )
