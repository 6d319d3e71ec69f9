"""The render worker: a session's skinning and rendering in a process of its own."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from dyadic.engine.contracts import RenderJob
from dyadic.engine.pipeline.render_worker import RenderWorker, RenderWorkerError
from dyadic.renderer.idle import idle_pose


@pytest.fixture(scope="module")
def worker():
    w = RenderWorker((160, 120), decimate="auto")  # as `dyadic serve` starts them
    yield w
    w.close()


def test_worker_renders_what_the_renderer_renders_in_process(worker):
    from dyadic.renderer import lod
    from dyadic.renderer.avatar import Avatar
    from dyadic.renderer.offscreen import DyadRenderer

    speaker, listener = idle_pose(0.5, seed=1, talking=True), idle_pose(0.5, seed=2)
    rgb, times = worker.render(RenderJob(speaker, listener))
    assert worker.pid != os.getpid() and worker.info["backend"] in ("egl", "osmesa")
    avatar = Avatar()
    verts, normals = avatar.skin_with_normals([speaker, listener])
    with DyadRenderer(avatar, size=(160, 120), backend=worker.info["backend"], decimate="auto") as r:
        here = r.render(verts[0], verts[1], normals=(normals[0], normals[1]))
        assert (worker.info["decimate"], worker.info["triangles"]) == (r.decimate, r.triangles)
    assert worker.info["decimate"] == lod.resolve_fraction("auto", worker.info["gl_renderer"])
    assert rgb.shape == (120, 160, 4) and np.array_equal(rgb[..., :3], here)  # RGBA, top-down
    # the worker's clock is the server's: its stage times are in order and just passed
    assert times.start <= times.skinned <= times.rendered <= time.monotonic()
    assert time.monotonic() - times.start < 5


def test_frames_follow_the_poses(worker):
    def frame(listener):
        rgb, _ = worker.render(RenderJob(idle_pose(0.0, seed=1), listener))
        return rgb.copy()  # the returned frame is only valid until the next call

    a, b = frame(idle_pose(0.0, seed=2)), frame(idle_pose(3.0, seed=2, talking=True))
    c = frame(idle_pose(0.0, seed=2))
    assert not np.array_equal(a, b) and np.array_equal(a, c)


def test_bad_poses_fail_clearly_and_a_closed_worker_is_gone():
    w = RenderWorker((64, 48))
    pid = w.pid
    with pytest.raises(RenderWorkerError, match="render worker"):
        w.render(RenderJob("not a pose", None))  # type: ignore[arg-type]
    w.close()
    assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_worker_that_cannot_start_says_why_and_is_gone(tmp_path):
    import multiprocessing

    with pytest.raises(RenderWorkerError, match="could not start"):
        RenderWorker((64, 48), body_model=str(tmp_path / "no-such-model"), name="dyadic-render-doomed")
    assert not [p for p in multiprocessing.active_children() if p.name == "dyadic-render-doomed"]
