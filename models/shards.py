"""Training shards: the model's per-frame inputs and targets as WebDataset tars, and their manifest.

    SHARDS/manifest.json             the channel layout (with its rotation references), the
                                     normalisation statistics, the split, which interaction is in
                                     which shard, and which shards are complete
    SHARDS/train-000000.tar ...      samples, one per chunk of an interaction:
                                       KEY.audio.npy           (T, 40) float32 log-mel
                                       KEY.speaker.npy         (T, C) float32, model units
                                       KEY.speaker_valid.npy   (T, G) bool
                                       KEY.listener.npy        (T, C) float32, model units
                                       KEY.listener_valid.npy  (T, G) bool
                                       KEY.json                {"id", "fps", "start", "context"}
    SHARDS/train-000000.json         the shard's running sums (for the statistics) and failures,
                                     written after its tar: both present = the shard is done

Why WebDataset tars of .npy: a shard is read front to back in one stream (local disk, NFS or an
object store alike), the `webdataset` library, torchdata and Ray Data read it as it is, `tar tf`
lists it, and numpy's own array format keeps dtypes and shapes exact without a schema. Parquet
would store (T, C) arrays as nested lists of one row per frame, and add pyarrow to the runtime.
The tars are written and read with the standard library's tarfile (sequential, no index needed).

A chunk's first row is context when "context" is 1: the listener frame before the chunk, which a
window starting at the chunk's first real frame needs as its past.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import ClipArrays

MANIFEST = "manifest.json"
FORMAT = "dyadic-shards-v1"
ARRAYS = ("audio", "speaker", "speaker_valid", "listener", "listener_valid")


@dataclass
class Chunk:
    """A piece of one interaction, in model units; rows before `first` are context only."""

    clip: ClipArrays
    start: int  # the interaction frame of row `first`
    first: int  # 1 when row 0 is the previous listener frame, else 0

    @property
    def frames(self) -> int:
        return self.clip.n_frames - self.first


def chunks_of(clip: ClipArrays, frames: int) -> list[Chunk]:
    """`clip` cut into chunks of `frames` (a last piece shorter than half of that joins the one
    before), each carrying the frame before it as context."""
    n = clip.n_frames
    starts = list(range(0, n, frames))
    if len(starts) > 1 and n - starts[-1] < frames // 2:
        starts.pop()
    out = []
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        lo = max(0, s - 1)
        sl = slice(lo, end)
        piece = ClipArrays(
            clip.id,
            clip.fps,
            clip.audio[sl],
            clip.speaker[sl],
            clip.speaker_valid[sl],
            clip.listener[sl],
            clip.listener_valid[sl],
        )
        out.append(Chunk(piece, s, s - lo))
    return out


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, chunks: list[Chunk]) -> None:
    """Write `chunks` to `path` through a temporary name: a shard is either whole or absent."""
    tmp = path.with_name(path.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for n, chunk in enumerate(chunks):
            key = f"{path.stem}_{n:06d}"  # no dots: WebDataset splits a member name at its first dot
            meta = {"id": chunk.clip.id, "fps": chunk.clip.fps, "start": chunk.start, "context": chunk.first}
            _add(tar, f"{key}.json", json.dumps(meta).encode())
            for name in ARRAYS:
                _add(tar, f"{key}.{name}.npy", _npy(getattr(chunk.clip, name)))
    tmp.replace(path)


def read_shard(path: str | Path) -> Iterator[Chunk]:
    """The chunks of one shard, in order, streamed (one chunk in memory at a time)."""
    path = Path(path)
    current: str | None = None
    parts: dict[str, object] = {}

    def finish() -> Chunk:
        missing = [n for n in (*ARRAYS, "json") if n not in parts]
        if missing:
            raise ValueError(f"{path}: sample {current} lacks {', '.join(missing)}")
        meta = parts["json"]
        assert isinstance(meta, dict)
        arrays = [parts[n] for n in ARRAYS]
        clip = ClipArrays(str(meta["id"]), float(meta["fps"]), *arrays)  # type: ignore[arg-type]
        return Chunk(clip, int(meta["start"]), int(meta["context"]))

    with tarfile.open(path, "r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if key != current:
                if current is not None:
                    yield finish()
                current, parts = key, {}
            data = tar.extractfile(member)
            assert data is not None
            raw = data.read()
            if ext == "json":
                parts["json"] = json.loads(raw)
            elif ext.endswith(".npy"):
                parts[ext[: -len(".npy")]] = np.load(io.BytesIO(raw), allow_pickle=False)
    if current is not None:
        yield finish()


# -- running sums: the normalisation statistics of many shards, merged exactly ------------------
def channel_sums(values: np.ndarray, valid: np.ndarray | None = None) -> dict[str, list[float]]:
    """Per-channel count, sum and sum of squares (float64) over the rows where `valid` (per channel)."""
    w = np.ones(values.shape, np.float64) if valid is None else valid.astype(np.float64)
    x = np.where(w > 0, values.astype(np.float64), 0.0)  # an invalid frame's NaN must not reach the sums
    return {"n": w.sum(0).tolist(), "sum": (x * w).sum(0).tolist(), "sq": (x * x * w).sum(0).tolist()}


def merge_sums(parts: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    keys = ("n", "sum", "sq")
    return {k: np.sum([np.asarray(p[k], np.float64) for p in parts], axis=0).tolist() for k in keys}


def stats_from_sums(sums: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as data.channel_stats computes them: a channel never seen or never varying
    gets mean 0 / std 1."""
    n = np.asarray(sums["n"], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.asarray(sums["sum"]) / n, 0.0)
        var = np.where(n > 0, np.asarray(sums["sq"]) / n - mean**2, 0.0)
    std = np.sqrt(np.maximum(var, 0.0))
    std = np.where(std < 1e-4, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


# -- the manifest --------------------------------------------------------------------------------
def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable shard manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def write_manifest(folder: str | Path, manifest: dict) -> None:
    path = Path(folder) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
