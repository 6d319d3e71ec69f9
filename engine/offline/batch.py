"""`dyadic replay` of one interaction, and `replay --all`: every interaction of a folder, one Ray task
each (datasets/fanout.py), into FOLDER/<interaction id>.mp4.

A clip's MP4 is written under a temporary name and renamed when complete, so an MP4 that exists is
whole: a second `replay --all` skips it (resume). A task on a GPU node renders on the GPU Ray gave
it (renderer/egl_devices.py maps CUDA_VISIBLE_DEVICES to the EGL device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from dyadic.datasets import load_interaction, scan
from dyadic.datasets.fanout import FanOutReport, fan_out, ray_cluster

from .replay import ReplayResult, replay


@dataclass
class ReplaySettings:
    """How each clip is rendered (the options of `dyadic replay`)."""

    seconds: float | None = None
    size: tuple[int, int] = (640, 480)
    gl: str = "auto"
    msaa: bool = False
    audio: str = "speaker"
    model: str | None = None  # a model file; None: the shipped one for the data's format; "none": the recording
    seed: int = 0
    ghost: bool = False
    captions: bool = True
    body_model: str | None = None


_runtimes: dict[str, object] = {}  # per process (a Ray worker renders many clips): each model loaded once


def _runtime(path: str):
    from dyadic.models.runtime import load_runtime

    if path not in _runtimes:
        _runtimes[path] = load_runtime(path)
    return _runtimes[path]


def render_clip(
    root: str | Path,
    clip_id: str | None,
    out: str | Path,
    settings: ReplaySettings,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Render one interaction to `out` (through `out`.part.mp4, renamed when complete);
    `total(frames)` is told how many frames will be rendered, `progress(n)` as they are."""
    from dyadic.renderer.avatar import Avatar
    from dyadic.renderer.offscreen import DyadRenderer

    interaction = load_interaction(root, clip_id)
    if log is not None:
        for line in interaction.problems + interaction.speaker.problems + interaction.listener.problems:
            log(f"warning: {line}")
    runtime = None
    if settings.model != "none":
        from dyadic.models.shipped import default_model_path

        model_path = str(settings.model or default_model_path(interaction.dataset))
        runtime = _runtime(model_path)
        if log is not None:
            log(
                f"listener: reaction model {model_path} ({runtime.provider}), seed {settings.seed}; "
                f"{'real listener as ghost' if settings.ghost else 'no ghost'}"
            )
    if total is not None:
        n = interaction.n_frames
        total(n if settings.seconds is None else min(n, max(1, round(settings.seconds * interaction.fps))))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.stem + ".part.mp4")
    avatar = Avatar(settings.body_model)
    ghost = runtime is not None and settings.ghost
    with DyadRenderer(avatar, size=settings.size, backend=settings.gl, msaa=settings.msaa, ghost=ghost) as renderer:
        result = replay(
            interaction,
            part,
            avatar=avatar,
            renderer=renderer,
            seconds=settings.seconds,
            audio=settings.audio,
            model=runtime,
            seed=settings.seed,
            progress=progress,
            captions=settings.captions,
        )
    part.replace(out)
    result.path = out
    return result


def replay_task(root: str, clip_id: str, out: str, settings: dict) -> dict:
    """One clip in a Ray task: renders on the GPU Ray assigned, if any."""
    from dyadic.renderer.egl_devices import use_assigned_gpu

    egl_device = use_assigned_gpu()
    result = render_clip(root, clip_id, out, ReplaySettings(**settings))
    return {
        "frames": result.frames,
        "seconds": result.seconds,
        "wall_seconds": result.wall_seconds,
        "renderer": f"{result.backend}: {result.gl_renderer}",
        "egl_device": egl_device,
    }


def clip_path(folder: Path, clip_id: str) -> Path:
    """FOLDER/<id>.mp4; REACT ids hold their split and session folders (train/session0/...)."""
    return folder / f"{clip_id}.mp4"


@dataclass
class BatchResult:
    report: FanOutReport
    skipped: list[str]  # already rendered (resume)

    @property
    def clip_seconds(self) -> float:
        return sum(r["seconds"] for r in self.report.done.values())


def replay_all(
    root: str | Path,
    folder: str | Path,
    settings: ReplaySettings,
    *,
    ray: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> BatchResult:
    root, folder = Path(root).resolve(), Path(folder).resolve()
    ids = [e.info.id for e in scan(root).entries]
    todo = [i for i in ids if not clip_path(folder, i).is_file()]
    skipped = [i for i in ids if i not in todo]
    folder.mkdir(parents=True, exist_ok=True)
    with ray_cluster(ray, workers) as cluster:
        gpus = 1 if cluster.cluster_resources().get("GPU", 0) >= 1 else 0
        report = fan_out(
            cluster,
            replay_task,
            [(i, (str(root), i, str(clip_path(folder, i)), asdict(settings))) for i in todo],
            desc="replay --all",
            unit="clip",
            gpus=gpus,
            progress=progress,
        )
    return BatchResult(report, skipped)
