"""`dyadic eval`: the REACT metrics of a model and of the reference rows, on held-out interactions.

Rows (each with K samples per speaker, so FRDiv is comparable):
- model: K listeners from K latent seeds (runtime.generate, the engine's own step loop);
- ground truth: the real listener, K times (FRDiv 0 by construction);
- mirror: the speaker's own behaviour delayed by MIRROR_DELAY seconds, K times;
- random: per channel, Bernoulli(0.5) for binary parts, uniform over the listener's observed range
  otherwise, K independent draws;
- mean listener: the model's starting frame (the training data's mean listener), held.
The appropriate-reaction set of a speaker is its real listener (the sample data and Seamless have
no neighbour matrix). Channels: `datasets.specs.METRIC_GROUPS` (REACT: the 25 facial attributes;
Seamless: 24 FAU + valence/arousal + 8 emotion scores). A clip whose listener lacks those groups
(Seamless files without movement features) is left out and listed.

Before scoring, the model's causality is checked: the speaker's audio and movement after frame k
are replaced by noise, and the listener up to frame k must stay bit-identical.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dyadic.datasets import DatasetError, load_interaction, scan
from dyadic.datasets.specs import METRIC_GROUPS

from . import metrics
from .data import ClipArrays, clip_arrays
from .layout import ChannelLayout
from .runtime import DEFAULT_RESAMPLE_SECONDS, generate, load_runtime

MIRROR_DELAY = 0.5  # seconds: a typical mimicry lag
ROWS = ("model", "ground truth", "mirror", "random", "mean listener")
METRIC_NAMES = ("FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "FRSyn")
HIGHER_IS_BETTER = {"FRCorr": True, "FRDist": False, "FRDiv": True, "FRVar": True, "FRDvs": True, "FRSyn": False}


def metric_columns(layout: ChannelLayout) -> tuple[np.ndarray, list[metrics.Part], list[str]]:
    """(column indices into the layout vector, parts over the metric vector, channel names)."""
    slices = layout.slices
    columns, parts, names, start = [], [], [], 0
    for groups, weight, binary in METRIC_GROUPS[layout.spec_name]:
        cols = np.concatenate([np.arange(slices[g].start, slices[g].stop) for g in groups])
        columns.append(cols)
        names += [f"{g}[{i}]" for g in groups for i in range(slices[g].stop - slices[g].start)]
        parts.append((slice(start, start + len(cols)), weight, binary))
        start += len(cols)
    return np.concatenate(columns), parts, names


def check_causality(runtime, clip: ClipArrays, frame: int, seed: int = 0) -> dict:
    """Outputs up to `frame` with the real speaker vs with noise after it: must be bit-identical."""
    rng = np.random.default_rng(seed)
    audio, speaker = clip.audio.copy(), clip.speaker.copy()
    audio[frame + 1 :] = rng.normal(audio.mean(), audio.std() + 1.0, audio[frame + 1 :].shape)
    speaker[frame + 1 :] += rng.normal(0, 0.5, speaker[frame + 1 :].shape).astype(np.float32)
    end = min(len(audio), frame + 20)
    a = generate(runtime, clip.audio[:end], clip.speaker[:end], clip.speaker_valid[:end], [seed], decode=False)
    b = generate(runtime, audio[:end], speaker[:end], clip.speaker_valid[:end], [seed], decode=False)
    before = float(np.abs(a[:, : frame + 1] - b[:, : frame + 1]).max())
    after = float(np.abs(a[:, frame + 1 :] - b[:, frame + 1 :]).max()) if end > frame + 1 else 0.0
    return {"frame": frame, "max_diff_up_to_frame": before, "max_diff_after_frame": after, "causal": before == 0.0}


def _reference_rows(
    clip_lst: np.ndarray,
    clip_spk: np.ndarray,
    fps: float,
    k: int,
    parts,
    mean_frame: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    t = len(clip_lst)
    delay = int(round(MIRROR_DELAY * fps))
    mirror = np.concatenate([np.repeat(clip_spk[:1], min(delay, t), 0), clip_spk[: max(0, t - delay)]])
    random = rng.uniform(lo, hi, size=(k, t, len(lo))).astype(np.float32)
    for sl, _, binary in parts:
        if binary:
            random[..., sl] = rng.integers(0, 2, size=random[..., sl].shape)
    return {
        "ground truth": np.repeat(clip_lst[None], k, 0),
        "mirror": np.repeat(mirror[None], k, 0),
        "random": random,
        "mean listener": np.repeat(np.repeat(mean_frame[None], t, 0)[None], k, 0),
    }


def has_metric_channels(clip: ClipArrays, layout: ChannelLayout) -> bool:
    """Whether the clip's listener has every metric group somewhere (else it cannot be scored)."""
    group_index = {n: i for i, n in enumerate(layout.names)}
    needed = [group_index[g] for groups, _, _ in METRIC_GROUPS[layout.spec_name] for g in groups]
    return bool(clip.listener_valid[:, needed].any(0).all())


_RUNTIMES: dict[tuple[str, str], object] = {}  # per Ray worker process: a model loaded once, not per clip


def _runtime(model: str, device: str):
    key = (str(model), device)
    if key not in _RUNTIMES:
        _RUNTIMES[key] = load_runtime(model, device)
    return _RUNTIMES[key]


def clip_rows(
    data: str, clip_id: str, model: str, device: str, seeds: list[int], resample_seconds: float | None
) -> dict:
    """One interaction's K model samples and its real listener and speaker, metric columns only
    (a Ray task); {"skipped": True} when its listener lacks the metric channels."""
    runtime = _runtime(model, device)
    layout = runtime.layout
    cols, _, _ = metric_columns(layout)
    clip = clip_arrays(load_interaction(data, clip_id), layout)
    if not has_metric_channels(clip, layout):
        return {"id": clip.id, "skipped": True}
    pred = generate(runtime, clip.audio, clip.speaker, clip.speaker_valid, seeds, resample_seconds, clip.fps)
    return {
        "id": clip.id,
        "skipped": False,
        "fps": clip.fps,
        "model": pred[..., cols],
        "listener": clip.listener[:, cols],
        "speaker": clip.speaker[:, cols],
    }


def evaluate(
    data: str | Path,
    model: str | Path,
    samples: int = 10,
    out: str | Path = "report",
    seed: int = 0,
    resample_seconds: float | None = DEFAULT_RESAMPLE_SECONDS,
    device: str = "auto",
    progress: bool = True,
    log=print,
    ray: str | None = None,
    workers: int | None = None,
) -> dict:
    """Generation runs as one Ray task per interaction (datasets/fanout.py): a local Ray with
    `workers` CPUs, or the cluster at `ray`; the metrics are computed here."""
    from dyadic.datasets.fanout import check_reachable, fan_out, ray_cluster

    if ray is not None:
        check_reachable(ray)  # at once, not after the model and the data are loaded
    runtime = load_runtime(model, device)
    layout = runtime.layout
    spec = layout.spec_name
    catalog = scan(data)
    ids = [e.info.id for e in catalog.entries if e.info.dataset == spec]
    if not ids:
        raise DatasetError(f"{data}: no {spec} interactions to evaluate on")
    problems = list(catalog.problems)
    cols, parts, names = metric_columns(layout)
    first = None
    for clip_id in ids:  # the causality check needs one clip that has the metric channels
        try:
            candidate = clip_arrays(load_interaction(data, clip_id), layout)
        except DatasetError:
            continue
        if has_metric_channels(candidate, layout):
            first = candidate
            break
    if first is None:
        channels = ", ".join(sorted({n.split("[")[0] for n in names}))
        raise ValueError(f"{data}: no {spec} interaction has the metric channels ({channels})")
    causality = check_causality(runtime, first, frame=min(first.n_frames - 2, int(5 * first.fps)), seed=seed)
    if not causality["causal"]:
        log(
            f"WARNING: the model is not causal: outputs up to frame {causality['frame']} changed by "
            f"{causality['max_diff_up_to_frame']:.3g} when later speaker inputs changed"
        )
    items = [
        (
            clip_id,
            (
                str(data),
                clip_id,
                str(model),
                device,
                [seed * 100_003 + i * 1_000 + s for s in range(samples)],
                resample_seconds,
            ),
        )
        for i, clip_id in enumerate(ids)
    ]
    t0 = time.perf_counter()
    with ray_cluster(ray, workers) as cluster:
        job = fan_out(cluster, clip_rows, items, desc="generating", unit="clip", progress=progress)
    gen_seconds = time.perf_counter() - t0
    for clip_id, error in sorted(job.failed.items()):
        problems.append(f"{clip_id}: {error}")
    results = [job.done[i] for i in ids if i in job.done]
    used = [r for r in results if not r["skipped"]]
    skipped = [r["id"] for r in results if r["skipped"]]
    log(
        f"evaluated {Path(model).name} ({runtime.provider}) on {len(used)} {spec} interaction(s), "
        f"{samples} samples each"
        + (f"; left out (no metric channels): {', '.join(skipped)}" if skipped else "")
        + (f"; failed: {', '.join(sorted(job.failed))}" if job.failed else "")
    )
    if not used:
        raise ValueError(f"{data}: no {spec} interaction could be evaluated")

    rng = np.random.default_rng(seed)
    all_lst = np.concatenate([r["listener"] for r in used])
    lo, hi = all_lst.min(0), all_lst.max(0)
    mean_frame = layout.decode(runtime.listener_start[None])[0][cols]
    rows: dict[str, list[np.ndarray]] = {r: [] for r in ROWS}
    gts, speakers = [], []
    for r in used:
        rows["model"].append(r["model"])
        for name, arr in _reference_rows(
            r["listener"], r["speaker"], r["fps"], samples, parts, mean_frame, lo, hi, rng
        ).items():
            rows[name].append(arr)
        gts.append([r["listener"]])
        speakers.append(r["speaker"])
    fps = float(np.median([r["fps"] for r in used]))
    results_by_row = {}
    from tqdm import tqdm

    for name in tqdm(ROWS, desc="scoring", unit="row", leave=False, disable=not progress):
        results_by_row[name] = metrics.all_metrics(rows[name], gts, speakers, parts, fps)
    report = {
        "model": str(model),
        "provider": runtime.provider,
        "dataset": spec,
        "data": str(data),
        "samples": samples,
        "seed": seed,
        "resample_seconds": resample_seconds,
        "interactions": [r["id"] for r in used],
        "left_out": skipped,
        "failed": job.failed,
        "frames": int(sum(len(r["listener"]) for r in used)),
        "metric_channels": names,
        "causality": causality,
        "generation_seconds": round(gen_seconds, 2),
        "rows": results_by_row,
        "problems": problems,
    }
    write_report(report, out)
    return report


BASELINES = ("mirror", "random", "mean listener")  # what a useful model must beat; the ground truth is the ceiling


def beaten_by(report: dict) -> dict[str, list[str]]:
    """Baseline row -> the metrics on which it scores better than the model."""
    model = report["rows"]["model"]
    out = {}
    for row in BASELINES:
        vals = report["rows"].get(row)
        if vals is None:
            continue
        better = [
            m
            for m in METRIC_NAMES
            if (vals[m] > model[m] if HIGHER_IS_BETTER[m] else vals[m] < model[m])
            and np.isfinite(vals[m])
            and np.isfinite(model[m])
        ]
        if better:
            out[row] = better
    return out


def markdown_table(report: dict) -> str:
    """The metrics table; a last column names, for each baseline, where it beats the model."""
    beaten = beaten_by(report)
    head = "| row | " + " | ".join(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRIC_NAMES)
    lines = [head + " | better than the model on |", "|" + "---|" * (len(METRIC_NAMES) + 2)]
    for row, vals in report["rows"].items():
        mark = ", ".join(beaten.get(row, [])) or ("-" if row in BASELINES else "")
        lines.append(f"| {row} | " + " | ".join(f"{vals[m]:.4g}" for m in METRIC_NAMES) + f" | {mark} |")
    return "\n".join(lines)


def write_report(report: dict, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    c = report["causality"]
    md = [
        f"# REACT metrics: {Path(report['model']).name} on {report['dataset']} data",
        "",
        f"{len(report['interactions'])} held-out interaction(s), {report['frames']} frames, "
        f"{report['samples']} samples per speaker; provider {report['provider']}.",
        "",
        markdown_table(report),
        "",
        f"FRCorr and FRDist are summed over the {report['samples']} samples (REACT convention); FRSyn is the "
        "NaN-safe TLCC over every sample.",
        f"Causality check: outputs up to frame {c['frame']} {'unchanged' if c['causal'] else 'CHANGED'} "
        f"(max diff {c['max_diff_up_to_frame']:.3g}) when later speaker inputs changed.",
    ]
    if report["left_out"]:
        md.append(f"Left out (no metric channels): {', '.join(report['left_out'])}.")
    (out / "metrics.md").write_text("\n".join(md) + "\n")
