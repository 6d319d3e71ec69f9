"""Where one dataset file lives: a plain file, or a member of a (webdataset) tar.

Tar members are read in place through a bounded window on the tar file, so listing a 1 GB shard
reads only headers, and the NPZ/MP4 readers can seek inside a member as in a file.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class _Window(io.RawIOBase):
    """Read-only, seekable view of `size` bytes at `offset` of a file."""

    def __init__(self, path: Path, offset: int, size: int):
        self._file = open(path, "rb")
        self._offset, self._size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        if count == 0:
            return 0
        self._file.seek(self._offset + self._pos)
        data = self._file.read(count)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class FileRef:
    """A file on disk (`member` is None) or one member of the tar at `path`."""

    path: Path
    member: str | None = None
    offset: int = 0
    size: int = 0

    @property
    def name(self) -> str:
        """Short name used in problem lines: `x.npz` or `0003.tar:x.npz`."""
        return f"{self.path.name}:{self.member}" if self.member else self.path.name

    @property
    def nbytes(self) -> int:
        return self.size if self.member else self.path.stat().st_size

    def open(self) -> BinaryIO:
        if self.member is None:
            return open(self.path, "rb")
        return io.BufferedReader(_Window(self.path, self.offset, self.size))

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()


def tar_members(path: Path) -> dict[str, FileRef]:
    """Member basename -> FileRef for the regular files of a tar. When a name occurs twice (the
    Seamless tars got rewritten `.json` members appended later), the LAST occurrence wins."""
    members: dict[str, FileRef] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if info.isfile():
                name = info.name.rsplit("/", 1)[-1]
                members[name] = FileRef(path, info.name, info.offset_data, info.size)
    return members


DATASET_SUFFIXES = (".npz", ".tar", ".npy", ".wav", ".mp4", ".json")


def dataset_files(root: Path, suffixes: tuple[str, ...] = DATASET_SUFFIXES) -> tuple[list[Path], list[str]]:
    """The regular files under `root` whose names end in `suffixes`, sorted, and one problem line
    for each folder that could not be listed and each such name that is not a regular file."""
    found, problems = dataset_file_stats(root, suffixes)
    return [path for path, _ in found], problems


def dataset_file_stats(
    root: Path, suffixes: tuple[str, ...] = DATASET_SUFFIXES
) -> tuple[list[tuple[Path, os.stat_result]], list[str]]:
    """dataset_files() with each file's stat (its size and mtime tell the catalog index whether
    to read it again).

    os.walk rather than Path.rglob: rglob skips an unreadable folder without a word, and a FIFO
    named like a dataset file would block the first read of it forever.
    """
    if not root.is_dir():
        if root.is_file():
            return [(root, root.stat())], []
        return [], [f"{root.name}: not a regular file: skipped"]
    found: list[tuple[Path, os.stat_result]] = []
    problems: list[str] = []

    def unreadable(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, root) if exc.filename else str(root)
        problems.append(f"{where}: unreadable folder ({exc.strerror or exc}): skipped")

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders.sort()
        for name in names:
            if name.endswith(suffixes):
                path = Path(folder, name)
                try:
                    info = path.stat()
                except OSError:  # a dangling link
                    info = None
                if info is not None and stat.S_ISREG(info.st_mode):
                    found.append((path, info))
                else:
                    problems.append(f"{name}: not a regular file: skipped")
    return sorted(found, key=lambda item: item[0]), problems
