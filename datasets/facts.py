"""What a scan learns of each dataset file from its header, and the object the readers ask for it.

`seamless.index` and `react.index` never open a file themselves: they ask a `FileFacts` for a tar's
member list, an NPZ's summary, a JSON's talk time, an MP4's frame rate or an .npy's shape. This
class reads the file each time it is asked; the catalog index (catalog.py) answers from what it
stored and reads only files it has not seen, or whose size or mtime changed. Every fact has a plain
JSON form (`to_json`/`from_json` below), which is what the index stores.

`read_all(path, beside_npz)` answers every question a reader may ask of one file at once (a tar:
of every member), so that the index can read a changed tar before it knows its groups.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import FileRef, tar_members

if TYPE_CHECKING:
    from .seamless_headers import NpzSummary

NpyHeader = tuple[tuple[int, ...], str] | str  # (shape, dtype.str), or why it could not be read
Rate = tuple[float, list[str]]  # frames per second, and its problem lines (companions.read_fps)


class FileFacts:
    """Each answer read from the file itself."""

    def tar_members(self, path: Path) -> dict[str, FileRef]:
        return tar_members(path)

    def npz_summary(self, ref: FileRef) -> NpzSummary:
        from .seamless_headers import summarize_npz

        return summarize_npz(ref)

    def talk_time(self, ref: FileRef | None, file_id: str) -> float:
        """Seconds of voice activity in a participant's JSON (0 when it has none)."""
        from .seamless_headers import parse_metadata

        vad, _, _ = parse_metadata(ref, file_id)
        return sum(max(0.0, s.end - s.start) for s in vad)

    def video_fps(self, ref: FileRef | None, file_id: str) -> Rate:
        from .companions import read_fps

        return read_fps(ref, file_id)

    def npy_header(self, path: Path) -> NpyHeader:
        from .npzio import read_npy_header

        try:
            with open(path, "rb") as f:
                shape, dtype = read_npy_header(f)
        except (ValueError, EOFError, OSError) as exc:
            return f"not a readable .npy ({exc})"
        return tuple(int(n) for n in shape), dtype.str


READ = FileFacts()


# --- the JSON forms the index stores ------------------------------------------------------------


def summary_to_json(summary: NpzSummary) -> dict[str, Any]:
    return {
        "n": summary.n_frames,
        "keys": {k: list(v) for k, v in summary.keys.items()},
        "problems": summary.problems,
        "skip": summary.skip,
    }


def summary_from_json(data: dict[str, Any]) -> NpzSummary:
    from .seamless_headers import NpzSummary

    keys = {str(k): tuple(int(n) for n in v) for k, v in data["keys"].items()}
    return NpzSummary(int(data["n"]), keys, [str(p) for p in data["problems"]], bool(data["skip"]))


def members_to_json(members: dict[str, FileRef]) -> list[list[Any]]:
    return [[name, ref.member, ref.offset, ref.size] for name, ref in members.items()]


def members_from_json(path: Path, data: list[list[Any]]) -> dict[str, FileRef]:
    return {str(name): FileRef(path, str(member), int(offset), int(size)) for name, member, offset, size in data}


def ref_to_json(ref: FileRef, prefix: str) -> list[Any]:
    """A file (relative to the folder, which `prefix` ends) or tar member, as the index keeps it."""
    return [str(ref.path)[len(prefix) :], ref.member, ref.offset, ref.size]


def ref_from_json(data: list[Any], prefix: str) -> FileRef:
    path, member, offset, size = data
    return FileRef(Path(prefix + str(path)), None if member is None else str(member), int(offset), int(size))


def rate_from_json(data: list[Any]) -> Rate:
    return float(data[0]), [str(p) for p in data[1]]


def npy_from_json(data: Any) -> NpyHeader:
    return data if isinstance(data, str) else (tuple(int(n) for n in data[0]), str(data[1]))


# --- everything about one file, for the index's parallel reads ----------------------------------


def has_facts(suffix: str, beside_npz: bool) -> bool:
    """Whether the readers ask anything of a file with this suffix: always of an NPZ, a tar or an
    .npy; of a JSON or an MP4 only as a Seamless companion (an NPZ of the same stem beside it)."""
    return suffix in (".npz", ".tar", ".npy") or (beside_npz and suffix in (".json", ".mp4"))


def _ref_facts(ref: FileRef, stem: str, suffix: str, beside_npz: bool) -> dict[str, Any]:
    if suffix == ".npz":
        return {"npz": summary_to_json(READ.npz_summary(ref))}
    if suffix == ".json" and beside_npz:
        return {"talk": READ.talk_time(ref, stem)}
    if suffix == ".mp4" and beside_npz:
        fps, problems = READ.video_fps(ref, stem)
        return {"fps": [fps, problems]}
    return {}


def read_all(path: Path, beside_npz: bool) -> dict[str, Any]:
    """Every fact the readers may ask of the file at `path`, in JSON form; a tar's include its
    members' (`{"members": [...], "member_facts": {name: {...}}}`)."""
    if path.suffix == ".tar":
        try:
            members = READ.tar_members(path)
        except Exception as exc:  # tarfile and OS errors: the reader reports an unreadable tar
            return {"tar_error": str(exc)}
        inner = {}
        for name, ref in members.items():
            stem, suffix = os.path.splitext(name)
            got = _ref_facts(ref, stem, suffix, f"{stem}.npz" in members)
            if got:
                inner[name] = got
        return {"members": members_to_json(members), "member_facts": inner}
    if path.suffix == ".npy":
        header = READ.npy_header(path)
        return {"npy": header if isinstance(header, str) else [list(header[0]), header[1]]}
    return _ref_facts(FileRef(path), path.stem, path.suffix, beside_npz)
