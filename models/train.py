"""Training of the reaction model: `dyadic train`.

Windows of WINDOW frames are drawn from the training clips; the model predicts each listener frame
from the speaker's audio and movement up to that frame and the listener's previous frame, given a
latent drawn from q(z | listener window) (a conditional VAE; the KL term pulls q to N(0, I), which is
what the runtime samples from). Two things keep training close to live use:
- the listener's past is fed with heavy noise (teacher forcing on a noised past, config.py
  DEFAULT_PAST_NOISE listener stds), so the model does not lean on a past more exact than its own
  outputs will be and reacts to the speaker instead;
- whole speaker movement groups are dropped at random, so it reacts to audio alone (a microphone
  session has no speaker movement) exactly as the validity mask tells it.
Checkpoints: OUT/last.pt after every epoch (what --resume continues), OUT/best.pt at the lowest
validation loss, OUT/history.json with the losses.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dyadic.datasets.specs import SPECS

from .config import DEFAULT_PAST_NOISE, ReactionConfig
from .data import ClipArrays, channel_stats, load_clips, split_clips
from .layout import ChannelLayout
from .reaction import ReactionModel
from .shards import is_shard_folder, read_manifest
from .windows import Batch, ShardWindows, WindowSampler, shard_validation_batches

VAL_BATCHES = 4  # fixed validation batches, comparable across epochs

FREE_BITS = 0.1


@dataclass
class TrainOptions:
    data: str
    out: str = "runs/default"
    format: str | None = None
    epochs: int = 40
    batch: int = 32
    window: int = 128
    lr: float = 2e-3
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    val_fraction: float = 0.2
    hidden: int = 256
    latent: int = 16
    kl_weight: float = 0.02
    past_noise: float = DEFAULT_PAST_NOISE  # std of the noise on the listener's past, normalised units
    drop_movement: float = 0.3  # probability of hiding a speaker movement group for a window
    ccc_weight: float = 0.0  # weight of (1 - concordance) per channel and window, see window_ccc
    progress: bool = True
    buffer_chunks: int = 64  # training from shards: chunks in the shuffle buffer (windows.ShardWindows)
    workers: int = 1  # data-parallel processes (Ray Train, distributed.py) when more than one
    ray: str | None = None  # a Ray cluster's HOST:PORT for the workers; None: a local Ray


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: this torch build or machine has no CUDA device")
    return torch.device(name)


def prepare(
    train: list[ClipArrays], fps: float, opts: TrainOptions, layout: ChannelLayout
) -> tuple[ReactionConfig, list[ClipArrays]]:
    """Fit the rotation references (into `layout`) and the normalisation on the training clips;
    returns the config and the clips encoded in model units (encoded once, used for training)."""
    layout.fit_reference_rotations(
        np.concatenate([c.listener for c in train] + [c.speaker for c in train]),
        np.concatenate([c.listener_valid for c in train] + [c.speaker_valid for c in train]),
    )
    encoded = encode_clips(train, layout)
    gm = layout.group_matrix()
    a_mean, a_std = channel_stats([c.audio for c in encoded])
    s_mean, s_std = channel_stats([c.speaker for c in encoded], [c.speaker_valid for c in encoded], gm)
    l_mean, l_std = channel_stats([c.listener for c in encoded], [c.listener_valid for c in encoded], gm)
    stats = {
        "audio_mean": a_mean,
        "audio_std": a_std,
        "speaker_mean": s_mean,
        "speaker_std": s_std,
        "listener_mean": l_mean,
        "listener_std": l_std,
    }
    config = ReactionConfig(
        layout=layout.to_dict(),
        fps=fps,
        hidden=opts.hidden,
        latent=opts.latent,
        stats={k: v.tolist() for k, v in stats.items()},
    )
    return config, encoded


def encode_clips(clips: list[ClipArrays], layout: ChannelLayout) -> list[ClipArrays]:
    return [
        ClipArrays(
            c.id, c.fps, c.audio, layout.encode(c.speaker), c.speaker_valid, layout.encode(c.listener), c.listener_valid
        )
        for c in clips
    ]


def window_ccc(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean concordance correlation of (B, T, C) predictions and targets over time, per window and
    channel, over the (window, channel) pairs whose target varies in the window.

    Squared error alone pulls an uncertain prediction towards the mean, so the reactions come out
    flatter than the listener's (REACT's FRCorr is a CCC and penalises exactly that); this term asks
    for the listener's variance and timing within each window.
    """
    n = mask.sum(1)
    weights = mask / n.clamp(min=1.0)[:, None]
    mp, mt = (pred * weights).sum(1), (target * weights).sum(1)
    dp, dt = pred - mp[:, None], target - mt[:, None]
    vp, vt, cov = (dp**2 * weights).sum(1), (dt**2 * weights).sum(1), (dp * dt * weights).sum(1)
    ccc = 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-6)
    varies = (n > 1) & (vt > 1e-4)
    return ccc[varies].mean() if bool(varies.any()) else ccc.new_zeros(())


def loss_terms(model: ReactionModel, batch, past_noise: float, sample: bool = True, with_ccc: bool = False):
    """(squared error, velocity error, KL, 1 - window concordance or 0 when not `with_ccc`) of the
    teacher-forced window, with z drawn from the posterior q(z | listener window) (its mean when
    not `sample`)."""
    audio, spk, spk_valid, prev, target, mask = batch
    mu, logvar = model.encode_latent(target)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
    if past_noise > 0:
        prev = prev + torch.randn_like(prev) * past_noise * model.listener_std
    pred = model.forward_sequence(audio, spk, spk_valid, prev, z)
    recon, velocity, discord = _error_terms(model, pred, target, mask, with_ccc)
    kl_per_dim = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).mean(0)
    # free bits: each latent dimension may carry FREE_BITS nats at no cost, which keeps the
    # decoder from ignoring z (posterior collapse) and so keeps the samples diverse
    kl = torch.clamp(kl_per_dim, min=FREE_BITS).sum()
    return recon, velocity, kl, discord


def _error_terms(model: ReactionModel, pred, target, mask, with_ccc: bool):
    """(squared error, velocity error, 1 - window concordance or 0) of pred against target."""
    err = (pred - target) / model.listener_std
    recon = (err**2 * mask).sum() / mask.sum().clamp(min=1.0)
    vel_mask = mask[:, 1:] * mask[:, :-1]
    velocity = ((err[:, 1:] - err[:, :-1]) ** 2 * vel_mask).sum() / vel_mask.sum().clamp(min=1.0)
    discord = (
        1.0 - window_ccc(pred / model.listener_std, target / model.listener_std, mask)
        if with_ccc
        else recon.new_zeros(())
    )
    return recon, velocity, discord


class Objective(torch.nn.Module):
    """The training loss as a module, so that data-parallel training wraps it in DDP (whose
    gradient synchronisation runs through a module's forward) while the model stays plain."""

    def __init__(self, model: ReactionModel, past_noise: float, with_ccc: bool):
        super().__init__()
        self.model, self.past_noise, self.with_ccc = model, past_noise, with_ccc

    def forward(self, *batch: torch.Tensor):
        return loss_terms(self.model, list(batch), self.past_noise, with_ccc=self.with_ccc)


def _validation_losses(model: ReactionModel, batch, ccc_weight: float) -> tuple[float, float]:
    """The training objective without the KL on a validation batch, twice:
    - live, which selects best.pt: the model as it runs live, frame by frame on its own outputs
      from the window's first real frame, with z at the prior's mean. Teacher-forced on the real
      past (before 2026-12-04) it rated checkpoints on a past they never see live, and picked ones
      that lost to the mirror row on held-out data;
    - teacher-forced on the real past with z at the posterior's mean: steadier from run to run,
      and its gap to the live one shows how much the model leans on an exact past."""
    audio, spk, spk_valid, prev, target, mask = batch
    latent = torch.zeros(audio.shape[0], model.config.latent, device=audio.device)
    pred = model.run(audio, spk, spk_valid, latent, first_previous=prev[:, 0])
    recon, velocity, discord = _error_terms(model, pred, target, mask, ccc_weight > 0)
    tf_recon, tf_velocity, _, tf_discord = loss_terms(model, batch, 0.0, sample=False, with_ccc=ccc_weight > 0)
    return float(recon + velocity + ccc_weight * discord), float(tf_recon + tf_velocity + ccc_weight * tf_discord)


def _checkpoint(
    path: Path, model, optimizer, epoch: int, history: list, best: float, opts: TrainOptions, dataset: str
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "history": history,
            "best_val": best,
            "options": asdict(opts),
            "dataset": dataset,
        },
        tmp,
    )
    tmp.replace(path)


@dataclass
class TrainingData:
    """What one training process draws from: endless training batches and fixed validation ones."""

    dataset: str
    config: ReactionConfig
    batches: Iterator[Batch]
    val_batches: list[Batch]
    steps: int  # batches per epoch


def _steps(train_frames: int, opts: TrainOptions) -> int:
    """Batches per epoch: every frame in about two windows, whatever the number of workers."""
    return max(20, int(train_frames / opts.window * 2 / opts.batch))


def folder_data(opts: TrainOptions, state: dict | None, log) -> TrainingData:
    """Every interaction of a data folder decoded into memory (small data)."""
    rng = np.random.default_rng(opts.seed)
    dataset, clips, problems = load_clips(opts.data, opts.format, progress=opts.progress)
    for line in problems:
        log(f"data: {line}")
    train_clips, val_clips = split_clips(clips, opts.val_fraction)
    train_frames = sum(c.n_frames for c in train_clips)
    log(f"{dataset}: {len(train_clips)} training clips ({train_frames} frames), {len(val_clips)} validation clips")
    if state is not None:
        config = ReactionConfig.from_dict(state["config"])
        encoded_train = encode_clips(train_clips, config.channel_layout)
    else:
        layout = ChannelLayout.for_spec(SPECS[dataset])
        config, encoded_train = prepare(train_clips, float(np.median([c.fps for c in clips])), opts, layout)
    layout = config.channel_layout
    gm = layout.group_matrix()
    listener_mean = np.asarray(config.stats["listener_mean"], np.float32)
    sampler = WindowSampler(encoded_train, opts.window, listener_mean, gm, rng)
    val_sampler = WindowSampler(
        encode_clips(val_clips, layout) if val_clips else encoded_train,
        opts.window,
        listener_mean,
        gm,
        np.random.default_rng(opts.seed + 1),
    )
    val_batches = [val_sampler.batch(opts.batch) for _ in range(VAL_BATCHES)]
    return TrainingData(
        dataset, config, sampler.batches(opts.batch, opts.drop_movement), val_batches, _steps(train_frames, opts)
    )


def shard_data(opts: TrainOptions, state: dict | None, log, rank: int = 0, world: int = 1) -> TrainingData:
    """Windows streamed from `prepare`'s shards; with `world` workers, worker `rank` reads every
    world-th training shard (all of them, from its own random order, when there are fewer shards)
    and draws batch / world windows a step."""
    manifest = read_manifest(opts.data)
    if not manifest.get("complete"):
        raise ValueError(f"{opts.data}: the shards are not complete; run `dyadic prepare` again to finish them")
    if opts.format and opts.format != manifest["dataset"]:
        raise ValueError(f"--format {opts.format}: {opts.data} holds {manifest['dataset']} shards")
    folder = Path(opts.data)
    train = [folder / s["name"] for s in manifest["shards"] if s["split"] == "train"]
    val = [folder / s["name"] for s in manifest["shards"] if s["split"] == "validation"] or train
    config = ReactionConfig(
        layout=manifest["channel_layout"],
        fps=float(manifest["fps"]),
        hidden=opts.hidden,
        latent=opts.latent,
        stats=manifest["stats"],
    )
    if state is not None:
        saved = ReactionConfig.from_dict(state["config"])
        if saved.layout != config.layout or saved.stats != config.stats:
            raise ValueError(f"--resume: {opts.out}/last.pt was trained on other shards than {opts.data}")
        config = saved
    totals = manifest["totals"]
    log(
        f"{manifest['dataset']}: {totals['train']['shards']} training shard(s) ({totals['train']['frames']} frames), "
        f"{totals['validation']['shards']} validation shard(s), streamed through {opts.buffer_chunks} chunks"
    )
    mine = train[rank::world] if len(train) >= world else train
    gm = config.channel_layout.group_matrix()
    listener_mean = np.asarray(config.stats["listener_mean"], np.float32)
    rng = np.random.default_rng(opts.seed + 7919 * rank)
    stream = ShardWindows(mine, opts.window, listener_mean, gm, rng, opts.buffer_chunks)
    val_batches = shard_validation_batches(
        val, opts.window, opts.batch, VAL_BATCHES, listener_mean, gm, np.random.default_rng(opts.seed + 1)
    )
    per_worker = max(1, opts.batch // world)
    return TrainingData(
        manifest["dataset"],
        config,
        stream.batches(per_worker, opts.drop_movement),
        val_batches,
        _steps(int(totals["train"]["frames"]), opts),
    )


def load_resume_state(opts: TrainOptions) -> dict | None:
    if not opts.resume:
        return None
    path = Path(opts.out) / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    state: dict = torch.load(path, map_location="cpu", weights_only=False)
    return state


def fit(
    opts: TrainOptions,
    data: TrainingData,
    state: dict | None,
    log,
    device: torch.device,
    wrap=None,
    is_main: bool = True,
    report=None,
) -> Path:
    """The epochs: `wrap(objective)` makes it data-parallel (DDP), `is_main` validates and writes
    the checkpoints, `report(metrics)` runs at the end of every epoch (Ray Train's report)."""
    out = Path(opts.out)
    model = ReactionModel(data.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=1e-4)
    history, best, first_epoch = [], math.inf, 1
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, first_epoch = state["history"], state["best_val"], state["epoch"] + 1
        log(f"resumed from {out / 'last.pt'} at epoch {state['epoch']}")
    model.to(device)
    objective = Objective(model, opts.past_noise, opts.ccc_weight > 0)
    step_objective = wrap(objective) if wrap is not None else objective

    from tqdm import tqdm

    for epoch in range(first_epoch, opts.epochs + 1):
        model.train()
        kl_w = opts.kl_weight * min(1.0, epoch / max(1, opts.epochs // 4))  # KL warm-up
        t0, totals = time.perf_counter(), np.zeros(4)
        bar = tqdm(
            range(data.steps),
            desc=f"epoch {epoch}/{opts.epochs}",
            unit="batch",
            leave=False,
            disable=not (opts.progress and is_main),
        )
        for _ in bar:
            batch = [t.to(device) for t in next(data.batches)]
            recon, velocity, kl, discord = step_objective(*batch)
            loss = recon + velocity + kl_w * kl + opts.ccc_weight * discord
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            totals += [recon.item(), velocity.item(), kl.item(), discord.item()]
            bar.set_postfix(loss=f"{recon.item():.3f}")
        totals /= data.steps
        val = val_tf = math.nan
        if is_main:
            model.eval()
            with torch.no_grad():
                batches = ([t.to(device) for t in b] for b in data.val_batches)
                losses = [_validation_losses(model, b, opts.ccc_weight) for b in batches]
            val, val_tf = (float(v) for v in np.mean(losses, axis=0))
            history.append(
                {
                    "epoch": epoch,
                    "train_recon": totals[0],
                    "train_velocity": totals[1],
                    "train_kl": totals[2],
                    "train_ccc_loss": totals[3],
                    "val_loss": val,
                    "val_teacher_forced": val_tf,
                    "seconds": time.perf_counter() - t0,
                }
            )
            improved = val < best
            best = min(best, val)
            ccc = f", 1-ccc {totals[3]:.3f}" if opts.ccc_weight > 0 else ""
            log(
                f"epoch {epoch:3d}  train {totals[0]:.4f} (+vel {totals[1]:.4f}, kl {totals[2]:.2f}{ccc})  "
                f"val {val:.4f} (teacher-forced {val_tf:.4f}){'  *' if improved else ''}  "
                f"{time.perf_counter() - t0:.1f}s"
            )
            model.to("cpu")
            _checkpoint(out / "last.pt", model, optimizer, epoch, history, best, opts, data.dataset)
            if improved:
                _checkpoint(out / "best.pt", model, optimizer, epoch, history, best, opts, data.dataset)
            model.to(device)
            (out / "history.json").write_text(json.dumps(history, indent=1))
        if report is not None:
            report({"epoch": epoch, "train_recon": float(totals[0]), "val_loss": val, "val_teacher_forced": val_tf})
    return out / "best.pt"


def train(opts: TrainOptions, log=print) -> Path:
    """Train in this process from a data folder (in memory) or from shards (streamed); with
    `workers` > 1, distributed.train_with_ray is the entry point."""
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    state = load_resume_state(opts)
    data = (shard_data if is_shard_folder(opts.data) else folder_data)(opts, state, log)
    log(f"device {device}")
    return fit(opts, data, state, log, device)


def load_checkpoint(path: str | Path) -> ReactionModel:
    """A trained ReactionModel (eval mode, CPU) from a checkpoint written by train()."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"{path}: not a dyadic training checkpoint (no 'config'/'model' entries)")
    model = ReactionModel(ReactionConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval()
