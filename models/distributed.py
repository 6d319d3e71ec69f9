"""`dyadic train --data SHARDS --workers N`: data-parallel training through Ray Train.

Ray Train's TorchTrainer starts N workers (CPU processes here; one per GPU where Ray has GPUs) and
joins them in a torch.distributed process group (gloo on CPU, NCCL on GPUs). Each worker streams its
own share of the training shards (train.shard_data) with batch / N windows a step, and the training
objective is wrapped in DistributedDataParallel, which averages the gradients: a step sees the same
number of windows as one worker with the whole batch. Worker 0 validates and writes the checkpoints
(OUT/last.pt, best.pt, history.json) exactly as single-process training does, so `--resume`,
`export` and `eval` take them alike. On a cluster OUT must be a folder every node can write (a
shared file system): Ray's own checkpoint storage is not used.

Worker 0 writes its epoch lines to OUT/train.log; the command prints them as they come (Ray's own
log forwarding would bury them under its actors' messages).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

LOG = "train.log"


def _worker(config: dict) -> None:
    """One Ray Train worker: the same loop as single-process training, data-parallel."""
    import ray.train
    import ray.train.torch
    import torch

    from .train import TrainOptions, fit, load_resume_state, shard_data

    opts = TrainOptions(**config["options"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(opts.seed)  # the same initial weights on every worker (DDP also broadcasts them)
    log = _file_log(Path(opts.out) / LOG) if rank == 0 else (lambda line: None)
    state = load_resume_state(opts)
    data = shard_data(opts, state, log, rank, world)
    device = ray.train.torch.get_device()

    def wrap(objective: torch.nn.Module) -> torch.nn.Module:
        wrapped: torch.nn.Module = ray.train.torch.prepare_model(objective, move_to_device=False)
        return wrapped

    fit(opts, data, state, log, device, wrap=wrap, is_main=rank == 0, report=ray.train.report)


def _file_log(path: Path):
    path.write_text("")

    def log(line: str) -> None:
        with path.open("a") as f:
            f.write(line + "\n")

    return log


def _follow(path: Path, log, stop: threading.Event) -> None:
    """Pass the lines appended to `path` to `log` until `stop` (then the rest)."""
    offset = 0
    while True:
        done = stop.wait(0.5)
        if path.is_file():
            with path.open() as f:
                f.seek(offset if path.stat().st_size >= offset else 0)
                for line in f.readlines():
                    log(line.rstrip("\n"))
                offset = f.tell()
        if done:
            return


def train_with_ray(opts, log) -> Path:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from dyadic.datasets.fanout import ray_cluster

    from .shards import is_shard_folder

    if not is_shard_folder(opts.data):
        raise ValueError(f"--workers {opts.workers}: data-parallel training reads shards; run `dyadic prepare` first")
    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = dataclasses.asdict(opts) | {"data": str(Path(opts.data).resolve()), "out": str(out), "workers": 1}
    (out / LOG).unlink(missing_ok=True)
    with ray_cluster(opts.ray, opts.workers if opts.ray is None else None) as ray:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = gpus >= opts.workers and opts.device != "cpu"
        log(f"Ray Train: {opts.workers} workers ({'one GPU' if use_gpu else 'one CPU'} each)")
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"options": options},
            scaling_config=ScalingConfig(num_workers=opts.workers, use_gpu=use_gpu),
            run_config=RunConfig(name="dyadic-train", storage_path=str(out / "ray")),
        )
        stop = threading.Event()
        follower = threading.Thread(target=_follow, args=(out / LOG, log, stop), daemon=True)
        follower.start()
        try:
            trainer.fit()
        except Exception as exc:  # ray.train's TrainingFailedError wraps the worker's exception
            raise RuntimeError(f"data-parallel training failed: {str(exc).splitlines()[0]}") from exc
        finally:
            stop.set()
            follower.join()
    return out / "best.pt"
