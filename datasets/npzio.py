"""NPZ helpers: list keys/shapes from the headers only, and write NPZs with reproducible bytes.

The released Seamless NPZs are DEFLATE-compressed (the dataset's own files show it), so they cannot be
memory-mapped; reading only each member's .npy header (a few hundred bytes of inflated stream) is
what keeps `find_interactions` cheap on large files.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

ArrayHeader = tuple[tuple[int, ...], np.dtype]


def read_npy_header(stream: IO[bytes]) -> ArrayHeader:
    """(shape, dtype) of the .npy file `stream` is positioned at, reading its header only."""
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(stream)
    else:
        # (3, 0): utf-8 header; the private reader is absent from numpy's stubs
        shape, _, dtype = npy_format._read_array_header(stream, version)  # type: ignore[attr-defined]
    return tuple(int(n) for n in shape), np.dtype(dtype)


def read_npz_headers(source: str | Path | BinaryIO) -> dict[str, ArrayHeader]:
    """Key -> (shape, dtype) for every array of an NPZ, without decoding the arrays.

    Raises zipfile.BadZipFile / ValueError / EOFError on truncated or corrupt files.
    """
    headers = {}
    with zipfile.ZipFile(source) as archive:
        for name in archive.namelist():
            if not name.endswith(".npy"):
                continue
            with archive.open(name) as member:
                headers[name[:-4]] = read_npy_header(member)
    return headers


def npz_bytes(arrays: dict[str, np.ndarray], level: int = 6) -> bytes:
    """The bytes `np.savez_compressed` would write (a DEFLATE zip of `{key}.npy`), with fixed
    member timestamps so that the same arrays always give the same file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member = io.BytesIO()
            npy_format.write_array(member, np.asanyarray(arrays[key]), allow_pickle=False)
            archive.writestr(info, member.getvalue(), zipfile.ZIP_DEFLATED, level)
    return buffer.getvalue()
