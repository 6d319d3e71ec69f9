"""REACT 2025 (MARS) reader: `{split}/{facial-attributes|coefficients}/{speaker|listener}/session{N}/{name}.npy`
plus `{split}/audio/...wav` and `{split}/video-face-crop/...mp4` (the challenge's release layout).

Speaker and listener are paired by split + session + file name; 30 fps; audio resampled to 48 kHz.
REACT has no validity flags: rows with NaN/inf are the invalid frames, bridged like Seamless's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .bridging import VALUE_LIMIT, bridge, usable_rows
from .companions import audio_problems
from .errors import DatasetError
from .facts import READ, FileFacts
from .files import FileRef
from .interaction import Interaction, InteractionInfo, ParticipantTrack
from .specs import REACT_ATTRIBUTE_SLICES, REACT_COEFFICIENT_SLICES, REACT_SPEC

DATASET = "react"
FPS = 30.0
ROLES = ("speaker", "listener")
FEATURE_FILES = {"facial-attributes": (25, REACT_ATTRIBUTE_SLICES), "coefficients": (58, REACT_COEFFICIENT_SLICES)}


@dataclass
class ReactEntry:
    """One speaker/listener pair: its files by role and kind."""

    info: InteractionInfo
    files: dict[str, dict[str, Path]]  # role -> kind ("facial-attributes", "coefficients", "audio", "video") -> path
    frames: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> kind -> rows

    @property
    def file_ids(self) -> list[str]:
        split, session, name = self.info.id.split("/")
        return [f"{split}/{role}/{session}/{name}" for role in ROLES]

    def load(self) -> Interaction:
        return load_entry(self)


def _locate(path: Path) -> tuple[str, str, str, str, str] | None:
    """(split, kind, role, session, name) of a REACT file, or None if its path is not REACT's."""
    parts = path.parts
    if len(parts) < 5 or parts[-3] not in ROLES or not parts[-2].startswith("session"):
        return None
    return parts[-5], parts[-4], parts[-3], parts[-2], path.stem


MAX_FRAMES = int(24 * 3600 * FPS)  # a day: more than any clip, less than a lying header


def _npy_rows(path: Path, width: int, facts: FileFacts = READ) -> tuple[int, str | None]:
    """Row count of a (T, width) .npy from its header, or a problem."""
    header = facts.npy_header(path)
    if isinstance(header, str):
        return 0, f"{path.name}: {header}"
    shape, dtype = header[0], np.dtype(header[1])
    if len(shape) != 2 or shape[1] != width or dtype.kind != "f":
        return 0, f"{path.name}: has shape {shape} {dtype}, expected (T, {width}) float"
    if shape[0] == 0:
        return 0, f"{path.name}: has shape {shape}: empty"
    if shape[0] > MAX_FRAMES:  # a header can claim anything; reading it would exhaust memory
        return 0, f"{path.name}: claims {shape[0]} frames (over {MAX_FRAMES})"
    return shape[0], None


def index(paths: list[Path], facts: FileFacts = READ) -> tuple[list[ReactEntry], list[str]]:
    """Usable speaker/listener pairs among `paths` (sorted by id) and the problems of files left
    out; what is read of each file comes from `facts` (the catalog index's, or the files)."""
    pairs: dict[tuple[str, str, str], dict[str, dict[str, Path]]] = {}
    for path in paths:
        located = _locate(path)
        if located is None or path.suffix not in (".npy", ".wav", ".mp4"):
            continue
        split, kind, role, session, name = located
        kind = {"audio": "audio", "video-face-crop": "video"}.get(kind, kind)
        if (kind in FEATURE_FILES and path.suffix == ".npy") or (kind in ("audio", "video") and path.suffix != ".npy"):
            pairs.setdefault((split, session, name), {}).setdefault(role, {})[kind] = path
    entries, problems = [], []
    for (split, session, name), roles in sorted(pairs.items()):
        clip = f"{split}/{session}/{name}"
        if not any(kind in FEATURE_FILES for files in roles.values() for kind in files):
            continue  # only audio/video: not a REACT feature clip (or another dataset's wav)
        missing = [r for r in ROLES if not any(k in FEATURE_FILES for k in roles.get(r, {}))]
        if missing:
            problems.append(f"{clip}: no {missing[0]} facial-attributes/coefficients: unpaired, skipped")
            continue
        entry_problems: list[str] = []
        frames: dict[str, dict[str, int]] = {}
        for role in ROLES:
            frames[role] = {}
            for kind, (width, _slices) in FEATURE_FILES.items():
                npy = roles[role].get(kind)
                if npy is None:
                    entry_problems.append(f"{clip}: {role} {kind} .npy missing: its groups left out")
                    continue
                rows, problem = _npy_rows(npy, width, facts)
                if problem:
                    entry_problems.append(f"{role}/{problem}: left out")
                    continue
                frames[role][kind] = rows
            for kind in ("audio",):
                if kind not in roles[role]:
                    entry_problems.append(f"{clip}: {role} audio .wav missing: no audio")
        usable = [set(frames[r]) for r in ROLES]
        if not all(usable):
            problems.extend(entry_problems + [f"{clip}: a participant has no usable features: skipped"])
            continue
        kinds = usable[0] & usable[1]
        groups = [g for kind in FEATURE_FILES if kind in kinds for g in FEATURE_FILES[kind][1]]
        counts = [n for r in ROLES for n in frames[r].values()]
        if len(set(counts)) > 1:
            entry_problems.append(
                f"{clip}: frame counts differ ({', '.join(map(str, counts))}): the first {min(counts)} are used"
            )
        info = InteractionInfo(clip, DATASET, list(ROLES), min(counts), FPS, groups, entry_problems)
        entries.append(ReactEntry(info, roles, frames))
    return entries, problems


def group_key(parts: list[str]) -> str | None:
    """The clip a file at path `parts` may belong to (None: not a REACT feature, audio or video file)."""
    if len(parts) < 5 or parts[-3] not in ROLES or not parts[-2].startswith("session"):
        return None
    stem, _, ext = parts[-1].rpartition(".")
    return f"{DATASET}:{parts[-5]}/{parts[-2]}/{stem}" if ext in ("npy", "wav", "mp4") else None


def entry_to_json(entry: ReactEntry, prefix: str) -> dict:
    files = {
        role: {kind: str(path)[len(prefix) :] for kind, path in kinds.items()} for role, kinds in entry.files.items()
    }
    return {"files": files, "frames": entry.frames}


def entry_from_json(info: InteractionInfo, data: dict, prefix: str) -> ReactEntry:
    files = {
        str(role): {str(kind): Path(prefix + rel) for kind, rel in kinds.items()}
        for role, kinds in data["files"].items()
    }
    frames = {str(role): {str(kind): int(n) for kind, n in kinds.items()} for role, kinds in data["frames"].items()}
    return ReactEntry(info, files, frames)


def _load_features(path: Path, width: int, n: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # truncated after its header, or unreadable
        raise DatasetError(f"{path.name}: not a readable .npy ({exc})") from None
    if array.ndim != 2 or array.shape[1] != width:
        raise DatasetError(f"{path.name}: has shape {array.shape}, expected (T, {width})")
    return array[:n].astype(np.float32)


def load_track(entry: ReactEntry, role: str) -> ParticipantTrack:
    n = entry.info.n_frames
    files = entry.files[role]
    channels, valid, problems = {}, {}, []
    for kind, (width, slices) in FEATURE_FILES.items():
        if kind not in entry.frames[role] or not all(g in entry.info.groups for g in slices):
            continue
        array = _load_features(files[kind], width, n)
        finite, usable = np.isfinite(array).all(axis=1), usable_rows(array)
        where = f"{files[kind].name} ({role} {kind})"
        if not finite.all():
            problems.append(f"{where}: {int((~finite).sum())} frame(s) with NaN/inf: bridged")
        if (finite & ~usable).any():
            problems.append(
                f"{where}: {int((finite & ~usable).sum())} frame(s) with values beyond +/-{VALUE_LIMIT:,.0f}: bridged"
            )
        if not usable.any():
            problems.append(f"{where}: no valid frame: neutral values")
        for group, columns in slices.items():
            channels[group] = bridge(array[:, columns], usable, REACT_SPEC[group].kind)
            valid[group] = usable.copy()
    split, session, name = entry.info.id.split("/")
    file_id = f"{split}/{role}/{session}/{name}"
    wav = FileRef(files["audio"]) if "audio" in files else None  # missing: said by the index
    if wav is not None:
        has_audio, wav_problems = audio_problems(wav, file_id, n / FPS)
        problems += [f"{role}/{line}" for line in wav_problems]
        wav = wav if has_audio else None
    return ParticipantTrack(
        file_id=file_id,
        participant=role,
        fps=FPS,
        n_frames=n,
        channels=channels,
        valid=valid,
        audio_path=wav.path if wav else None,
        audio_loader=media.lazy_audio(wav.open, f"{role}/{wav.name}") if wav else None,
        problems=problems,
    )


def load_entry(entry: ReactEntry) -> Interaction:
    speaker, listener = load_track(entry, "speaker"), load_track(entry, "listener")
    problems = list(entry.info.problems) + speaker.problems + listener.problems
    return Interaction(entry.info.id, DATASET, REACT_SPEC, speaker, listener, problems)
