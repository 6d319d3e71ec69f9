"""Dataset interactions -> the per-frame arrays the reaction model trains and is evaluated on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dyadic.datasets import DatasetError, Interaction, scan

from .features import log_mel_frames
from .layout import ChannelLayout


@dataclass
class ClipArrays:
    """One interaction, frame-aligned. Values in dataset units until `encode`d."""

    id: str
    fps: float
    audio: np.ndarray  # (T, A) speaker log-mel
    speaker: np.ndarray  # (T, C)
    speaker_valid: np.ndarray  # (T, G) bool
    listener: np.ndarray  # (T, C)
    listener_valid: np.ndarray  # (T, G) bool

    @property
    def n_frames(self) -> int:
        return len(self.audio)


def clip_arrays(it: Interaction, layout: ChannelLayout) -> ClipArrays:
    n = it.n_frames
    spk, spk_valid = layout.flatten(it.speaker, n)
    lst, lst_valid = layout.flatten(it.listener, n)
    audio = log_mel_frames(it.speaker.audio(), it.fps, n)
    return ClipArrays(it.id, float(it.fps), audio, spk, spk_valid, lst, lst_valid)


def load_clips(
    root: str | Path,
    format: str | None = None,  # noqa: A002 - public keyword argument, as in generate_sample
    progress: bool = False,
) -> tuple[str, list[ClipArrays], list[str]]:
    """(spec name, clips, problems) of every loadable interaction of one format under `root`.

    With `format` None the first format found is used (Seamless before REACT); clips of the other
    format are left out (one model serves one spec)."""
    catalog = scan(root)
    entries = [e for e in catalog.entries if format is None or e.info.dataset == format]
    if not entries:
        what = f"{format} " if format else ""
        raise DatasetError(f"{root}: no {what}interactions to train or evaluate on")
    dataset = entries[0].info.dataset
    entries = [e for e in entries if e.info.dataset == dataset]
    problems = list(catalog.problems)
    clips, layout = [], None
    iterator = entries
    if progress:
        from tqdm import tqdm

        iterator = tqdm(entries, desc="loading clips", unit="clip", leave=False)
    for entry in iterator:
        try:
            it = entry.load()
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        problems += it.problems
        if layout is None:
            layout = ChannelLayout.for_spec(it.spec)
        clips.append(clip_arrays(it, layout))
    return dataset, clips, problems


def split_ids(ids: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic split by id: the last `val_fraction` of the sorted ids (at least one when
    there are two or more) are held out. Training from a folder and `prepare` both use it."""
    ids = sorted(ids)
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, len(ids) - 1)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def split_clips(clips: list[ClipArrays], val_fraction: float) -> tuple[list[ClipArrays], list[ClipArrays]]:
    """`clips` split as split_ids splits their ids."""
    _, val_ids = split_ids([c.id for c in clips], val_fraction)
    held = set(val_ids)
    clips = sorted(clips, key=lambda c: c.id)
    return [c for c in clips if c.id not in held], [c for c in clips if c.id in held]


def channel_stats(
    arrays: list[np.ndarray], valid: list[np.ndarray] | None = None, group_matrix: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over valid frames (per-group validity expanded by `group_matrix`;
    no `valid`: every frame); a channel that never varies gets std 1."""
    rows = arrays
    if valid is not None:
        assert group_matrix is not None, "`valid` needs `group_matrix`"
        rows = [np.where(v.astype(np.float32) @ group_matrix > 0.5, a, np.nan) for a, v in zip(arrays, valid)]
    x = np.concatenate(rows).astype(np.float64)
    with warnings.catch_warnings():  # all-NaN columns (a group never valid) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(x, axis=0))
        std = np.nan_to_num(np.nanstd(x, axis=0))
    std = np.where(std < 1e-4, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)
