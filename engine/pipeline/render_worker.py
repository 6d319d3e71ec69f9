"""Skinning and rendering of one live session in a process of its own.

Why a process: in one Python process, every session's threads share one GIL, and skinning (dozens
of small torch ops) and rendering (a hundred PyOpenGL calls) give it up and take it back hundreds
of times per frame. Measured on 2 cores with two sessions in one process: skinning took 18-20 ms
(3 ms alone), rendering 36-47 ms (12 ms alone), and both sessions fell to 18-23 FPS with the cores
not saturated. A worker per session has its own GIL; the server process keeps the clock, the model
(batched across sessions), WebRTC and encoding.

Contract (contracts.py; one request at a time, over a multiprocessing pipe):

    parent -> worker   RenderJob(speaker, listener, framing) or None to stop
    worker -> parent   WorkerReady(info)                once, when it is up
                       WorkerFrame(RenderTimes)         the frame is in the shared buffer
                       WorkerError(text)                it could not start, or failed on a frame

The frame itself does not cross the pipe: GL reads it straight into a buffer both processes map
(multiprocessing's RawArray), as RGBA rows bottom first, before the worker answers; the server sees
it through a top-down (H, W, 4) view, and the track's copy into the video frame does the flip.
Through the pipe, 1 MB a frame went in 64 kB chunks, each a wake-up of the other side, and was
copied three times on the way.

Times are time.monotonic() of the worker, which on Linux is the same clock as the server's
(CLOCK_MONOTONIC), so they go into the frame's trace as they are. The worker is started with
"spawn" (a fresh interpreter: no inherited GL context, threads or event loop); it exits when asked,
when the server process closes its end of the pipe, or with the server.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import numpy as np

from ..contracts import AvatarPose, RenderJob, RenderTimes, WorkerError, WorkerFrame, WorkerReady, WorkerReply

_Reply = TypeVar("_Reply", WorkerReady, WorkerFrame)

START_TIMEOUT_S = 120.0  # a fresh interpreter imports torch, smplx and pyrender: seconds on 2 cores


class RenderWorkerError(RuntimeError):
    """The worker failed to start, failed on a frame, or died."""


class RenderWorker:
    """The server side of one worker: render(speaker, listener) -> frame; close()."""

    def __init__(
        self,
        size: tuple[int, int],
        body_model: str | None = None,
        gl_backend: str = "auto",
        name: str = "dyadic-render",
        decimate: float | str = 0.0,
    ):
        ctx = mp.get_context("spawn")
        self.size = (int(size[0]), int(size[1]))
        self._conn, child = ctx.Pipe()
        shared = ctx.RawArray(ctypes.c_uint8, self.size[0] * self.size[1] * 4)
        self._frame = _gl_rows(shared, self.size)[::-1]  # top-down view
        self._proc = ctx.Process(
            target=_serve, args=(child, self.size, body_model, gl_backend, decimate, shared), name=name, daemon=True
        )
        self._proc.start()
        child.close()  # only the worker holds it now: its exit shows up here as EOF
        try:
            self.info = self._expect(WorkerReady, START_TIMEOUT_S).info  # backend, GL renderer, mesh sizes
        except RenderWorkerError:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def render(self, job: RenderJob) -> tuple[np.ndarray, RenderTimes]:
        """Skin both avatars and render them: the (H, W, 4) uint8 RGBA frame, a top-down view of
        the shared buffer (valid until the next call), and the worker's stage times."""
        try:
            self._conn.send(job)
        except (BrokenPipeError, OSError) as exc:
            raise RenderWorkerError(f"the render worker is gone ({self._exit_text()})") from exc
        return self._frame, self._expect(WorkerFrame).times

    def _expect(self, kind: type[_Reply], timeout: float | None = None) -> _Reply:
        """The next message, which must be a `kind` (or an error from the worker)."""
        if timeout is not None and not self._conn.poll(timeout):
            raise RenderWorkerError(f"the render worker did not start within {timeout:.0f} s")
        try:
            msg: WorkerReply = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise RenderWorkerError(f"the render worker died ({self._exit_text()})") from exc
        if isinstance(msg, WorkerError):
            raise RenderWorkerError(f"render worker: {msg.text}")
        if not isinstance(msg, kind):
            raise RenderWorkerError(f"render worker: expected {kind.__name__}, got {type(msg).__name__}")
        return msg

    def _exit_text(self) -> str:
        self._proc.join(1.0)
        code = self._proc.exitcode
        return "still running" if code is None else f"exit code {code}"

    def close(self, timeout: float = 3.0) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout)
        self._conn.close()


def _gl_rows(shared: Any, size: tuple[int, int]) -> np.ndarray:
    """The shared buffer as GL fills it: (H, W, 4) RGBA, bottom row first."""
    w, h = size
    return np.frombuffer(shared, np.uint8).reshape(h, w, 4)


def _serve(
    conn: Connection, size: tuple[int, int], body_model: str | None, gl_backend: str, decimate: float | str, shared: Any
) -> None:
    """The worker process: build the avatar and renderer, then one frame per request."""
    frame = _gl_rows(shared, size)
    try:
        from dyadic.renderer import gl

        gl.select_backend(gl_backend)  # before anything imports pyrender
        from dyadic.renderer.avatar import Avatar
        from dyadic.renderer.offscreen import DyadRenderer

        avatar = Avatar(body_model)
        renderer = DyadRenderer(avatar, size=size, backend=gl_backend, decimate=decimate)
    except BaseException as exc:
        conn.send(WorkerError(f"could not start: {type(exc).__name__}: {exc}"))
        return
    conn.send(
        WorkerReady(
            {
                "backend": renderer.backend,
                "gl_renderer": renderer.gl_renderer,
                "vertices": avatar.num_vertices,
                "triangles": renderer.triangles,
                "decimate": renderer.decimate,
            }
        )
    )
    try:
        while True:
            try:
                job: RenderJob | None = conn.recv()
            except (EOFError, OSError):  # the server went away
                break
            if job is None:
                break
            try:
                t0 = time.monotonic()
                poses: list[AvatarPose] = [job.speaker, job.listener]
                verts, normals = avatar.skin_with_normals(poses)
                t1 = time.monotonic()
                renderer.render_rgba(
                    frame,
                    verts[0],
                    verts[1],
                    normals=None if normals is None else (normals[0], normals[1]),
                    framing=job.framing,
                )
                t2 = time.monotonic()
            except Exception as exc:
                conn.send(WorkerError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
                break
            try:
                conn.send(WorkerFrame(RenderTimes(t0, t1, t2)))
            except OSError:  # BrokenPipeError: the server went away
                break
    finally:
        renderer.close()
