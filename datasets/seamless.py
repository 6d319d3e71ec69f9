"""Seamless Interaction reader (the format of the released dataset, as its README and files define it).

One file bundle = one participant: `{file_id}.npz/.json/.wav/.mp4`, either extracted under
`{label}/{split}/{batch}/{archive}/` or as members of a webdataset tar `{batch}/{archive}.tar`.
The reader walks any root for `*.npz` and `*.tar`, pairs bundles by the interaction key (the file
id's prefix before `_P`, across folders and tars), and never lets one bad file stop the others:
each problem becomes one line naming the file and the field.
"""

from __future__ import annotations

import json
import math
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .bridging import VALUE_LIMIT, bridge, finite_rows, usable_rows
from .companions import audio_problems, read_fps
from .errors import DatasetError
from .files import FileRef, dataset_files, tar_members
from .interaction import Interaction, InteractionInfo, ParticipantTrack, Segment
from .npzio import read_npz_headers
from .specs import MOVEMENT_GROUPS, SEAMLESS_SPEC, SMPLH_GROUPS

DATASET = "seamless"
SENTINEL_LIMIT = 1e3  # |translation| above this is the ~1e12 invalid-frame sentinel
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
# Neutral values for a group that has no valid frame at all: a person facing the camera in its
# y-down frame, at a typical distance; zero elsewhere.
NEUTRAL = {"smplh:global_orient": np.array([math.pi, 0, 0]), "smplh:translation": np.array([0, 0.4, 40.0])}


def interaction_key(file_id: str) -> str:
    """`V00_S0809_I00000582_P0602A` -> `V00_S0809_I00000582` (file ids are otherwise opaque)."""
    cut = file_id.rfind("_P")
    return file_id[:cut] if cut > 0 else file_id


def participant_label(file_id: str) -> str:
    cut = file_id.rfind("_P")
    return file_id[cut + 1 :] if cut > 0 else file_id


# --- finding bundles -------------------------------------------------------------------------


@dataclass
class Bundle:
    """The files of one participant; any but the NPZ may be missing."""

    file_id: str
    files: dict[str, FileRef]  # extension without dot -> file

    @property
    def npz(self) -> FileRef:
        return self.files["npz"]


@dataclass
class ScanResult:
    bundles: list[Bundle] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan(paths: list[Path]) -> ScanResult:
    """Find every bundle among `paths` (extracted `.npz` files with their companions, and
    webdataset tars); other files are ignored."""
    result = ScanResult()
    seen: dict[str, Bundle] = {}

    def add(file_id: str, files: dict[str, FileRef]) -> None:
        if file_id in seen:
            result.problems.append(
                f"{files['npz'].name}: file id {file_id} also at {seen[file_id].npz.path}: second copy ignored"
            )
            return
        seen[file_id] = Bundle(file_id, files)

    for path in [p for p in paths if p.suffix == ".npz"] + [p for p in paths if p.suffix == ".tar"]:
        if path.suffix == ".npz":
            stem = path.name[:-4]
            files = {"npz": FileRef(path)}
            for ext in ("json", "wav", "mp4"):
                companion = path.with_name(f"{stem}.{ext}")
                if companion.is_file():
                    files[ext] = FileRef(companion)
            add(stem, files)
        elif path.suffix == ".tar":
            try:
                members = tar_members(path)
            except (tarfile.TarError, OSError) as exc:
                result.problems.append(f"{path.name}: not a readable tar ({exc}): skipped")
                continue
            for name in sorted(members):
                if name.endswith(".npz"):
                    stem = name[:-4]
                    files = {
                        ext: members[f"{stem}.{ext}"]
                        for ext in ("npz", "json", "wav", "mp4")
                        if f"{stem}.{ext}" in members
                    }
                    add(stem, files)
    result.bundles = sorted(seen.values(), key=lambda b: b.file_id)
    return result


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


# --- the index ---------------------------------------------------------------------------------


@dataclass
class SeamlessEntry:
    """One interaction found by `index`: enough to list it and to load it later."""

    info: InteractionInfo
    bundles: list[Bundle]  # speaker first
    summaries: dict[str, NpzSummary]
    rates: dict[str, tuple[float, list[str]]]  # file id -> (MP4 fps, its problems)
    pair_problems: list[str]

    @property
    def file_ids(self) -> list[str]:
        return [b.file_id for b in self.bundles]

    def load(self) -> Interaction:
        return load_entry(self)


def _talk_time(bundle: Bundle) -> float:
    vad, _, _ = parse_metadata(bundle.files.get("json"), bundle.file_id)
    return sum(max(0.0, s.end - s.start) for s in vad)


def order_speaker_first(bundles: list[Bundle]) -> list[Bundle]:
    """Seamless has no roles: the speaker talks more (VAD); a tie goes to the first file id."""
    ordered = sorted(bundles, key=lambda b: b.file_id)
    talk = [_talk_time(b) for b in ordered]
    return ordered if talk[0] >= talk[1] else ordered[::-1]


def index(paths: list[Path]) -> tuple[list[SeamlessEntry], list[str]]:
    """Usable interactions among `paths` (sorted by id) and the problems of files left out."""
    found = scan(paths)
    problems = list(found.problems)
    summaries: dict[str, NpzSummary] = {}
    by_key: dict[str, list[Bundle]] = {}
    for bundle in found.bundles:
        summary = summarize_npz(bundle.npz)
        if summary.skip:
            problems.extend(summary.problems)
            continue
        summaries[bundle.file_id] = summary
        by_key.setdefault(interaction_key(bundle.file_id), []).append(bundle)
    entries = []
    for key, bundles in sorted(by_key.items()):
        if len(bundles) == 1:
            problems.append(f"{bundles[0].npz.name}: no partner file for interaction {key}: unpaired, skipped")
            continue
        pair_problems, file_problems, rates = [], [], {}
        if len(bundles) > 2:
            pair_problems.append(
                f"{key}: {len(bundles)} participant files "
                f"({', '.join(b.file_id for b in bundles)}): the first two are used"
            )
            bundles = sorted(bundles, key=lambda b: b.file_id)[:2]
        bundles = order_speaker_first(bundles)
        for b in bundles:
            rates[b.file_id] = read_fps(b.files.get("mp4"), b.file_id)
            file_problems += summaries[b.file_id].problems + rates[b.file_id][1]
        fps_values = [rates[b.file_id][0] for b in bundles]
        if abs(fps_values[0] - fps_values[1]) > 1e-6:
            pair_problems.append(
                f"{key}: frame rates differ ({fps_values[0]:.3f} vs {fps_values[1]:.3f}): the speaker's is used"
            )
        frames = [summaries[b.file_id].n_frames for b in bundles]
        if frames[0] != frames[1]:
            pair_problems.append(
                f"{key}: frame counts differ ({frames[0]} vs {frames[1]}): the first {min(frames)} are paired"
            )
        groups = [g for g in groups_present(summaries[bundles[0].file_id]) if g in summaries[bundles[1].file_id].keys]
        info = InteractionInfo(
            key,
            DATASET,
            [participant_label(b.file_id) for b in bundles],
            min(frames),
            fps_values[0],
            groups,
            pair_problems + file_problems,
        )
        entries.append(
            SeamlessEntry(info, bundles, {b.file_id: summaries[b.file_id] for b in bundles}, rates, pair_problems)
        )
    return entries, problems


# --- loading -----------------------------------------------------------------------------------


def _read_arrays(ref: FileRef, keys: dict[str, tuple[int, ...]]) -> tuple[dict[str, np.ndarray], list[str]]:
    arrays, problems = {}, []
    with ref.open() as stream, np.load(stream, allow_pickle=False) as npz:
        for key in keys:
            try:
                arrays[key] = npz[key]
            except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
                problems.append(f"{ref.name}: {key} cannot be decoded ({exc}): left out")
    return arrays, problems


def load_track(
    bundle: Bundle,
    summary: NpzSummary | None = None,
    rate: tuple[float, list[str]] | None = None,
    fps: float | None = None,
) -> ParticipantTrack:
    """Read one participant completely; raises DatasetError if its NPZ is unusable.

    `summary` and `rate` are the index's results (recomputed when absent); `fps` overrides the
    track's own rate (a pair shares the speaker's clock).
    """
    summary = summary or summarize_npz(bundle.npz)
    if summary.skip:
        raise DatasetError(summary.problems[0])
    own_fps, fps_problems = rate or read_fps(bundle.files.get("mp4"), bundle.file_id)
    fps = fps or own_fps
    problems = list(summary.problems) + list(fps_problems)
    n = summary.n_frames
    arrays, decode_problems = _read_arrays(bundle.npz, summary.keys)
    problems += decode_problems

    smplh_valid = np.ones(n, bool)
    if "smplh:is_valid" in arrays:
        smplh_valid &= arrays["smplh:is_valid"].astype(bool)
    if "smplh:translation" in arrays:
        translation = arrays["smplh:translation"]
        smplh_valid &= (np.abs(np.nan_to_num(translation, nan=np.inf)) < SENTINEL_LIMIT).all(axis=1)
    movement_valid = np.ones(n, bool)
    if "movement:is_valid" in arrays:
        movement_valid &= arrays["movement:is_valid"][:, 0] > 0.5
    family_groups = (
        (SMPLH_GROUPS, smplh_valid, "smplh:is_valid"),
        (MOVEMENT_GROUPS, movement_valid, "movement:is_valid"),
    )
    channels, valid = {}, {}
    for groups, family_valid, flag in family_groups:
        present = [g for g in groups if g.name in arrays]
        for g in present:  # a NaN, inf or absurd value in any group invalidates the frame for the family
            usable = usable_rows(arrays[g.name])
            absurd = int((family_valid & finite_rows(arrays[g.name]) & ~usable).sum())
            if absurd:
                problems.append(
                    f"{bundle.npz.name}: {g.name}: {absurd} frame(s) marked valid hold values beyond "
                    f"+/-{VALUE_LIMIT:,.0f}: taken as invalid, bridged"
                )
            family_valid &= usable
        if present and not family_valid.any():
            problems.append(
                f"{bundle.npz.name}: {flag}: no valid frame: {', '.join(g.name for g in present)} "
                "held at a neutral value"
            )
        for g in present:
            channels[g.name] = bridge(arrays[g.name], family_valid, g.kind, NEUTRAL.get(g.name, 0.0))
            valid[g.name] = family_valid.copy()

    vad, transcript, json_problems = parse_metadata(bundle.files.get("json"), bundle.file_id)
    problems += json_problems
    wav = bundle.files.get("wav")
    has_audio, wav_problems = audio_problems(wav, bundle.file_id, n / fps)
    problems += wav_problems
    usable_wav = wav if has_audio else None  # a missing WAV is never usable
    return ParticipantTrack(
        file_id=bundle.file_id,
        participant=participant_label(bundle.file_id),
        fps=fps,
        n_frames=n,
        channels=channels,
        valid=valid,
        audio_path=usable_wav.path if usable_wav is not None and usable_wav.member is None else None,
        audio_loader=media.lazy_audio(usable_wav.open, usable_wav.name) if usable_wav is not None else None,
        vad=vad,
        transcript=transcript,
        problems=problems,
    )


def load_entry(entry: SeamlessEntry) -> Interaction:
    speaker, listener = (
        load_track(b, entry.summaries[b.file_id], entry.rates[b.file_id], entry.info.fps) for b in entry.bundles
    )
    problems = list(entry.pair_problems) + speaker.problems + listener.problems
    return Interaction(entry.info.id, DATASET, SEAMLESS_SPEC, speaker, listener, problems)


def load_file(path: str | Path) -> ParticipantTrack:
    """Read one extracted participant bundle given its `.npz` path (DatasetError if unusable)."""
    path = Path(path)
    files, problems = dataset_files(path, (".npz",))
    if problems:
        raise DatasetError(problems[0])
    found = scan(files)
    if not found.bundles:
        raise DatasetError(f"{path.name}: not a Seamless .npz bundle")
    return load_track(found.bundles[0])
