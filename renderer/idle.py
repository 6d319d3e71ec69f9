"""Plausible idle and talking poses, procedurally: for demos, tests and benchmarks (no dataset).

Arms hang relaxed from the T-pose rest (shoulders rotated down, elbows slightly bent), the body
sways and breathes, the head nods, and the face blinks, talks (jaw, lips) and smiles now and then.
Smooth in time so consecutive frames look like motion, deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from .pose import AvatarPose

L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, NECK, HEAD, SPINE3 = 15, 16, 17, 18, 11, 14, 8  # body_pose rows


def relaxed_pose() -> AvatarPose:
    """Arms down by the sides, elbows a little bent, fingers slightly curled."""
    pose = AvatarPose()
    pose.body_pose[L_SHOULDER] = (0.0, 0.0, -1.3)
    pose.body_pose[R_SHOULDER] = (0.0, 0.0, 1.3)
    pose.body_pose[L_ELBOW] = (0.0, -0.35, 0.0)
    pose.body_pose[R_ELBOW] = (0.0, 0.35, 0.0)
    curl = np.zeros((15, 3), np.float32)
    curl[:12, 2] = -0.25  # index, middle, pinky, ring bend about z (towards the palm)
    pose.left_hand_pose[:] = curl
    pose.right_hand_pose[:] = curl * np.array([1, 1, -1], np.float32)
    return pose


L_HIP, R_HIP, L_KNEE, R_KNEE = 0, 1, 3, 4


def seated_pose() -> AvatarPose:
    """Seated on a chair as the datasets' people are: thighs forward, knees bent, hands resting in
    front of the belly."""
    pose = relaxed_pose()
    pose.body_pose[L_HIP] = (-1.45, 0.0, 0.05)
    pose.body_pose[R_HIP] = (-1.45, 0.0, -0.05)
    pose.body_pose[L_KNEE] = pose.body_pose[R_KNEE] = (1.45, 0.0, 0.0)
    pose.body_pose[L_SHOULDER] = (0.0, -0.4, -1.2)
    pose.body_pose[R_SHOULDER] = (0.0, 0.4, 1.2)
    pose.body_pose[L_ELBOW] = (0.0, -1.2, 0.0)
    pose.body_pose[R_ELBOW] = (0.0, 1.2, 0.0)
    return pose


def idle_pose(t: float, seed: int = 0, talking: bool = False, base: AvatarPose | None = None) -> AvatarPose:
    """The pose at time t (seconds), moving about `base` (default: relaxed_pose()). `talking`
    animates the mouth; otherwise it listens."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 8)
    pose = base.copy() if base is not None else relaxed_pose()
    s = np.sin
    pose.body_pose[SPINE3] += (0.03 * s(0.9 * t + phase[0]), 0.05 * s(0.4 * t + phase[1]), 0.02 * s(0.7 * t))
    pose.body_pose[NECK] += (0.06 * s(1.3 * t + phase[2]), 0.10 * s(0.5 * t + phase[3]), 0.0)
    pose.body_pose[HEAD] += (
        0.08 * s(2.1 * t + phase[4]) if not talking else 0.04 * s(3.0 * t),
        0.0,
        0.05 * s(0.6 * t + phase[5]),
    )
    pose.body_pose[L_SHOULDER, 2] += 0.05 * s(0.8 * t + phase[6])
    pose.body_pose[R_SHOULDER, 2] -= 0.05 * s(0.8 * t + phase[7])
    pose.body_pose[L_ELBOW, 1] -= 0.15 * (1 + s(0.7 * t + phase[6])) * (1.0 if talking else 0.3)
    blink = max(0.0, 1 - abs(((t + phase[0]) % 3.7) - 0.1) / 0.1)
    pose.set_face(eyeBlinkLeft=blink, eyeBlinkRight=blink)
    if talking:
        syllable = 0.5 + 0.5 * s(11 * t) * s(2.3 * t + phase[1])
        pose.set_face(
            jawOpen=0.55 * syllable,
            mouthFunnel=0.3 * max(0.0, s(5 * t)),
            browInnerUp=0.3 * max(0.0, s(0.9 * t)),
            mouthSmileLeft=0.2,
            mouthSmileRight=0.2,
        )
    else:
        smile = 0.5 * max(0.0, s(0.5 * t + phase[2]))
        pose.set_face(
            mouthSmileLeft=smile,
            mouthSmileRight=smile * 0.9,
            browOuterUpLeft=0.3 * max(0.0, s(0.7 * t)),
            eyeSquintLeft=0.3 * smile,
            eyeSquintRight=0.3 * smile,
        )
    return pose


class VoicedSpeaker:
    """A speaker who is only a voice (a microphone, no movement data): seated, idling, the jaw and
    lips following the loudness of each frame's own audio.

    Causal and cheap: one RMS per frame of samples the session already holds, smoothed with a fast
    attack and a slower release so that syllables read as speech and pauses close the mouth; the
    head nods a little with the emphasis. Nothing here waits for audio the listener's path needs.
    """

    FLOOR_DBFS, FULL_DBFS = -50.0, -15.0  # silence .. a loud voice at the microphone
    ATTACK, RELEASE = 0.6, 0.25  # per-frame approach to the new opening
    TALKING = 0.15  # openings above this count as talking (gestures, head)

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.opening = 0.0
        self._base = seated_pose()

    def pose(self, t: float, audio: np.ndarray) -> AvatarPose:
        samples = np.asarray(audio, np.float32)
        power = float(np.dot(samples, samples)) / max(1, len(samples))
        level = 10.0 * np.log10(power + 1e-12)
        target = float(np.clip((level - self.FLOOR_DBFS) / (self.FULL_DBFS - self.FLOOR_DBFS), 0.0, 1.0))
        rate = self.ATTACK if target > self.opening else self.RELEASE
        self.opening += rate * (target - self.opening)
        talking = self.opening > self.TALKING
        pose = idle_pose(t, self.seed, talking=False, base=self._base)
        pose.body_pose[HEAD, 0] += 0.06 * self.opening  # a small nod on emphasis
        pose.set_face(
            jawOpen=0.65 * self.opening,
            mouthFunnel=0.25 * self.opening * (0.5 + 0.5 * np.sin(7.0 * t)),
            mouthSmileLeft=0.1 if talking else pose.weight("mouthSmileLeft"),
            mouthSmileRight=0.1 if talking else pose.weight("mouthSmileRight"),
            browInnerUp=0.25 * self.opening,
        )
        return pose
