"""One live session: a frame thread that runs the pipeline on the session's 30 Hz clock.

    source -> features -> model step -> adapter -> skinning -> render -> video track
    source audio ----------------------------------------------------> audio track

Time (DESIGN.md section 4): frame k is due when its audio has ended, at `t_anchor + (k+1)/fps`.
When frames fall due while the thread was busy, every one of them still goes through the source,
the features and the model (they are cheap, and the model must hear all the audio), but only the
newest is skinned and rendered: the others are dropped video, counted. The audio of every frame is
pushed, never dropped. After a stall of more than MAX_BACKLOG frames the clock is re-anchored so
latency cannot grow.

The clock thread runs the source, pushes each frame's audio to the audio track as soon as it is
read, then runs the features, model and adapter. A recording's audio is known ahead of time, so
its frames are read AUDIO_LEAD_FRAMES early and their audio pushed then: it reaches the browser
before the video of the same instant, and the browser's lip sync holds it back to meet the video
(tracks.py). The model still hears each frame's audio only when the frame falls due; a pause or a
seek takes effect AUDIO_LEAD_FRAMES later. A live source's audio cannot be read early, but the
browser gets silence for it (the user hears themselves already), and silence can be sent for a
time not yet captured: it is stamped AUDIO_LEAD_FRAMES ahead, so the audio leads for every source
and the video is shown as soon as it arrives. The render thread hands the newest pair of poses
to the session's render worker, a process of its own that skins and renders (render_worker.py: own
GIL, own GL context), and gives the frame to the video track. Poses submitted while the worker was
busy replace the waiting ones (dropped video, counted). Both tracks carry content time and pace
their sending after it (tracks.py). aiortc converts to YUV and encodes in its thread pool; the
event loop only moves messages.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from dyadic.renderer.adapters import adapter_for, frame_channels
from dyadic.renderer.idle import idle_pose

from . import frame_id
from .render_worker import RenderWorker
from .sources import MovementInbox, PlaybackSource, SpeakerFrame
from .tracks import AUDIO_LEAD_SEND_DELAY, FrameTrace, SessionAudioTrack, SessionVideoTrack

log = logging.getLogger("dyadic.engine")

IDLE_FPS = 30.0
AUDIO_LEAD_FRAMES = 3  # a 20 ms audio frame is complete >= 66 ms before its content time
MAX_BACKLOG = 15  # frames (0.5 s): beyond this the thread was stalled; re-anchor the clock
STAGES = ("source", "features", "model", "adapter", "skin", "render", "convert")  # + "encode" from traces
STATS_WINDOW = 90  # frames kept for the telemetry medians
EXPORT_LIMIT = 1800  # traces kept for a tracing client between two reads


class IdleSource:
    """Before the user picks a source: silence, no movement; the listener idles."""

    kind = "none"
    fps = IDLE_FPS
    duration = position = None
    playing, loop = False, False

    def describe(self) -> dict:
        return {"kind": self.kind, "fps": self.fps}

    def read(self, due: float) -> SpeakerFrame:
        n = int(round(48_000 / self.fps))
        return SpeakerFrame(np.zeros(n, np.float32), captured=due)

    def close(self) -> None:
        pass


class SessionStats:
    """Rolling per-stage times and counters for the telemetry panel (thread-safe enough: the
    frame thread appends, the loop reads snapshots)."""

    def __init__(self):
        self.stage_ms = {s: collections.deque(maxlen=STATS_WINDOW) for s in STAGES}
        self.traces: collections.deque[FrameTrace] = collections.deque(maxlen=STATS_WINDOW)  # sent ones
        self.frames = 0  # frames the model stepped
        self.rendered = 0
        self.skipped = 0  # due frames whose video was never rendered (the thread was late)
        self.stalls = 0

        self.export: collections.deque[FrameTrace] | None = None  # sent frames, while tracing
        self.frame_id = False  # draw each frame's index into its pixels (frame_id.py)

    def record_sent(self, trace: FrameTrace) -> None:
        self.traces.append(trace)  # aiortc's encode stamps it later (tracks.install_aiortc_hooks)
        if self.export is not None:
            self.export.append(trace)

    def trace(self, on: bool, frame_id: bool = False) -> None:
        """Keep every sent frame's trace for take_traces() (bounded: a minute at 30 FPS if unread),
        and with `frame_id` draw each frame's index into its pixels."""
        self.export = collections.deque(maxlen=EXPORT_LIMIT) if on else None
        self.frame_id = on and frame_id

    def take_traces(self, settle_s: float = 0.5) -> list[dict]:
        """Traces of frames sent at least `settle_s` ago (their encode has stamped them), oldest
        first, each handed out once."""
        out, export = [], self.export
        if export is None:
            return out
        now = time.monotonic()
        while export and now - export[0].times["sent"] >= settle_s:
            out.append(export.popleft().as_dict())
        return out

    def snapshot(self, video: SessionVideoTrack, audio_underruns: int) -> dict:
        traces = list(self.traces)
        times = [t.times["sent"] for t in traces]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0
        encoded = [t.times for t in traces if "encode_end" in t.times]
        encode_ms = [(t["encode_end"] - t["encode_start"]) * 1e3 for t in encoded]
        # server-side latency: the frame's last audio sample captured -> its video frame encoded
        lat = np.array([(t["encode_end"] - t["captured"]) * 1e3 for t in encoded if "captured" in t])
        stages = {s: round(float(np.median(v)), 2) for s, v in self.stage_ms.items() if v}
        if encode_ms:
            stages["encode"] = round(float(np.median(encode_ms)), 2)
        return {
            "fps": round(fps, 2),
            "frames": self.frames,
            "rendered": self.rendered,
            "sent": video.sent,
            "dropped": self.skipped + video.dropped,
            "repeated": video.repeated,
            "stalls": self.stalls,
            "stages_ms": stages,
            "latency_ms": None
            if not len(lat)
            else {"median": round(float(np.median(lat)), 1), "p95": round(float(np.percentile(lat, 95)), 1)},
            "audio_underruns": audio_underruns,
        }


class Session:
    """A session's pipeline state and frame thread. Steering methods (set_source, resample, ...)
    are called from the event loop; the frame thread picks the changes up between frames."""

    def __init__(
        self,
        sid: str,
        loop,
        *,
        models: dict,
        default_dataset: str | None,
        size=(640, 480),
        body_model=None,
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
        self.video = SessionVideoTrack(loop, IDLE_FPS)
        self.audio = SessionAudioTrack(loop)
        # every source's audio leads its video (_read), so the browser can show each video frame
        # as soon as it has decoded it: lip sync holds the audio back instead
        self.audio.send_delay = AUDIO_LEAD_SEND_DELAY
        self.video.render_on_arrival = True
        self.stats = SessionStats()
        self.video.on_sent = self.stats.record_sent
        self.inbox = {d: MovementInbox(m.layout) for d, m in models.items()}
        self._source = IdleSource()
        self._read_ahead: collections.deque[SpeakerFrame] = collections.deque()  # audio pushed
        self._pending_source = None
        self._new_latent = False  # resample(): the frame thread draws the new seed's latents
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # avatar and renderer are up
        self._go = threading.Event()  # the peer is connected: the clock starts
        self.error: BaseException | None = None

    # -- steering (event loop) ------------------------------------------------------------------
    @property
    def source(self):
        return self._pending_source or self._source

    def set_source(self, source) -> None:
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
        src = self.source
        interaction = getattr(src, "interaction", None)
        return interaction.dataset if interaction is not None else self.default_dataset

    def movement_inbox(self) -> MovementInbox:
        inbox = self.inbox.get(self.dataset or "")
        if inbox is None:
            raise ValueError("movement: no reaction model for this source's dataset takes movement")
        return inbox

    def state(self) -> dict:
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

    def telemetry(self) -> dict:
        src = self._source
        snap = self.stats.snapshot(self.video, getattr(src, "underruns", 0))
        inbox = self.inbox.get(self.dataset or "")
        pushed = inbox is not None and inbox.latest() is not None
        snap["movement"] = "pushed" if pushed else ("recorded" if getattr(src, "interaction", None) else "none")
        snap["video_codec"] = self.video_codec
        return snap

    # -- lifecycle --------------------------------------------------------------------------------
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
    def _run(self) -> None:
        render = None
        try:
            render = _RenderStage(self)
            render.start()
            render.ready.wait()
            if render.error is None:
                self.ready.set()
                while not self._go.wait(0.1):
                    if self._stop.is_set():
                        return
                self._loop(render)
            else:
                raise render.error
        except BaseException as exc:  # one session's failure never reaches the others
            self.error = exc
            log.exception("session %s failed", self.id)
            self.on_failure(f"the session stopped: {exc}")
        finally:
            self.ready.set()
            if render is not None:
                render.stop()

    def _for_source(self):
        """(reaction or None, adapter or None, movement inbox or None) for the current source: a
        fresh reaction state at the source's rate, from the model of the source's dataset."""
        from dyadic.models.runtime import ReactionSession

        dataset = self.dataset
        model = self.models.get(dataset or "")
        reaction = None if model is None else ReactionSession(model, seed=self.seed, fps=self._source.fps)
        return reaction, (adapter_for(dataset) if dataset else None), self.inbox.get(dataset or "")

    def _loop(self, render: _RenderStage) -> None:
        fps = self._source.fps
        t_anchor, k_anchor, k = time.monotonic(), 0, 0
        reaction, adapt, inbox = self._for_source()
        listener_pose = idle_pose(0.0, seed=2)
        while not self._stop.is_set() and render.error is None:
            with self._lock:
                switched, self._pending_source = self._pending_source, None
                new_latent, self._new_latent = self._new_latent, False
            if switched is not None:  # a new source: its rate, its model, a fresh reaction
                old, self._source = self._source, switched
                old.close()
                self._read_ahead.clear()  # the old source's; their audio has gone out
                fps = self.video.fps = self._source.fps
                t_anchor, k_anchor = time.monotonic(), k
                reaction, adapt, inbox = self._for_source()
            elif new_latent and reaction is not None:
                from dyadic.models.runtime import LatentSchedule

                reaction.latents = LatentSchedule(reaction.runtime.config.latent, self.seed, fps)

            due = t_anchor + (k - k_anchor + 1) / fps
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            now = time.monotonic()
            last = k_anchor + int((now - t_anchor) * fps) - 1  # the newest frame whose audio has ended
            if last - k + 1 > MAX_BACKLOG:
                self.stats.stalls += 1
                t_anchor, k_anchor = now - 1.0 / fps, k
                last = k
            frames = []
            for j in range(k, last + 1):
                frames.append(self._step(j, t_anchor + (j - k_anchor + 1) / fps, reaction, adapt, inbox))
            k = last + 1
            self.stats.skipped += len(frames) - 1
            speaker, trace, listener = frames[-1]
            if listener is not None:
                listener_pose = listener
            elif reaction is None and adapt is None:
                listener_pose = idle_pose(trace.index / fps, seed=2)
            render.submit(speaker.speaker_pose or idle_pose(trace.index / fps, seed=1), listener_pose, trace)
        if render.error is not None:
            raise render.error

    def _step(self, j: int, due: float, reaction, adapt, inbox: MovementInbox | None):
        """Source, features and model for frame j -> (SpeakerFrame, trace, listener pose or None)."""
        trace = FrameTrace(j)
        t0 = time.monotonic()
        frame = self._read(due)
        trace.mark("captured", frame.captured)
        t1 = time.monotonic()
        pushed = inbox.latest(t1) if inbox is not None else None
        if pushed is not None:
            frame.movement, frame.movement_valid = pushed
            if adapt is not None and frame.speaker_pose is None:
                layout = inbox.layout
                frame.speaker_pose = adapt(frame_channels(layout.unflatten(pushed[0][None]), 0))
        listener_pose = None
        timings = {"source": (t1 - t0) * 1e3}
        if reaction is not None:
            features = reaction.features.push(frame.audio)
            t2 = time.monotonic()
            row = None
            for feat in features:  # exactly one per frame at the session rate
                row = reaction.step(feat, frame.movement, frame.movement_valid)
            t3 = time.monotonic()
            if row is not None:
                listener_pose = adapt(frame_channels(reaction.layout.unflatten(row[None]), 0))
            t4 = time.monotonic()
            timings.update(features=(t2 - t1) * 1e3, model=(t3 - t2) * 1e3, adapter=(t4 - t3) * 1e3)
            trace.mark("model_end", t3)
        elif adapt is not None and getattr(self._source, "interaction", None) is not None:
            listener_pose = self._recorded_listener(frame, adapt)
        for stage, ms in timings.items():
            self.stats.stage_ms[stage].append(ms)
        self.stats.frames += 1
        return frame, trace, listener_pose

    def _read(self, due: float) -> SpeakerFrame:
        """The source's frame due at `due`. Its audio leaves as soon as it is read, ahead of the
        model and the renderer: audio and video both carry content time, and the browser lines
        them up (tracks.py). A recording is read AUDIO_LEAD_FRAMES frames ahead; a live source's
        silence is stamped as many frames ahead."""
        period = 1.0 / self._source.fps
        recording = isinstance(self._source, PlaybackSource)
        while len(self._read_ahead) <= (AUDIO_LEAD_FRAMES if recording else 0):
            frame = self._source.read(due + len(self._read_ahead) * period)
            if recording:
                self.audio.push(frame.audio, frame.captured)
            else:  # a microphone (the user hears themselves already) or nothing yet
                self.audio.push(np.zeros_like(frame.audio), frame.captured + AUDIO_LEAD_FRAMES * period)
            self._read_ahead.append(frame)
        return self._read_ahead.popleft()

    def _recorded_listener(self, frame: SpeakerFrame, adapt):
        """No model for this dataset: show the recorded listener (as `replay --model none`)."""
        src = self._source
        k = min(int(round(frame.position * src.fps)), src.n_frames - 1)
        return adapt(frame_channels(src.interaction.listener.channels, k))


class _RenderStage:
    """The render thread of a session: has the session's render worker (its own process) skin and
    render the newest frame, and hands it to the video track. A frame submitted while another
    waits replaces it."""

    def __init__(self, session: Session):
        self.session = session
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._job = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"dyadic-render-{session.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def submit(self, speaker_pose, listener_pose, trace: FrameTrace) -> None:
        with self._cond:
            if self._job is not None:  # the renderer is behind: this frame's video is dropped
                self.session.stats.skipped += 1
            self._job = (speaker_pose, listener_pose, trace)
            self._cond.notify()

    def _next(self):
        with self._cond:
            self._cond.wait_for(lambda: self._job is not None or self._stopping)
            job, self._job = self._job, None
            return None if self._stopping else job

    def _run(self) -> None:
        session, worker = self.session, None
        try:
            worker = RenderWorker(
                session.size,
                session.body_model,
                session.gl_backend,
                name=f"dyadic-render-{session.id}",
                decimate=session.decimate,
            )
            self.ready.set()
            while (job := self._next()) is not None:
                speaker_pose, listener_pose, trace = job
                rgb, times = worker.render(speaker_pose, listener_pose)
                trace.mark("worker_start", times.start)
                trace.mark("skinned", times.skinned)
                trace.mark("rendered", times.rendered)
                t0 = time.monotonic()
                if session.stats.frame_id:
                    frame_id.stamp(rgb, trace.index)
                session.video.offer(rgb, trace)  # copies the frame out of the worker's buffer
                stage_ms = session.stats.stage_ms
                stage_ms["skin"].append((times.skinned - times.start) * 1e3)
                stage_ms["render"].append((times.rendered - times.skinned) * 1e3)
                stage_ms["convert"].append((time.monotonic() - t0) * 1e3)
                session.stats.rendered += 1
        except BaseException as exc:
            self.error = exc
            log.exception("session %s: render stage failed", session.id)
        finally:
            self.ready.set()
            if worker is not None:
                worker.close()
