"""What a Seamless Interaction file's headers say: an NPZ's frame count, usable keys and problems
(from the arrays' headers only), and a participant's JSON VAD and transcript segments.

Below the reader (seamless.py) and the facts the catalog index keeps (facts.py), which both use it.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass

from .files import FileRef
from .interaction import Segment
from .npzio import read_npz_headers
from .specs import MOVEMENT_GROUPS, SEAMLESS_SPEC, SMPLH_GROUPS

HYPERNET_RATE = 15  # one hypernet_features row per 15 frames

# Per-frame shapes of every NPZ key this reader checks (seamless.md 2.1-2.3). Keys not listed
# (movement_v4:*, future additions) are ignored.
KEY_SHAPES: dict[str, tuple[int, ...]] = {
    **{g.name: g.shape for g in SEAMLESS_SPEC.groups},
    "smplh:is_valid": (),
    "movement:is_valid": (1,),
    "movement:frame_latent": (64,),
    "movement:FAUToken": (1,),
    "movement:EmotionArousalToken": (1,),
    "movement:EmotionValenceToken": (1,),
    "movement:alignment_translation": (2, 3),
    "boxes_and_keypoints:box": (4,),
    "boxes_and_keypoints:is_valid_box": (),
    "boxes_and_keypoints:keypoints": (133, 3),
}
SMPLH_KEYS = tuple(g.name for g in SMPLH_GROUPS) + ("smplh:is_valid",)


# --- NPZ headers: the cheap index ----------------------------------------------------------


@dataclass
class NpzSummary:
    n_frames: int
    keys: dict[str, tuple[int, ...]]  # usable keys -> full shape
    problems: list[str]
    skip: bool = False  # unusable: empty placeholder or unreadable


def _expected_shape(key: str, n: int, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape `key` must have for N = n, or None if `shape` is acceptable as it is."""
    if key == "movement:hypernet_features":
        rows_ok = shape[:1] and shape[0] in (n // HYPERNET_RATE, -(-n // HYPERNET_RATE))
        return None if len(shape) == 2 and rows_ok and shape[1] == 5120 else (-(-n // HYPERNET_RATE), 5120)
    expected = (n,) + KEY_SHAPES[key]
    return None if shape == expected else expected


NUMERIC_KINDS = "biuf"  # bool, int, unsigned, float: not complex, dates, strings or objects
MAX_FRAMES = 24 * 3600 * 60  # a day at 60 FPS: more than any recording, less than a lying header


def summarize_npz(ref: FileRef) -> NpzSummary:
    """N, usable keys and problems of one NPZ from its headers only."""
    try:
        with ref.open() as stream:
            headers = read_npz_headers(stream)
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError) as exc:
        return NpzSummary(0, {}, [f"{ref.name}: not a readable npz (truncated or corrupt: {exc}): skipped"], True)
    if not headers:
        return NpzSummary(0, {}, [f"{ref.name}: npz holds no arrays: skipped"], True)
    anchor = "smplh:body_pose" if "smplh:body_pose" in headers else sorted(headers)[0]
    anchor_shape = headers[anchor][0]
    if not anchor_shape or anchor_shape[0] == 0:
        return NpzSummary(0, {}, [f"{ref.name}: {anchor} has shape {anchor_shape}: empty placeholder, skipped"], True)
    n = anchor_shape[0]
    if n > MAX_FRAMES:  # a header can claim anything; reading it would exhaust memory
        return NpzSummary(0, {}, [f"{ref.name}: {anchor} claims {n} frames (over {MAX_FRAMES}): skipped"], True)
    keys, problems = {}, []
    for key, (shape, dtype) in sorted(headers.items()):
        if key not in KEY_SHAPES and key != "movement:hypernet_features":
            continue
        if dtype.kind not in NUMERIC_KINDS:
            problems.append(f"{ref.name}: {key} has dtype {dtype}, expected numbers: left out")
            continue
        expected = _expected_shape(key, n, shape)
        if expected is not None:
            problems.append(f"{ref.name}: {key} has shape {shape}, expected {expected}: left out")
            continue
        keys[key] = shape
    for key in SMPLH_KEYS:
        if key not in keys and key in headers:
            continue  # already reported as a wrong shape
        if key not in headers:
            problems.append(
                f"{ref.name}: {key} missing"
                + (": all frames taken as valid" if key.endswith("is_valid") else ": group left out")
            )
    if any(k.startswith("movement:") for k in headers):  # a V00 file: every movement group expected
        for g in MOVEMENT_GROUPS:
            if g.name not in headers:
                problems.append(f"{ref.name}: {g.name} missing: group left out")
    if any(k.startswith("movement:") for k in keys) and "movement:is_valid" not in headers:
        problems.append(f"{ref.name}: movement:is_valid missing: all movement frames taken as valid")
    return NpzSummary(n, keys, problems)


def groups_present(summary: NpzSummary) -> list[str]:
    return [g for g in SEAMLESS_SPEC.names if g in summary.keys]


# --- JSON, audio, video ------------------------------------------------------------------------


MAX_SECONDS = 24 * 3600.0  # a segment time beyond a day is corrupt, not a long conversation


def _seconds(value) -> float | None:
    """A segment time in seconds, or None when it is not a number, NaN/inf (Python's json reads
    `NaN` and `Infinity`), negative or beyond a day."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value) if 0.0 <= value <= MAX_SECONDS else None


def parse_metadata(ref: FileRef | None, file_id: str) -> tuple[list[Segment], list[Segment], list[str]]:
    """VAD and transcript segments of one participant's JSON, and problem lines."""
    if ref is None:
        return [], [], [f"{file_id}.json: missing: no VAD or transcript"]
    try:
        data = json.loads(ref.read_bytes().decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"top level is {type(data).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [], [f"{ref.name}: not valid JSON ({exc}): no VAD or transcript"]
    except RecursionError:  # json's decoder recurses once per nesting level
        return [], [], [f"{ref.name}: not valid JSON (nested too deeply): no VAD or transcript"]
    problems = []
    if data.get("id") not in (None, file_id):
        problems.append(f"{ref.name}: id is {data.get('id')!r}, expected {file_id!r}")

    def segments(key: str, text_key: str | None) -> list[Segment]:
        raw = data.get(key, [])
        if not isinstance(raw, list):
            problems.append(f"{ref.name}: {key} is {type(raw).__name__}, not a list: ignored")
            return []
        out, bad = [], 0
        for item in raw:
            start = _seconds(item.get("start")) if isinstance(item, dict) else None
            end = _seconds(item.get("end")) if isinstance(item, dict) else None
            if start is None or end is None or end < start:
                bad += 1
                continue
            text = str(item.get(text_key, "")) if text_key else ""
            out.append(Segment(start, end, text))
        if bad:
            problems.append(f"{ref.name}: {key}: {bad} segment(s) without valid start/end: ignored")
        return sorted(out, key=lambda s: s.start)

    if "metadata:vad" not in data:
        problems.append(f"{ref.name}: metadata:vad missing: no VAD")
    vad = segments("metadata:vad", None)
    transcript = segments("metadata:transcript", "transcript")  # word times may be null: not read here
    return vad, transcript, problems
