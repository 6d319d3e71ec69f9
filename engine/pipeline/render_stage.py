"""The render stage: a session's render thread, which has the session's render worker (a process
of its own: render_worker.py) skin and draw the newest frame and hands the picture to the video
track. A job submitted while another waits replaces it: that frame's video is dropped (counted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..contracts import FrameTrace, RenderJob
from ..webrtc.tracks import SessionVideoTrack
from . import frame_id
from .render_worker import RenderWorker, RenderWorkerError
from .stats import SessionStats

log = logging.getLogger("dyadic.engine")


class RenderStage:
    def __init__(
        self, name: str, start_worker: Callable[[], RenderWorker], video: SessionVideoTrack, stats: SessionStats
    ):
        self.name = name
        self.ready = threading.Event()  # the worker is up (or failed: see error)
        self.error: BaseException | None = None
        self._start_worker = start_worker
        self._video = video
        self._stats = stats
        self._cond = threading.Condition()
        self._job: tuple[RenderJob, FrameTrace] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"dyadic-render-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def submit(self, job: RenderJob, trace: FrameTrace) -> None:
        with self._cond:
            if self._job is not None:  # the renderer is behind: this frame's video is dropped
                self._stats.skipped += 1
            self._job = (job, trace)
            self._cond.notify()

    def _next(self) -> tuple[RenderJob, FrameTrace] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._job is not None or self._stopping)
            job, self._job = self._job, None
            return None if self._stopping else job

    def _run(self) -> None:
        worker = None
        try:
            worker = self._start_worker()
            self.ready.set()
            while (next_job := self._next()) is not None:
                job, trace = next_job
                rgb, times = worker.render(job)
                trace.mark("worker_start", times.start)
                trace.mark("skinned", times.skinned)
                trace.mark("rendered", times.rendered)
                if self._stats.frame_id:
                    frame_id.stamp(rgb, trace.index)
                self._video.offer(rgb, trace)  # copies the frame out of the worker's buffer
                self._stats.rendered += 1
        except BaseException as exc:  # the session's frame thread ends the session with it
            self.error = exc
            if not isinstance(exc, RenderWorkerError):
                log.exception("session %s: render stage failed", self.name)
        finally:
            self.ready.set()
            if worker is not None:
                worker.close()
