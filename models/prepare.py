"""`dyadic prepare DIR --out SHARDS`: a data folder -> training shards (shards.py), as Ray tasks.

1. The interactions of one format are split (split_ids: the same rule as training from a folder)
   and planned into shards of about `shard_frames` frames each; the plan is the manifest.
2. The rotation references (layout.py) are fitted on a bounded sample of training interactions,
   at most REFERENCE_INTERACTIONS spread over the sorted ids (all of them for small data, which then
   gives what training from the folder gives).
3. Each shard is one task: load its interactions, compute the log-mel features, encode, cut into
   chunks, write the tar, then the running sums of its frames beside it.
4. When every shard is done, the training shards' sums give the normalisation statistics.

Resumable: a shard whose tar and sums are both there is skipped; a second run with the same data
and options finishes what the first left. One interaction that does not load is listed in its
shard's sums and the summary; the job goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dyadic.datasets import DatasetError, load_interaction, scan
from dyadic.datasets.specs import SPECS

from .data import clip_arrays, split_ids
from .features import N_MELS
from .layout import ChannelLayout
from .shards import (
    FORMAT,
    channel_sums,
    chunks_of,
    is_shard_folder,
    merge_sums,
    read_manifest,
    stats_from_sums,
    write_manifest,
    write_shard,
)

REFERENCE_INTERACTIONS = 32
REFERENCE_FRAMES = 4000  # at most this many frames of each sampled interaction (evenly strided)


@dataclass
class PrepareOptions:
    data: str
    out: str
    format: str | None = None
    val_fraction: float = 0.2
    chunk_frames: int = 600  # 20 s at 30 fps: a training window (128) fits many times
    shard_frames: int = 60_000  # about 33 min of interaction, ~100 MB for Seamless
    ray: str | None = None  # a cluster's HOST:PORT; None: a local Ray
    workers: int | None = None  # CPUs of the local Ray (default: all)
    progress: bool = True


def plan_shards(ids_frames: list[tuple[str, int]], split: str, shard_frames: int) -> list[dict]:
    """Consecutive interactions (sorted ids) filled into shards of at least `shard_frames` frames."""
    shards: list[dict] = []
    current: list[str] = []
    frames = 0
    for clip_id, n in ids_frames:
        current.append(clip_id)
        frames += n
        if frames >= shard_frames:
            shards.append({"name": f"{split}-{len(shards):06d}.tar", "split": split, "interactions": current})
            current, frames = [], 0
    if current:
        shards.append({"name": f"{split}-{len(shards):06d}.tar", "split": split, "interactions": current})
    return shards


def _plan(opts: PrepareOptions) -> tuple[dict, list[str]]:
    """A fresh manifest (no references, no statistics yet) and the scan's problems."""
    catalog = scan(opts.data, progress=opts.progress)
    entries = [e for e in catalog.entries if opts.format is None or e.info.dataset == opts.format]
    if not entries:
        what = f"{opts.format} " if opts.format else ""
        raise DatasetError(f"{opts.data}: no {what}interactions to prepare")
    dataset = entries[0].info.dataset
    entries = [e for e in entries if e.info.dataset == dataset]
    frames = {e.info.id: e.info.n_frames for e in entries}
    train_ids, val_ids = split_ids(list(frames), opts.val_fraction)
    shards = plan_shards([(i, frames[i]) for i in train_ids], "train", opts.shard_frames)
    shards += plan_shards([(i, frames[i]) for i in val_ids], "validation", opts.shard_frames)
    manifest = {
        "format": FORMAT,
        "layout": "webdataset tars of .npy arrays (see shards.py)",
        "source": str(Path(opts.data).resolve()),
        "dataset": dataset,
        "fps": float(np.median([e.info.fps for e in entries])),
        "options": {k: getattr(opts, k) for k in ("val_fraction", "chunk_frames", "shard_frames")},
        "split": {"train": train_ids, "validation": val_ids},
        "shards": shards,
        "channel_layout": None,
        "stats": None,
        "complete": False,
    }
    return manifest, list(catalog.problems)


def _same_plan(old: dict, new: dict) -> bool:
    keys = ("source", "dataset", "options", "split", "shards")
    return all(old.get(k) == new.get(k) for k in keys)


# -- the tasks (run in Ray workers: module-level, arguments plain data) --------------------------
def reference_rows(root: str, clip_id: str, layout: dict) -> tuple[np.ndarray, np.ndarray]:
    """Both participants' rows (dataset units) and validity of one interaction, strided to at most
    REFERENCE_FRAMES frames each."""
    lay = ChannelLayout.from_dict(layout)
    it = load_interaction(root, clip_id)
    rows, valid = [], []
    for track in (it.listener, it.speaker):
        v, ok = lay.flatten(track, it.n_frames)
        step = max(1, len(v) // REFERENCE_FRAMES)
        rows.append(v[::step])
        valid.append(ok[::step])
    return np.concatenate(rows), np.concatenate(valid)


def prepare_shard(root: str, out: str, shard: dict, layout: dict, chunk_frames: int) -> dict:
    """Write one shard and its sums; returns the sums file's content."""
    lay = ChannelLayout.from_dict(layout)
    gm = lay.group_matrix()
    chunks, failed, problems = [], {}, 0
    sums: dict[str, list] = {"audio": [], "speaker": [], "listener": []}
    frames = 0
    for clip_id in shard["interactions"]:
        try:
            it = load_interaction(root, clip_id)
            clip = clip_arrays(it, lay)
        except Exception as exc:  # one broken interaction: listed, and the shard goes on
            failed[clip_id] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            continue
        problems += len(it.problems)
        clip.speaker, clip.listener = lay.encode(clip.speaker), lay.encode(clip.listener)
        chunks += chunks_of(clip, chunk_frames)
        frames += clip.n_frames
        sums["audio"].append(channel_sums(clip.audio))
        sums["speaker"].append(channel_sums(clip.speaker, clip.speaker_valid.astype(np.float32) @ gm > 0.5))
        sums["listener"].append(channel_sums(clip.listener, clip.listener_valid.astype(np.float32) @ gm > 0.5))
    path = Path(out) / shard["name"]
    write_shard(path, chunks)
    result = {
        "name": shard["name"],
        "frames": frames,
        "chunks": len(chunks),
        "bytes": path.stat().st_size,
        "interactions": len(shard["interactions"]) - len(failed),
        "failed": failed,
        "problems": problems,
        "sums": {k: merge_sums(v) if v else None for k, v in sums.items()},
    }
    side = path.with_suffix(".json")
    tmp = side.with_suffix(".json.part")
    tmp.write_text(json.dumps(result))
    tmp.replace(side)
    return result


def shard_done(out: Path, shard: dict) -> dict | None:
    """The sums of a finished shard, or None (missing, half written or unreadable: redo it)."""
    tar, side = out / shard["name"], (out / shard["name"]).with_suffix(".json")
    if not (tar.is_file() and side.is_file()):
        return None
    try:
        result = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("bytes") == tar.stat().st_size else None


# -- the job -------------------------------------------------------------------------------------
def _fit_references(ray, manifest: dict, root: str, progress: bool, log) -> None:
    from dyadic.datasets.fanout import fan_out

    layout = ChannelLayout.for_spec(SPECS[manifest["dataset"]])
    train = manifest["split"]["train"] or manifest["split"]["validation"]
    step = max(1, len(train) // REFERENCE_INTERACTIONS)
    sample = train[::step][:REFERENCE_INTERACTIONS]
    report = fan_out(
        ray,
        reference_rows,
        [(i, (root, i, layout.to_dict())) for i in sample],
        desc="rotation references",
        unit="interaction",
        progress=progress,
    )
    if not report.done:
        raise DatasetError(f"{root}: none of {len(sample)} sampled interactions loaded: " + "; ".join(report.summary()))
    rows = [report.done[i] for i in sample if i in report.done]
    layout.fit_reference_rotations(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))
    manifest["channel_layout"] = layout.to_dict()
    manifest["reference_sample"] = {"interactions": sorted(report.done), "frames_each_at_most": REFERENCE_FRAMES}
    log(f"rotation references fitted on {len(rows)} training interaction(s)")


def _finish(manifest: dict, results: dict[str, dict]) -> None:
    train = [results[s["name"]] for s in manifest["shards"] if s["split"] == "train"]
    stats = {}
    for part, dims in (("audio", N_MELS), ("speaker", None), ("listener", None)):
        sums = [r["sums"][part] for r in train if r["sums"][part] is not None]
        if not sums:
            raise DatasetError("no training interaction loaded: no statistics to compute")
        mean, std = stats_from_sums(merge_sums(sums))
        assert dims is None or len(mean) == dims
        stats[f"{part}_mean"], stats[f"{part}_std"] = mean.tolist(), std.tolist()
    manifest["stats"] = stats
    totals = {
        split: {
            "shards": sum(1 for s in manifest["shards"] if s["split"] == split),
            "frames": sum(results[s["name"]]["frames"] for s in manifest["shards"] if s["split"] == split),
            "chunks": sum(results[s["name"]]["chunks"] for s in manifest["shards"] if s["split"] == split),
        }
        for split in ("train", "validation")
    }
    manifest["totals"] = totals
    manifest["failed"] = {k: v for r in results.values() for k, v in r["failed"].items()}
    manifest["complete"] = True


def prepare(opts: PrepareOptions, log=print) -> dict:
    """Run (or resume) the job; returns the manifest (complete unless a shard failed)."""
    from dyadic.datasets.fanout import check_reachable, fan_out, ray_cluster

    if opts.ray is not None:
        check_reachable(opts.ray)  # before the scan: an unreachable cluster is an error at once
    out = Path(opts.out)
    if out.exists() and any(out.iterdir()) and not is_shard_folder(out):
        raise DatasetError(f"--out {out}: not empty and not a shard folder; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest, problems = _plan(opts)
    for line in problems:
        log(f"data: {line}")
    if is_shard_folder(out):
        old = read_manifest(out)
        if not _same_plan(old, manifest):
            raise DatasetError(
                f"--out {out}: holds shards of other data or options; give a new folder to prepare this one"
            )
        manifest = old
    root = manifest["source"]
    with ray_cluster(opts.ray, opts.workers) as ray:
        if manifest["channel_layout"] is None:
            _fit_references(ray, manifest, root, opts.progress, log)
            write_manifest(out, manifest)
        results = {s["name"]: r for s in manifest["shards"] if (r := shard_done(out, s)) is not None}
        todo = [s for s in manifest["shards"] if s["name"] not in results]
        if results:
            log(f"resuming: {len(results)} of {len(manifest['shards'])} shard(s) already done")
        report = fan_out(
            ray,
            prepare_shard,
            [(s["name"], (root, str(out.resolve()), s, manifest["channel_layout"], opts.chunk_frames)) for s in todo],
            desc="shards",
            unit="shard",
            progress=opts.progress,
        )
    results.update(report.done)
    for line in report.summary("shard"):
        log(line)
    for r in report.done.values():
        for clip_id, error in r["failed"].items():
            log(f"skipped {clip_id}: {error}")
    if len(results) == len(manifest["shards"]):
        _finish(manifest, results)
    write_manifest(out, manifest)
    manifest["job"] = {"seconds": report.seconds, "nodes": dict(report.nodes), "failed": report.failed}
    return manifest
