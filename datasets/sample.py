"""Sample-data generator: small, deterministic dyads written exactly as the real datasets lay them out.

`generate_sample(out_dir, "seamless" | "react", interactions, seconds, seed)` writes one format;
`generate_default_sample(out_dir)` writes what `default_sample_root()` ships: `seamless/` with the
real data's quirks (see SEAMLESS_CLIPS) and `react/` with two sessions. The behaviour comes from
`synth.py`; this module only turns it into each dataset's arrays and files.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from . import media
from .interaction import AUDIO_RATE
from .npzio import npz_bytes
from .specs import REACT_AU_ORDER, REACT_EXPRESSION_ORDER, SEAMLESS_EMOTION_ORDER, SEAMLESS_FAU_ORDER
from .synth import DyadPlan, Motion, Voice, frame_envelope, mix_microphones, person_motion, plan_dyad, speech_audio

VIDEO_SIZE = 64  # the sample's "native raster": boxes and keypoints are in these pixels
SENTINEL = 1e12
VOICES = (Voice(118.0, 1.0), Voice(205.0, 1.15))
HYPERNET_DIM = 5120


@dataclass
class SeamlessClip:
    """One interaction of the Seamless sample and the quirks it carries."""

    key: str  # V.._S.._I..
    participants: tuple[str, str]
    rate: Fraction
    locations: tuple[str, str]  # folder of each bundle under the root; "x/0002.tar" = inside that tar
    movement: bool = True  # V00 files only
    smplh_bursts: bool = False  # smplh:is_valid False bursts, sentinel translations
    movement_blocks: bool = False  # zero-filled 60-frame movement:is_valid blocks
    duplicate_json: bool = False  # a stale .json member precedes the correct one in the tar
    hypernet_floor: bool = False  # floor(N/15) hypernet rows instead of ceil

    def file_ids(self) -> tuple[str, str]:
        first, second = self.participants
        return f"{self.key}_{first}", f"{self.key}_{second}"


IMPROV, NATURAL = "improvised/dev/0000", "naturalistic/dev/0000"
SEAMLESS_CLIPS = (
    # First in sorted order: the demo. V00, 30/1, clean, lots of turn-taking.
    SeamlessClip("V00_S0809_I00000582", ("P0602A", "P0947"), Fraction(30), (f"{IMPROV}/0000", f"{IMPROV}/0000")),
    # 29.97 fps, invalid bursts with the translation sentinel, movement blocks, pair split across archives.
    SeamlessClip(
        "V00_S0809_I00000583",
        ("P0602A", "P0947"),
        Fraction(30000, 1001),
        (f"{IMPROV}/0000", f"{IMPROV}/0001"),
        smplh_bursts=True,
        movement_blocks=True,
    ),
    # A webdataset tar with a duplicated .json member (the last one is the correct one); 45000/1501.
    SeamlessClip(
        "V00_S0811_I00000601",
        ("P0383", "P1281A"),
        Fraction(45000, 1501),
        (f"{IMPROV}/0002.tar", f"{IMPROV}/0002.tar"),
        movement_blocks=True,
        duplicate_json=True,
        hypernet_floor=True,
    ),
    # A non-V00 vendor: no movement keys; 29.97 fps.
    SeamlessClip(
        "V01_S0346_I00000725",
        ("P1690", "P1691"),
        Fraction(30000, 1001),
        (f"{NATURAL}/0000", f"{NATURAL}/0000"),
        movement=False,
        smplh_bursts=True,
    ),
)
PLACEHOLDER_ID = "V01_S0346_I00000726_P1694"  # an empty bundle (N = 0), as in the real data
PLACEHOLDER_FOLDER = f"{NATURAL}/0000"

REACT_SESSIONS = (  # (split, session, name, listener audio rate): REACT's WAVs are not 48 kHz
    ("train", "session0", "Camera-2024-06-21-103121-103102", 16_000),
    ("val", "session3", "Camera-2024-07-17-104338-104241", 44_100),
)
REACT_SPEAKER_RATE = 44_100
REACT_FPS = Fraction(30)


# --- one dyad, format-independent --------------------------------------------------------------


@dataclass
class Dyad:
    plan: DyadPlan
    fps: Fraction
    n_frames: int
    audio: list[np.ndarray]  # per person, mic signal at its rate
    rates: list[int]
    motion: list[Motion]
    primary: int
    extras: dict = field(default_factory=dict)


def make_dyad(
    rng: np.random.Generator,
    seconds: float,
    fps: Fraction,
    rates=(AUDIO_RATE, AUDIO_RATE),
    primary: int | None = None,
    primary_floor=(3.0, 6.0),
    secondary_floor=(1.0, 2.5),
) -> Dyad:
    primary = int(rng.integers(2)) if primary is None else primary
    plan = plan_dyad(rng, seconds, primary, primary_floor=primary_floor, secondary_floor=secondary_floor)
    n = int(round(seconds * fps))
    audio, motion = [], []
    voices = [speech_audio(rng, plan.of(p), n / fps, rate, VOICES[p]) for p, rate in enumerate(rates)]
    if rates[0] == rates[1]:
        audio = mix_microphones(rng, voices, rates[0])
    else:  # different rates: no bleed mixing needed for the sample
        audio = [(0.7 * v).astype(np.float32) for v in voices]
    for p in (0, 1):
        motion.append(person_motion(rng, plan, p, frame_envelope(voices[p], rates[p], float(fps), n), float(fps)))
    return Dyad(plan, fps, n, audio, list(rates), motion, primary)


# --- Seamless arrays ---------------------------------------------------------------------------


def _continuous_rotvec(rotations: Rotation) -> np.ndarray:
    """Axis-angle vectors that stay continuous in time (hence not wrapped to norm <= pi), as in
    the real data: each frame takes the representation closest to the previous one."""
    vecs = rotations.as_rotvec()
    if vecs[0, 0] < 0:
        vecs[0] = vecs[0] - 2 * np.pi * vecs[0] / np.linalg.norm(vecs[0])
    for k in range(1, len(vecs)):
        angle = np.linalg.norm(vecs[k])
        if angle > 1e-9:
            axis = vecs[k] / angle
            options = [axis * (angle + 2 * np.pi * j) for j in (-1, 0, 1)]
            vecs[k] = min(options, key=lambda v: np.linalg.norm(v - vecs[k - 1]))
    return vecs


def smplh_arrays(rng: np.random.Generator, m: Motion, base: np.ndarray) -> dict[str, np.ndarray]:
    """A seated person in the dataset's camera frame (about pi around x, y down)."""
    n = len(m.jaw)
    t = np.arange(n)
    lean, yaw, shift = m.posture.T
    body = np.zeros((n, 21, 3))
    body[:, 0] = [-1.45, 0.0, 0.08]  # hips flexed: seated
    body[:, 1] = [-1.45, 0.0, -0.08]
    body[:, 3, 0] = body[:, 4, 0] = 1.45  # knees flexed
    for joint, weight in ((2, 0.4), (5, 0.3), (8, 0.3)):  # spine1..3 share lean, breathing, yaw
        body[:, joint, 0] = weight * (lean + 0.015 * m.breathing)
        body[:, joint, 1] = weight * 0.6 * yaw
    body[:, 11] = 0.4 * m.head  # neck
    body[:, 14] = 0.6 * m.head  # head: nods are pitch on neck + head
    dominant = m.gesture
    other = 0.4 * m.gesture
    body[:, 15] = np.stack([0 * t, -0.5 * dominant, -1.25 + 0.5 * dominant], 1)  # left shoulder: arm down
    body[:, 16] = np.stack([0 * t, 0.5 * other, 1.25 - 0.5 * other], 1)
    body[:, 17] = np.stack([0 * t, -1.4 - 0.4 * dominant, 0 * t], 1)  # elbows flexed, forearms forward
    body[:, 18] = np.stack([0 * t, 1.4 + 0.4 * other, 0 * t], 1)
    body[:, 19, 0] = 0.3 * dominant * np.sin(2 * np.pi * 1.5 * t / 30)
    body += 0.001 * rng.standard_normal(body.shape)  # estimation jitter
    curl = np.linspace(0.15, 0.35, 15)[None, :]
    left = np.zeros((n, 15, 3))
    left[:, :, 2] = -(curl + 0.15 * m.gesture[:, None])
    right = -left + 0.003 * rng.standard_normal(left.shape)
    pelvis = Rotation.from_euler("x", (np.pi + 0.08 + 0.3 * lean)[:, None]) * Rotation.from_euler(
        "y", (0.5 * yaw)[:, None]
    )
    translation = np.stack(
        [
            base[0] + 0.4 * shift + 0.01 * np.sin(t / 40),
            base[1] + 0.03 * lean + 0.002 * m.breathing,
            base[2] + 1.5 * np.sin(2 * np.pi * t / (n + 1) + base[0]),
        ],
        1,
    )
    return {
        "smplh:body_pose": body,
        "smplh:left_hand_pose": left,
        "smplh:right_hand_pose": right,
        "smplh:global_orient": _continuous_rotvec(pelvis),
        "smplh:translation": translation,
        "smplh:is_valid": np.ones(n, bool),
    }


def fau_values(rng: np.random.Generator, m: Motion, partner: Motion) -> np.ndarray:
    """(N, 24) AU intensities in [0, 2], in SEAMLESS_FAU_ORDER."""
    listening = (~m.speaking & partner.speaking).astype(float)
    au = {
        "AU01": 1.2 * m.brow_raise,
        "AU02": 0.9 * m.brow_raise,
        "AU04": 1.5 * m.brow_frown,
        "AU05": 0.3 * m.brow_raise,
        "AU06": 1.4 * m.smile,
        "AU07": 0.4 * m.smile + 0.2 * m.brow_frown,
        "AU10": 0.4 * m.jaw,
        "AU12": 1.8 * m.smile,
        "AU13": 0.1 * m.smile,
        "AU14": 0.3 * listening,
        "AU16": 0.3 * m.jaw,
        "AU17": 0.4 * listening,
        "AU24": 0.25 * listening,
        "AU25": 1.6 * m.jaw + 0.1,
        "AU26": 1.4 * m.jaw,
        "AU43": 2.0 * m.blink,
    }
    n = len(m.jaw)
    values = np.stack([au.get(name, np.zeros(n)) for name in SEAMLESS_FAU_ORDER], 1)
    values = np.clip(values + 0.03 * np.abs(rng.standard_normal(values.shape)), 0, 2)
    values[:, 16:19] = 0.0  # AU20/22/23 columns: always zero in the real data
    return values


def emotion_logits(m: Motion) -> dict[str, np.ndarray]:
    return {
        "happiness": 3 * m.smile - 1,
        "neutral": 1.2 - 2 * m.smile,
        "surprise": 1.5 * m.brow_raise - 1,
        "anger": 1.2 * m.brow_frown - 1.5,
        "sadness": -1.2 + 0 * m.smile,
        "contempt": -1.5 + 0 * m.smile,
        "disgust": -1.6 + 0 * m.smile,
        "fear": -1.7 + 0 * m.smile,
    }


def movement_arrays(
    rng: np.random.Generator, m: Motion, partner: Motion, encoder: dict, identity: np.ndarray, hypernet_floor: bool
) -> dict[str, np.ndarray]:
    """The V00 Imitator features: FAUs, head rotation, expression latents, emotion, gaze."""
    n = len(m.jaw)
    fau = fau_values(rng, m, partner)
    arousal = 0.1 + 0.8 * m.envelope + 0.05 * rng.standard_normal(n)
    valence = 0.5 * m.smile - 0.3 * m.brow_frown + 0.03 * rng.standard_normal(n)
    logits = emotion_logits(m)
    scores = np.stack([logits[c] for c in SEAMLESS_EMOTION_ORDER], 1) + 0.1 * rng.standard_normal((n, 8))
    features = np.concatenate([fau, m.head, m.gaze], 1)  # what the (fictional) encoder sees
    rows = n // 15 if hypernet_floor else -(-n // 15)
    return {
        "movement:FAUValue": fau,
        "movement:FAUToken": np.argmax(fau @ encoder["token"], 1)[:, None].astype(float),
        "movement:expression": features @ encoder["expression"] + 0.02 * rng.standard_normal((n, 128)),
        "movement:frame_latent": features @ encoder["latent"] + 0.02 * rng.standard_normal((n, 64)),
        "movement:emotion_valence": valence[:, None],
        "movement:emotion_arousal": arousal[:, None],
        "movement:emotion_scores": scores,
        "movement:EmotionValenceToken": np.round((valence + 1) * 5)[:, None],
        "movement:EmotionArousalToken": np.round((arousal + 1) * 5)[:, None],
        "movement:gaze_encodings": m.gaze @ encoder["gaze"],
        "movement:head_encodings": m.head @ encoder["head"],
        "movement:alignment_head_rotation": m.head.copy(),
        "movement:alignment_translation": np.stack(
            [
                np.stack([m.posture[:, 2], 0.02 * m.posture[:, 0], 0.01 * m.breathing], 1),
                np.tile([1.0, 0.0, 0.0], (n, 1)),
            ],
            1,
        ),
        "movement:hypernet_features": identity[None] + 0.01 * rng.standard_normal((rows, HYPERNET_DIM)),
        "movement:is_valid": np.ones((n, 1)),
    }


def _face_box(translation: np.ndarray) -> np.ndarray:
    """Person box in pixels of the sample's raster, from the camera-relative translation."""
    cx = VIDEO_SIZE / 2 + 0.4 * VIDEO_SIZE * translation[:, 0]
    half = 0.3 * VIDEO_SIZE
    return np.stack([cx - half, 5 + 10 * translation[:, 1], cx + half, np.full(len(cx), VIDEO_SIZE - 1.0)], 1)


def keypoint_arrays(rng: np.random.Generator, translation: np.ndarray, template: np.ndarray) -> dict[str, np.ndarray]:
    box = np.clip(_face_box(translation), 0, VIDEO_SIZE - 1)
    size = (box[:, 2:] - box[:, :2])[:, None, :]
    xy = box[:, None, :2] + template[None] * size + 0.4 * rng.standard_normal((len(box), 133, 2))
    score = np.clip(0.85 + 0.1 * rng.standard_normal((len(box), 133, 1)), 0.2, 1.2055)
    return {
        "boxes_and_keypoints:box": box,
        "boxes_and_keypoints:keypoints": np.concatenate([xy, score], 2),
        "boxes_and_keypoints:is_valid_box": np.ones(len(box), bool),
    }


def add_smplh_bursts(rng: np.random.Generator, arrays: dict) -> None:
    """Bursts of invalid frames: finite, non-zero, not-held garbage poses; sentinel translations
    on most of them; the box is invalid (zeros) on the first frame of each burst."""
    n = len(arrays["smplh:is_valid"])
    for _ in range(int(rng.integers(2, 5))):
        start, length = int(rng.integers(n // 10, n - 30)), int(rng.integers(4, 21))
        burst = slice(start, start + length)
        arrays["smplh:is_valid"][burst] = False
        for key in ("smplh:body_pose", "smplh:left_hand_pose", "smplh:right_hand_pose", "smplh:global_orient"):
            arrays[key][burst] += rng.normal(0, 0.6, arrays[key][burst].shape)
        sentinel = rng.random(length) < 0.8
        arrays["smplh:translation"][burst][sentinel] = SENTINEL * 10 ** rng.uniform(0, 2, (sentinel.sum(), 1))
        arrays["boxes_and_keypoints:is_valid_box"][start] = False
        arrays["boxes_and_keypoints:box"][start] = 0
        arrays["boxes_and_keypoints:keypoints"][start] = 0


def add_movement_blocks(rng: np.random.Generator, arrays: dict) -> None:
    """Whole 60-frame blocks (starting at multiples of 60) with movement:is_valid 0 and every
    movement array zero-filled, as the real files have."""
    n = len(arrays["movement:is_valid"])
    for block in rng.choice(np.arange(1, n // 60), size=min(2, n // 60 - 1), replace=False):
        rows = slice(int(block) * 60, int(block) * 60 + 60)
        for key, value in arrays.items():
            if key.startswith("movement:") and key != "movement:hypernet_features":
                value[rows] = 0
        hyper = arrays["movement:hypernet_features"]
        hyper[int(block) * 4 : int(block) * 4 + 4] = 0


def _cast(arrays: dict) -> dict:
    """float64 -> float32 (the S3 converter's `recursively_cast_to_float32`); bools stay bool."""
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()}


# --- video -------------------------------------------------------------------------------------


def face_frames(
    m: Motion, translation: np.ndarray, colour: tuple[int, int, int], size: int = VIDEO_SIZE, chunk: int = 150
):
    """A simple moving face: head disc following position and nods, eyes that blink, a mouth
    that opens with the jaw and widens with the smile. Drawn `chunk` frames at a time."""
    yy, xx = (g[None].astype(np.float32) for g in np.mgrid[0:size, 0:size])
    for k0 in range(0, len(m.jaw), chunk):
        k = slice(k0, k0 + chunk)
        col = lambda v: np.asarray(v, np.float32)[:, None, None]
        cx = col(size / 2 + 0.4 * size * np.clip(translation[k, 0], -1, 1) + 0.15 * size * m.head[k, 1])
        cy = col(size * 0.45 + 0.25 * size * m.head[k, 0])
        r = size * 0.3
        images = np.full((len(cx), size, size, 3), 30, np.uint8)
        images[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
        eye_h = col(np.maximum(0.5, 0.06 * size * (1 - m.blink[k])))
        for side in (-0.35, 0.35):
            images[((xx - cx - side * r) / (0.08 * size)) ** 2 + ((yy - cy + 0.25 * r) / eye_h) ** 2 < 1] = 20
        mouth_w, mouth_h = col(0.3 * r * (1 + 0.6 * m.smile[k])), col(0.02 * size + 0.15 * size * m.jaw[k])
        images[((xx - cx) / mouth_w) ** 2 + ((yy - cy - 0.45 * r) / mouth_h) ** 2 < 1] = (120, 20, 30)
        yield from images


# --- writing files -----------------------------------------------------------------------------


def _json_bytes(
    file_id: str, plan: DyadPlan, person: int, rng: np.random.Generator, stale: bool = False, annotations: bool = False
) -> bytes:
    """The per-participant JSON of seamless.md 3: WhisperX-like transcript (a few null word times),
    10 ms VAD. `stale`: the earlier copy of a tar's rewritten member, before metadata was filled."""
    utterances = plan.of(person)
    transcript, vad = [], []
    for u in utterances:
        words: list[dict[str, Any]] = []
        for w in u.words:
            if rng.random() < 0.01:  # WhisperX leaves ~0.2-1% of words unaligned
                words.append({"word": w.text, "start": None, "end": None})
            else:
                words.append(
                    {
                        "word": w.text,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "score": round(float(rng.uniform(0.5, 1.0)), 3),
                    }
                )
        transcript.append({"start": round(u.start, 3), "end": round(u.end, 3), "transcript": u.text, "words": words})
        vad.append({"start": round(u.start, 2), "end": round(u.end, 2)})
    data = {"id": file_id, "metadata:transcript": [] if stale else transcript, "metadata:vad": [] if stale else vad}
    if annotations:
        data["annotations:3P-V"] = [{"annotation": "nods while the partner speaks", "start_ts": 1.0, "end_ts": 3.0}]
    return json.dumps(data).encode()


def _mp4_bytes(frames, rate: Fraction) -> bytes:
    buffer = io.BytesIO()
    media.write_mp4(buffer, frames, rate, (VIDEO_SIZE, VIDEO_SIZE))
    return buffer.getvalue()


def _wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    media.write_wav(buffer, audio, rate)
    return buffer.getvalue()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_750_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


class _Sink:
    """Collects files per location; tar locations are written in one go at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.tars: dict[str, list[tuple[str, bytes]]] = {}

    def put(self, location: str, name: str, data: bytes) -> None:
        if location.endswith(".tar"):
            self.tars.setdefault(location, []).append((name, data))
        else:
            folder = self.root / location
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)

    def close(self) -> None:
        for location, members in self.tars.items():
            path = self.root / location
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
                for name, data in members:
                    _tar_add(tar, name, data)


def _encoder(seed: int) -> dict[str, np.ndarray]:
    """Fixed random projections standing in for Imitator's encoders (one model for everyone)."""
    rng = np.random.default_rng([seed, 7])
    dims = 24 + 3 + 2
    return {
        "expression": rng.normal(0, 0.3, (dims, 128)),
        "latent": rng.normal(0, 0.3, (dims, 64)),
        "token": rng.normal(0, 1, (24, 16)),
        "gaze": rng.normal(0, 1, (2, 2)),
        "head": rng.normal(0, 1, (3, 3)),
    }


def write_seamless_clip(sink: _Sink, clip: SeamlessClip, rng: np.random.Generator, seconds: float, seed: int) -> None:
    dyad = make_dyad(rng, seconds, clip.rate)
    encoder = _encoder(seed)
    template = np.random.default_rng([seed, 11]).uniform(0.1, 0.9, (133, 2))
    bases = (np.array([0.08, 0.35, 36.0]), np.array([-0.12, 0.42, 47.0]))
    colours = ((220, 170, 140), (150, 190, 230))
    for person, (file_id, location) in enumerate(zip(clip.file_ids(), clip.locations)):
        m, partner = dyad.motion[person], dyad.motion[1 - person]
        arrays = smplh_arrays(rng, m, bases[person])
        clean_translation = arrays["smplh:translation"].copy()
        arrays.update(keypoint_arrays(rng, clean_translation, template))
        if clip.movement:
            identity = np.random.default_rng([seed, 13, person]).normal(0, 1, HYPERNET_DIM)
            arrays.update(movement_arrays(rng, m, partner, encoder, identity, clip.hypernet_floor))
            if clip.movement_blocks:
                add_movement_blocks(rng, arrays)
        if clip.smplh_bursts:
            add_smplh_bursts(rng, arrays)
        sink.put(location, f"{file_id}.npz", npz_bytes(_cast(arrays), level=1))  # fast; still DEFLATE
        if clip.duplicate_json:
            sink.put(location, f"{file_id}.json", _json_bytes(file_id, dyad.plan, person, rng, stale=True))
        sink.put(location, f"{file_id}.wav", _wav_bytes(dyad.audio[person], AUDIO_RATE))
        sink.put(location, f"{file_id}.mp4", _mp4_bytes(face_frames(m, clean_translation, colours[person]), clip.rate))
        sink.put(
            location, f"{file_id}.json", _json_bytes(file_id, dyad.plan, person, rng, annotations=clip.duplicate_json)
        )


def write_placeholder(sink: _Sink, file_id: str, location: str) -> None:
    """An empty bundle like V01_S0346_I00000726_P1694: N = 0 arrays, a 261-byte MP4 without
    streams, a 58-byte WAV header, empty JSON lists."""
    empty = {
        "smplh:body_pose": np.zeros((0, 21, 3), np.float32),
        "smplh:global_orient": np.zeros((0, 3), np.float32),
        "smplh:left_hand_pose": np.zeros((0, 15, 3), np.float32),
        "smplh:right_hand_pose": np.zeros((0, 15, 3), np.float32),
        "smplh:translation": np.zeros((0, 3), np.float32),
        "smplh:is_valid": np.zeros(0, bool),
        "boxes_and_keypoints:box": np.zeros((0, 4), np.float32),
        "boxes_and_keypoints:is_valid_box": np.zeros(0, bool),
        "boxes_and_keypoints:keypoints": np.zeros((0, 133, 3), np.float32),
    }
    sink.put(location, f"{file_id}.npz", npz_bytes(empty))
    sink.put(location, f"{file_id}.mp4", media.empty_mp4_bytes())
    sink.put(location, f"{file_id}.wav", media.empty_wav_bytes())
    sink.put(
        location, f"{file_id}.json", json.dumps({"id": file_id, "metadata:transcript": [], "metadata:vad": []}).encode()
    )


def _extra_clip(i: int) -> SeamlessClip:
    """Interactions beyond the quirk set: plain V00 clips cycling through the three frame rates."""
    rates = (Fraction(30), Fraction(30000, 1001), Fraction(45000, 1501))
    return SeamlessClip(
        f"V00_S0900_I{i:08d}",
        ("P1001", "P1002A"),
        rates[i % 3],
        (f"{IMPROV}/{i % 4:04d}", f"{IMPROV}/{(i + 1) % 4:04d}"),
    )


def write_react_session(
    root: Path,
    split: str,
    session: str,
    name: str,
    listener_rate: int,
    rng: np.random.Generator,
    seconds: float,
    nan_burst: bool,
) -> None:
    """REACT 2025 layout: facial-attributes (T, 25), coefficients (T, 58), audio, video-face-crop;
    the speaker (folder `speaker`) holds the floor most of the time."""
    from .specs import BLENDSHAPE_INDEX  # ARKit order of the 52 expression components

    dyad = make_dyad(
        rng,
        seconds,
        REACT_FPS,
        rates=(REACT_SPEAKER_RATE, listener_rate),
        primary=0,
        primary_floor=(4.0, 8.0),
        secondary_floor=(0.8, 1.8),
    )
    for person, role in enumerate(("speaker", "listener")):
        m, partner = dyad.motion[person], dyad.motion[1 - person]
        n = len(m.jaw)
        fau = dict(zip(SEAMLESS_FAU_ORDER, fau_values(rng, m, partner).T))
        aus = np.stack([(fau[a] > 0.5).astype(float) for a in REACT_AU_ORDER], 1)
        valence = np.clip(0.6 * m.smile - 0.3 * m.brow_frown + 0.03 * rng.standard_normal(n), -1, 1)
        arousal = np.clip(-0.2 + 0.7 * m.envelope + 0.05 * rng.standard_normal(n), -1, 1)
        logits = emotion_logits(m)
        logits = {"happy": logits["happiness"], "sad": logits["sadness"], **logits}
        raw = np.stack([logits[c] for c in REACT_EXPRESSION_ORDER], 1)
        probs = np.exp(raw) / np.exp(raw).sum(1, keepdims=True)
        attributes = np.concatenate([aus, valence[:, None], arousal[:, None], probs], 1)
        expression = np.zeros((n, 52))
        for shape, value in {
            "jawOpen": m.jaw,
            "mouthSmileLeft": m.smile,
            "mouthSmileRight": 0.95 * m.smile,
            "eyeBlinkLeft": m.blink,
            "eyeBlinkRight": m.blink,
            "browInnerUp": m.brow_raise,
            "browOuterUpLeft": 0.7 * m.brow_raise,
            "browOuterUpRight": 0.7 * m.brow_raise,
            "browDownLeft": m.brow_frown,
            "browDownRight": m.brow_frown,
            "cheekSquintLeft": 0.5 * m.smile,
            "cheekSquintRight": 0.5 * m.smile,
            "mouthClose": 0.2 * (1 - m.jaw),
        }.items():
            expression[:, BLENDSHAPE_INDEX[shape]] = value
        translation = np.stack([0.3 * m.posture[:, 2], 0.02 * m.posture[:, 0], 0.01 * m.breathing], 1)
        coefficients = np.concatenate([expression, m.head, translation], 1)
        if nan_burst and role == "listener":  # REACT has no validity flags: failed frames are NaN
            attributes[40:44] = np.nan
            coefficients[40:44] = np.nan
        for kind, array in (("facial-attributes", attributes), ("coefficients", coefficients)):
            folder = root / split / kind / role / session
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{name}.npy", array.astype(np.float32))
        folder = root / split / "audio" / role / session
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.wav").write_bytes(_wav_bytes(dyad.audio[person], dyad.rates[person]))
        folder = root / split / "video-face-crop" / role / session
        folder.mkdir(parents=True, exist_ok=True)
        colour = ((220, 170, 140), (150, 190, 230))[person]
        (folder / f"{name}.mp4").write_bytes(_mp4_bytes(face_frames(m, np.zeros((n, 3)), colour), REACT_FPS))


# --- public entry points -----------------------------------------------------------------------


MIN_SECONDS = 3.0


def generate_sample(
    out_dir: str | Path,
    format: str = "seamless",  # noqa: A002 - public keyword argument (`dyadic sample --format`)
    interactions: int = 4,
    seconds: float = 20.0,
    seed: int = 0,
    quirks: bool = True,
    start: int = 0,
) -> Path:
    """Write `interactions` synthetic dyads of `seconds` each in the layout of `format`.

    Seamless: the first four are SEAMLESS_CLIPS (with `quirks`, including the N = 0 placeholder
    bundle); more are plain V00 clips. REACT: sessions of REACT_SESSIONS, then more in `val`.
    `start`: the index of the first one, so that folders generated with different seeds and
    starts hold different interaction ids and can be read as one dataset.
    Deterministic: the same arguments give the same arrays, audio, JSON and video bytes.
    """
    if seconds < MIN_SECONDS:
        raise ValueError(
            f"sample clips must last at least {MIN_SECONDS:g} s (a turn, a pause and a "
            f"mirrored smile need the room), not {seconds:g} s"
        )
    if interactions < 1:
        raise ValueError(f"interactions must be at least 1, not {interactions}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if format == "seamless":
        sink = _Sink(out)
        for i in range(start, start + interactions):
            clip = SEAMLESS_CLIPS[i] if i < len(SEAMLESS_CLIPS) else _extra_clip(i)
            if not quirks:
                first, second = (loc.replace(".tar", "") for loc in clip.locations)
                clip = SeamlessClip(clip.key, clip.participants, clip.rate, (first, second), clip.movement)
            write_seamless_clip(sink, clip, rng, seconds, seed)
        if quirks and start == 0 and interactions >= len(SEAMLESS_CLIPS):
            write_placeholder(sink, PLACEHOLDER_ID, PLACEHOLDER_FOLDER)
        sink.close()
    elif format == "react":
        for i in range(start, start + interactions):
            split, session, name, rate = (
                REACT_SESSIONS[i]
                if i < len(REACT_SESSIONS)
                else ("val", f"session{i % 23}", f"Camera-2024-08-{i:02d}-100000-100000", 44_100)
            )
            write_react_session(out, split, session, name, rate, rng, seconds, nan_burst=quirks and i == 1)
    else:
        raise ValueError(f"unknown sample format {format!r}: expected 'seamless' or 'react'")
    return out


def generate_default_sample(out_dir: str | Path, seed: int = 0, seconds: float = 20.0) -> Path:
    """What `default_sample_root()` ships: `seamless/` (4 interactions + a placeholder) and
    `react/` (2 sessions)."""
    out = Path(out_dir)
    generate_sample(out / "seamless", "seamless", interactions=len(SEAMLESS_CLIPS), seconds=seconds, seed=seed)
    generate_sample(out / "react", "react", interactions=len(REACT_SESSIONS), seconds=seconds, seed=seed + 1)
    return out
