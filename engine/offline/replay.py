"""Offline replay: one interaction -> an MP4 of speaker and listener side by side, with sound.

Three stages overlap so that both cores work:
skinning (torch, releases the GIL) runs in a worker thread a few frames ahead, the render runs on
the thread that owns the GL context, and encoding (libx264 through PyAV, which releases the GIL)
runs in a second worker. Queues between them are bounded, so memory stays flat for any length.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from dyadic.datasets.interaction import Interaction
from dyadic.renderer.adapters import framing_for
from dyadic.renderer.captions import Captions

from ..contracts import AUDIO_RATE, AvatarPose, Stepper, audio_sample
from ..pipeline.posing import Posing

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer
    from av.video.stream import VideoStream

    from dyadic.renderer.avatar import Avatar
    from dyadic.renderer.offscreen import DyadRenderer

SKIN_CHUNK = 8  # frames skinned per batched smplx call (both avatars): amortises per-call overhead
AUDIO_SOURCES = ("speaker", "listener", "both")


@dataclass
class ReplayResult:
    path: Path
    frames: int
    fps: float
    seconds: float
    wall_seconds: float
    backend: str
    gl_renderer: str

    @property
    def speed(self) -> float:
        """How many times faster than real time the replay was rendered."""
        return self.seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def exact_rate(fps: float) -> Fraction:
    """30.0 -> 30, 29.97002997 -> 30000/1001, 29.98001332 -> 45000/1501."""
    return Fraction(fps).limit_denominator(2000)


def mixed_audio(interaction: Interaction, which: str, n_samples: int) -> np.ndarray:
    """The chosen participant's audio (or both mixed), cut or zero-padded to n_samples."""
    if which not in AUDIO_SOURCES:
        raise ValueError(f"audio must be one of {AUDIO_SOURCES}, not {which!r}")
    tracks = {
        "speaker": [interaction.speaker],
        "listener": [interaction.listener],
        "both": [interaction.speaker, interaction.listener],
    }[which]
    out = np.zeros(n_samples, np.float32)
    for track in tracks:
        a = track.audio()[:n_samples]
        out[: len(a)] += a
    return np.clip(out, -1.0, 1.0)


def caption_texts(interaction: Interaction, model_listener: bool, ghost: bool) -> tuple[str, str]:
    """What the captions under the speaker (left) and the listener (right) say."""

    def who(participant: str, role: str) -> str:  # REACT's participants are named by their role
        return role if participant == role else f"{role} {participant}"

    speaker = who(interaction.speaker.participant, "speaker") + ", recorded"
    if not model_listener:
        return speaker, who(interaction.listener.participant, "listener") + ", recorded"
    return speaker, "listener: the model" + (" (blue: the recorded one)" if ghost else "")


def track_poses(interaction: Interaction, n_frames: int) -> tuple[list[AvatarPose], list[AvatarPose]]:
    posing = Posing(interaction.dataset, interaction.fps, has_model=False)
    return (
        [posing.channels(interaction.speaker.frame(k)) for k in range(n_frames)],
        [posing.channels(interaction.listener.frame(k)) for k in range(n_frames)],
    )


def model_listener_poses(interaction: Interaction, runtime: Stepper, n_frames: int, seed: int = 0) -> list[AvatarPose]:
    """The reaction model's listener for the recorded speaker: the same causal step loop the engine
    runs live (features from the speaker's audio, the speaker's movement masked where invalid)."""
    from dyadic.models.features import log_mel_frames
    from dyadic.models.runtime import generate

    layout = runtime.layout
    if layout.spec_name != interaction.dataset:
        raise ValueError(f"the model was trained on {layout.spec_name} data; {interaction.id} is {interaction.dataset}")
    speaker, valid = layout.flatten(interaction.speaker, n_frames)
    audio = log_mel_frames(interaction.speaker.audio(), interaction.fps, n_frames)
    listener = layout.unflatten(generate(runtime, audio, speaker, valid, [seed], fps=interaction.fps)[0])
    posing = Posing(interaction.dataset, interaction.fps, has_model=True)
    return [posing.channels({name: arr[k] for name, arr in listener.items()}) for k in range(n_frames)]


class _Worker(threading.Thread):
    """A pipeline stage in a thread. On failure it stops the whole pipeline and keeps its
    exception for the main thread to re-raise."""

    def __init__(self, fn: Callable[[], None], name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._fn, self._halt = fn, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc
            self._halt.set()


_DONE = object()  # end-of-stream marker between stages


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    """Blocking put that gives up once the pipeline is stopping."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    """Blocking get that returns _DONE once the pipeline is stopping."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _DONE


def replay(
    interaction: Interaction,
    out_path: str | Path,
    *,
    avatar: Avatar,
    renderer: DyadRenderer,
    seconds: float | None = None,
    audio: str = "speaker",
    model: Stepper | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    captions: bool = True,
) -> ReplayResult:
    """Render `interaction` to `out_path` (H.264 + AAC in MP4) with a ready avatar and renderer.

    With a reaction-model runtime (`model`), the listener is the model's reaction (latent `seed`)
    and the real listener is drawn as the ghost if the renderer has one; without, the real listener.
    `captions`: name each person under them. The renderer must have been created on the calling
    thread (it owns the GL context).
    """
    fps = interaction.fps
    n_frames = interaction.n_frames
    if seconds is not None:
        n_frames = min(n_frames, max(1, int(round(seconds * fps))))
    if n_frames <= 0:
        raise ValueError(f"interaction {interaction.id} has no frames to replay")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.name + ".part")
    t_start = time.perf_counter()

    speaker_poses, listener_poses = track_poses(interaction, n_frames)
    ghost_poses: list[AvatarPose] = []
    if model is not None:
        real = listener_poses
        listener_poses = model_listener_poses(interaction, model, n_frames, seed)
        ghost_poses = real if renderer.has_ghost else []
    sound = mixed_audio(interaction, audio, audio_sample(n_frames, fps))
    stop = threading.Event()
    skinned: queue.Queue[Any] = queue.Queue(maxsize=4)  # chunks of skinned frames, then _DONE
    rendered: queue.Queue[Any] = queue.Queue(maxsize=8)  # RGB frames, then _DONE

    def skin() -> None:
        normals: np.ndarray | list[None] | None
        for k0 in range(0, n_frames, SKIN_CHUNK):
            k1 = min(n_frames, k0 + SKIN_CHUNK)
            verts, normals = avatar.skin_with_normals(speaker_poses[k0:k1] + listener_poses[k0:k1] + ghost_poses[k0:k1])
            if normals is None:  # models skinned by smplx's full lbs(): the renderer computes them
                normals = [None] * len(verts)
            n = k1 - k0
            ghosts = zip(verts[2 * n :], normals[2 * n :]) if ghost_poses else [(None, None)] * n
            _put(
                skinned,
                [(verts[i], verts[n + i], g, normals[i], normals[n + i], gn) for i, (g, gn) in enumerate(ghosts)],
                stop,
            )
        _put(skinned, _DONE, stop)

    container = av.open(str(tmp_path), mode="w", format="mp4")
    video, audio_stream = _add_streams(container, renderer.size, exact_rate(fps))
    caption = Captions(renderer.size, *caption_texts(interaction, model is not None, bool(ghost_poses)))
    framing = framing_for(interaction.dataset)  # faces, each in its half, for data with no body

    def encode() -> None:
        sample_pos, k = 0, 0
        while (rgb := _get(rendered, stop)) is not _DONE:
            if captions:
                caption.apply(rgb)  # in place: render() returns a new array for every frame
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
            k += 1
            # Interleave: the audio up to the end of this video frame.
            sample_pos = _mux_audio(container, audio_stream, sound, sample_pos, audio_sample(k, fps))
        if not stop.is_set():
            container.mux(video.encode(None))
            _mux_audio(container, audio_stream, sound, sample_pos, len(sound), flush=True)

    skinner = _Worker(skin, "dyadic-skin", stop)
    encoder = _Worker(encode, "dyadic-encode", stop)
    skinner.start()
    encoder.start()
    try:
        while (item := _get(skinned, stop)) is not _DONE:
            for spk, lst, ghost, spk_n, lst_n, ghost_n in item:
                frame = renderer.render(spk, lst, ghost, normals=(spk_n, lst_n, ghost_n), framing=framing)
                _put(rendered, frame, stop)
                if progress:
                    progress(1)
        _put(rendered, _DONE, stop)
        encoder.join()
        for stage in (skinner, encoder):
            if stage.error is not None:
                raise stage.error
        if stop.is_set():
            raise RuntimeError("replay pipeline stopped early")
    except BaseException:
        stop.set()
        skinner.join(timeout=5)
        encoder.join(timeout=5)
        container.close()
        tmp_path.unlink(missing_ok=True)
        raise
    skinner.join()
    container.close()
    tmp_path.replace(out_path)
    return ReplayResult(
        out_path, n_frames, fps, n_frames / fps, time.perf_counter() - t_start, renderer.backend, renderer.gl_renderer
    )


def _add_streams(container: OutputContainer, size: tuple[int, int], rate: Fraction) -> tuple[VideoStream, AudioStream]:
    width, height = size
    video = container.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    # ultrafast + CRF 20: sharp flat-shaded avatars; the slower presets cost a core that the
    # renderer needs (veryfast: 1.5x real time on 2 cores, ultrafast: 2.1x; bench/replay.py).
    video.options = {"preset": "ultrafast", "crf": "20"}
    video.codec_context.time_base = 1 / rate
    audio_stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    audio_stream.bit_rate = 128_000  # FFmpeg's default (~69 kb/s mono) audibly dulls speech
    return video, audio_stream


def _mux_audio(
    container: OutputContainer, stream: AudioStream, sound: np.ndarray, start: int, end: int, flush: bool = False
) -> int:
    """Encode sound[start:end] in AAC-sized frames; returns the new position."""
    frame_size = stream.codec_context.frame_size or 1024
    pos = start
    while end - pos >= frame_size or (flush and pos < end):
        chunk = sound[pos : min(end, pos + frame_size)]
        frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, pos
        container.mux(stream.encode(frame))
        pos += len(chunk)
    if flush:
        container.mux(stream.encode(None))
    return pos
