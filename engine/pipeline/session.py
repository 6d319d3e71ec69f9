"""One live session: the wiring of its stages, and the frame thread that runs them on its clock.

    Source ──SpeakerFrame──> ListenerStage ──ListenerMotion──> Posing ──RenderJob──> RenderStage
       │                    (features, model)               (adapters)           (worker process)
       └── audio (AudioLead: ahead of its video) ──> audio track          video track <──┘

The frame thread sleeps until the next frame is due (clock.py), then for every frame due: reads the
source (its audio goes out at once, audio_lead.py), merges pushed movement (inbox.py) and steps the
listener (listener.py). Only the newest due frame is posed and submitted to the render stage; the
others are dropped video, counted. The render thread has the session's render worker skin and draw
it and gives the picture to the video track (render_stage.py). Both tracks carry content time and
pace their sending after it (webrtc/tracks.py); aiortc converts to YUV and encodes in its thread
pool; the event loop only moves messages.

Steering methods (set_source, resample, ...) are called from the event loop; the frame thread
picks the changes up between frames.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..contracts import FrameTrace, ListenerMotion, RenderJob, Source, SpeakerFrame, Stepper
from ..webrtc.tracks import (
    AUDIO_LEAD_SEND_DELAY,
    POSE_MODE_AUDIO_SEND_DELAY,
    SessionAudioTrack,
    SessionVideoTrack,
)
from .audio_lead import AudioLead
from .clock import FrameClock, repeat_after
from .inbox import MovementInbox
from .listener import ListenerStage
from .pose_stage import PoseStage
from .posing import Posing
from .render_stage import RenderStage
from .render_worker import RenderWorker, RenderWorkerError
from .sources import IDLE_FPS, IdleSource
from .stats import SessionStats

log = logging.getLogger("dyadic.engine")


class _SourceStages:
    """The stages that depend on the source: its dataset's posing, model and movement inbox."""

    def __init__(self, session: Session, source: Source):
        dataset = source.dataset or session.default_dataset
        model = session.models.get(dataset or "")
        self.listener = None if model is None else ListenerStage(model, session.seed, source.fps)
        self.posing = Posing(dataset, source.fps, has_model=model is not None)
        self.inbox = session.inbox.get(dataset or "")


class Session:
    """A session's pipeline state and frame thread."""

    def __init__(
        self,
        sid: str,
        loop: asyncio.AbstractEventLoop,
        *,
        models: Mapping[str, Stepper],
        default_dataset: str | None,
        size: tuple[int, int] = (640, 480),
        body_model: str | None = None,
        gl_backend: str = "auto",
        decimate: float | str = 0.0,
        seed: int = 0,
        on_failure: Callable[[str], None] | None = None,
    ):
        self.id = sid
        self.models = models  # dataset -> SharedStepper
        self.default_dataset = default_dataset
        self.size = size
        self.body_model = body_model
        self.gl_backend = gl_backend
        self.decimate = decimate  # of the render worker's meshes: renderer/lod.py
        self.seed = seed
        self.video_codec: str | None = None  # set by the connection once negotiated
        self.on_failure = on_failure or (lambda msg: None)
        self.video = SessionVideoTrack(loop, repeat_after(IDLE_FPS))
        self.audio = SessionAudioTrack(loop)
        # every source's audio leads its video (audio_lead.py), so the browser can show each video
        # frame as soon as it has decoded it: lip sync holds the audio back instead
        self.audio.send_delay = AUDIO_LEAD_SEND_DELAY
        self.video.render_on_arrival = True
        self.stats = SessionStats()
        self.video.on_sent = self.stats.record_sent
        self.inbox = {d: MovementInbox(m.layout) for d, m in models.items()}
        self._source: Source = IdleSource()
        self._lead = AudioLead(self.audio)
        self._pending_source: Source | None = None
        self._new_latent = False  # resample(): the frame thread draws the new seed's latents
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poses: PoseStage | None = None  # browser mode: draw_in_browser()
        self.ready = threading.Event()  # avatar and renderer are up
        self._go = threading.Event()  # the peer is connected: the clock starts
        self.error: BaseException | None = None

    # -- steering (event loop) ------------------------------------------------------------------
    @property
    def source(self) -> Source:
        return self._pending_source or self._source

    def set_source(self, source: Source) -> None:
        with self._lock:
            old, self._pending_source = self._pending_source, source
        if old is not None:
            old.close()

    def resample(self) -> int:
        with self._lock:
            self.seed += 1
            self._new_latent = True
        return self.seed

    @property
    def dataset(self) -> str | None:
        return self.source.dataset or self.default_dataset

    def movement_inbox(self) -> MovementInbox:
        inbox = self.inbox.get(self.dataset or "")
        if inbox is None:
            raise ValueError("movement: no reaction model for this source's dataset takes movement")
        return inbox

    def state(self) -> dict[str, Any]:
        src = self.source
        model = self.models.get(self.dataset or "")
        return {
            "source": src.describe(),
            "playing": bool(src.playing),
            "position": src.position,
            "duration": src.duration,
            "loop": bool(src.loop),
            "seed": self.seed,
            "listener": "model" if model is not None else "recorded",
            "model": None if model is None else {"provider": model.provider, "dataset": self.dataset},
        }

    def telemetry(self) -> dict[str, Any]:
        src = self._source
        snap = self.stats.snapshot(self.video, src.underruns)
        inbox = self.inbox.get(self.dataset or "")
        pushed = inbox is not None and inbox.latest() is not None
        snap["movement"] = "pushed" if pushed else ("recorded" if src.dataset is not None else "none")
        snap["video_codec"] = self.video_codec
        snap["render"] = self.render_mode
        if self.poses is not None:
            snap.update(self.poses.describe())
        return snap

    # -- lifecycle --------------------------------------------------------------------------------
    def draw_in_browser(self, loop: asyncio.AbstractEventLoop) -> PoseStage:
        """Browser mode, chosen before start(): poses go out on a data channel (pose_stage.py) in
        place of the render worker and the video; the connection gives the stage its channel."""
        self.poses = PoseStage(loop, self.audio, self.stats)
        self.audio.send_delay = POSE_MODE_AUDIO_SEND_DELAY  # heard as its pose is ready, not ahead
        return self.poses

    @property
    def render_mode(self) -> str:
        return "server" if self.poses is None else "client"

    def begin(self) -> None:
        """Start the clock (the peer connected). start() may have warmed up long before."""
        self._go.set()

    def start(self) -> None:
        """Load the avatar and the renderer now (seconds), so that frames flow as soon as the
        peer connects; the clock starts at begin()."""
        self._thread = threading.Thread(target=self._run, name=f"dyadic-session-{self.id}", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for src in (self._source, self._pending_source):
            if src is not None:
                src.close()
        self.video.stop()
        self.audio.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the frame thread -------------------------------------------------------------------------
    def _start_worker(self) -> RenderWorker:
        return RenderWorker(
            self.size, self.body_model, self.gl_backend, name=f"dyadic-render-{self.id}", decimate=self.decimate
        )

    def _run(self) -> None:
        render: RenderStage | PoseStage | None = None
        try:
            render = self.poses or RenderStage(self.id, self._start_worker, self.video, self.stats)
            render.start()
            render.ready.wait()
            if render.error is not None:
                raise render.error
            self.ready.set()
            while not self._go.wait(0.1):
                if self._stop.is_set():
                    return
            self._loop(render)
        except BaseException as exc:  # one session's failure never reaches the others
            self.error = exc
            if isinstance(exc, RenderWorkerError):  # it says what happened: no traceback of ours
                log.error("session %s stopped: %s", self.id, exc)
            else:
                log.exception("session %s failed", self.id)
            self.on_failure(f"the session stopped: {exc}")
        finally:
            self.ready.set()
            if render is not None:
                render.stop()

    def _loop(self, render: RenderStage | PoseStage) -> None:
        clock = FrameClock(self._source.fps, time.monotonic())
        self.video.repeat_after = clock.repeat_after()
        stages = _SourceStages(self, self._source)
        while not self._stop.is_set() and render.error is None:
            with self._lock:
                switched, self._pending_source = self._pending_source, None
                new_latent, self._new_latent = self._new_latent, False
            if switched is not None:  # a new source: its rate, its model, a fresh reaction
                old, self._source = self._source, switched
                old.close()
                self._lead.reset()
                clock.retime(self._source.fps, time.monotonic())
                self.video.repeat_after = clock.repeat_after()
                stages = _SourceStages(self, self._source)
            elif new_latent and stages.listener is not None:
                stages.listener.resample(self.seed)

            wait = clock.next_due() - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            tick = clock.advance(time.monotonic())
            self.stats.stalls += tick.stalled
            self.stats.skipped += tick.dropped
            for index, due in tick.frames:
                trace, speaker, listener = self._step(index, due, stages)
            t0 = time.monotonic()
            posing = stages.posing
            job = RenderJob(
                posing.speaker(index, speaker),
                posing.listener(index, speaker, listener),
                posing.framing,
                model_listener=stages.listener is not None,
            )
            self.stats.record("posing", (time.monotonic() - t0) * 1e3)
            render.submit(job, trace)
        if render.error is not None:
            raise render.error

    def _step(
        self, index: int, due: float, stages: _SourceStages
    ) -> tuple[FrameTrace, SpeakerFrame, ListenerMotion | None]:
        """Source, movement and listener for one due frame."""
        trace = FrameTrace(index)
        t0 = time.monotonic()
        frame = self._lead.read(self._source, due)
        trace.mark("captured", frame.captured)
        t1 = time.monotonic()
        if stages.inbox is not None:
            frame = stages.inbox.merge(frame, t1)
        self.stats.record("source", (t1 - t0) * 1e3)
        listener = None
        if stages.listener is not None:
            step = stages.listener.step(index, frame)
            listener = step.frame
            trace.mark("model_end", step.model_end)
            self.stats.record("features", (step.features_end - t1) * 1e3)
            self.stats.record("model", (step.model_end - step.features_end) * 1e3)
        self.stats.frames += 1
        return trace, frame, listener
