"""Training windows: (speaker audio, speaker movement, its validity, the listener's past, the listener
target, the target's mask) batches of WINDOW frames, cut from clips held in memory (WindowSampler:
training from a data folder) or streamed from shards (ShardWindows: `train --data SHARDS`).

ShardWindows keeps memory bounded whatever the data's size: it streams chunks shard after shard
(the shard order reshuffled on every pass) into a buffer of `buffer_chunks` chunks; every batch
takes its windows from random chunks of the buffer, and a chunk leaves the buffer once it has given
about as many windows as WindowSampler draws from the same frames (2 x frames / window).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .data import ClipArrays
from .shards import Chunk, read_shard

Batch = list[torch.Tensor]


def window_at(clip: ClipArrays, start: int, length: int, listener_mean: np.ndarray, gm: np.ndarray):
    """One window's arrays; the listener's past at frame 0 of a clip is the mean listener."""
    sl = slice(start, start + length)
    prev = np.concatenate(
        [
            clip.listener[start - 1 : start] if start > 0 else listener_mean[None],
            clip.listener[start : start + length - 1],
        ]
    )
    return (
        clip.audio[sl],
        clip.speaker[sl],
        clip.speaker_valid[sl].astype(np.float32),
        prev,
        clip.listener[sl],
        clip.listener_valid[sl].astype(np.float32) @ gm,
    )


def drop_groups(items: tuple, rng: np.random.Generator, drop_movement: float) -> tuple:
    """A window with whole speaker movement groups hidden at random (probability `drop_movement`)."""
    if drop_movement <= 0:
        return items
    audio, spk, spk_valid, *rest = items
    return (audio, spk, spk_valid * (rng.random(spk_valid.shape[1]) >= drop_movement), *rest)


def stack(items: list[tuple]) -> Batch:
    """Windows -> one batch of tensors."""
    return [torch.from_numpy(np.stack(x).astype(np.float32)) for x in zip(*items)]


class WindowSampler:
    """Random windows from clips held in memory, clips drawn in proportion to their length."""

    def __init__(
        self,
        clips: list[ClipArrays],
        window: int,
        listener_mean: np.ndarray,
        group_matrix: np.ndarray,
        rng: np.random.Generator,
    ):
        self.clips, self.rng = clips, rng
        self.listener_mean, self.gm = listener_mean, group_matrix
        self.length = min(window, min(c.n_frames for c in clips))
        lengths = np.array([c.n_frames for c in clips], float)
        self.weights = lengths / lengths.sum()

    def batch(self, size: int, drop_movement: float = 0.0) -> Batch:
        items = []
        for i in self.rng.choice(len(self.clips), size=size, p=self.weights):
            clip = self.clips[i]
            start = int(self.rng.integers(0, clip.n_frames - self.length + 1))
            items.append(
                drop_groups(window_at(clip, start, self.length, self.listener_mean, self.gm), self.rng, drop_movement)
            )
        return stack(items)

    def batches(self, size: int, drop_movement: float = 0.0) -> Iterator[Batch]:
        while True:
            yield self.batch(size, drop_movement)


def windows_per_chunk(frames: int, window: int) -> int:
    return max(1, int(round(2 * frames / window)))


class ShardWindows:
    """Random windows streamed from shards through a bounded buffer of chunks."""

    def __init__(
        self,
        shards: Sequence[str | Path],
        window: int,
        listener_mean: np.ndarray,
        group_matrix: np.ndarray,
        rng: np.random.Generator,
        buffer_chunks: int = 64,
    ):
        if not shards:
            raise ValueError("no shards to stream")
        self.shards = [Path(p) for p in shards]
        self.window, self.rng, self.buffer_chunks = window, rng, buffer_chunks
        self.listener_mean, self.gm = listener_mean, group_matrix
        self.skipped = 0  # chunks shorter than a window

    def _chunks(self) -> Iterator[Chunk]:
        """Chunks as long as a window, shard after shard, forever (a new shard order each pass)."""
        while True:
            found = False
            for i in self.rng.permutation(len(self.shards)):
                for chunk in read_shard(self.shards[i]):
                    if chunk.frames < self.window:
                        self.skipped += 1
                        continue
                    found = True
                    yield chunk
            if not found:
                names = ", ".join(map(str, self.shards[:3]))
                raise ValueError(f"no chunk of {names} is as long as a window ({self.window})")

    def batches(self, size: int, drop_movement: float = 0.0) -> Iterator[Batch]:
        source = self._chunks()
        buffer: list[list] = []  # [chunk, windows it may still give]
        while True:
            while len(buffer) < self.buffer_chunks:
                chunk = next(source)
                buffer.append([chunk, windows_per_chunk(chunk.frames, self.window)])
            items = []
            for slot in self.rng.integers(0, len(buffer), size=size):
                entry = buffer[slot]
                chunk = entry[0]
                start = int(self.rng.integers(chunk.first, chunk.clip.n_frames - self.window + 1))
                window = window_at(chunk.clip, start, self.window, self.listener_mean, self.gm)
                items.append(drop_groups(window, self.rng, drop_movement))
                entry[1] -= 1
            buffer = [e for e in buffer if e[1] > 0]
            yield stack(items)


def shard_validation_batches(
    shards: Sequence[str | Path],
    window: int,
    batch: int,
    n_batches: int,
    listener_mean: np.ndarray,
    gm: np.ndarray,
    rng: np.random.Generator,
) -> list[Batch]:
    """A fixed set of windows (comparable across epochs) from the first chunks of `shards`: reads
    only as many chunks as it needs."""
    items: list[tuple] = []
    need = batch * n_batches
    for path in shards:
        for chunk in read_shard(path):
            if chunk.frames < window:
                continue
            for _ in range(windows_per_chunk(chunk.frames, window)):
                start = int(rng.integers(chunk.first, chunk.clip.n_frames - window + 1))
                items.append(window_at(chunk.clip, start, window, listener_mean, gm))
            if len(items) >= need:
                break
        if len(items) >= need:
            break
    if not items:
        raise ValueError(f"no validation chunk is as long as a window ({window})")
    items = [items[i % len(items)] for i in range(need)]
    return [stack(items[i * batch : (i + 1) * batch]) for i in range(n_batches)]
