"""Seamless Interaction reader (the format of the released dataset, as its README and files define it).

One file bundle = one participant: `{file_id}.npz/.json/.wav/.mp4`, either extracted under
`{label}/{split}/{batch}/{archive}/` or as members of a webdataset tar `{batch}/{archive}.tar`.
The reader walks any root for `*.npz` and `*.tar`, pairs bundles by the interaction key (the file
id's prefix before `_P`, across folders and tars), and never lets one bad file stop the others:
each problem becomes one line naming the file and the field.
"""

from __future__ import annotations

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
from .facts import READ, FileFacts, rate_from_json, ref_from_json, ref_to_json, summary_from_json, summary_to_json
from .files import FileRef, dataset_files
from .interaction import Interaction, InteractionInfo, ParticipantTrack
from .seamless_headers import (  # noqa: F401 (names readers and tests use from here)
    HYPERNET_RATE,
    KEY_SHAPES,
    MAX_FRAMES,
    SMPLH_KEYS,
    NpzSummary,
    groups_present,
    parse_metadata,
    summarize_npz,
)
from .specs import MOVEMENT_GROUPS, SEAMLESS_SPEC, SMPLH_GROUPS

DATASET = "seamless"
SENTINEL_LIMIT = 1e3  # |translation| above this is the ~1e12 invalid-frame sentinel

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


def scan(paths: list[Path], facts: FileFacts = READ) -> ScanResult:
    """Find every bundle among `paths` (extracted `.npz` files with their companions, and
    webdataset tars); other files are ignored. A companion is looked for among `paths` first."""
    result = ScanResult()
    seen: dict[str, Bundle] = {}
    listed = set(paths)

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
                if companion in listed or companion.is_file():
                    files[ext] = FileRef(companion)
            add(stem, files)
        elif path.suffix == ".tar":
            try:
                members = facts.tar_members(path)
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


def order_speaker_first(bundles: list[Bundle], facts: FileFacts = READ) -> list[Bundle]:
    """Seamless has no roles: the speaker talks more (VAD); a tie goes to the first file id."""
    ordered = sorted(bundles, key=lambda b: b.file_id)
    talk = [facts.talk_time(b.files.get("json"), b.file_id) for b in ordered]
    return ordered if talk[0] >= talk[1] else ordered[::-1]


def index(paths: list[Path], facts: FileFacts = READ) -> tuple[list[SeamlessEntry], list[str]]:
    """Usable interactions among `paths` (sorted by id) and the problems of files left out; what
    is read of each file comes from `facts` (the catalog index's, or the files themselves)."""
    found = scan(paths, facts)
    problems = list(found.problems)
    summaries: dict[str, NpzSummary] = {}
    by_key: dict[str, list[Bundle]] = {}
    for bundle in found.bundles:
        summary = facts.npz_summary(bundle.npz)
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
        bundles = order_speaker_first(bundles, facts)
        for b in bundles:
            rates[b.file_id] = facts.video_fps(b.files.get("mp4"), b.file_id)
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


# --- what the catalog index keeps of an entry (catalog.py) -------------------------------------

COMPANION_EXTS = ("npz", "json", "wav", "mp4")


def group_key(name: str) -> str | None:
    """The interaction a file or tar member named `name` may belong to (None: not a bundle file)."""
    stem, _, ext = name.rpartition(".")
    return f"{DATASET}:{interaction_key(stem)}" if ext in COMPANION_EXTS else None


def entry_to_json(entry: SeamlessEntry, prefix: str) -> dict:
    return {
        "bundles": [
            [b.file_id, {ext: ref_to_json(ref, prefix) for ext, ref in b.files.items()}] for b in entry.bundles
        ],
        "summaries": {fid: summary_to_json(s) for fid, s in entry.summaries.items()},
        "rates": {fid: [rate, problems] for fid, (rate, problems) in entry.rates.items()},
        "pair_problems": entry.pair_problems,
    }


def entry_from_json(info: InteractionInfo, data: dict, prefix: str) -> SeamlessEntry:
    bundles = [
        Bundle(str(fid), {str(ext): ref_from_json(ref, prefix) for ext, ref in files.items()})
        for fid, files in data["bundles"]
    ]
    summaries = {str(fid): summary_from_json(s) for fid, s in data["summaries"].items()}
    rates = {str(fid): rate_from_json(r) for fid, r in data["rates"].items()}
    return SeamlessEntry(info, bundles, summaries, rates, [str(p) for p in data["pair_problems"]])


# --- loading -----------------------------------------------------------------------------------


def _read_arrays(ref: FileRef, keys: dict[str, tuple[int, ...]]) -> tuple[dict[str, np.ndarray], list[str]]:
    arrays, problems = {}, []
    with ref.open() as stream:
        try:
            npz = np.load(stream, allow_pickle=False)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            # indexed as an NPZ, no longer one: changed on disk without a new size or mtime
            raise DatasetError(f"{ref.name}: not a readable NPZ archive any more ({exc})") from None
        with npz:
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
