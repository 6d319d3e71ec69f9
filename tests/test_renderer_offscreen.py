"""DyadRenderer: real pyrender, headless EGL (OSMesa checked in a subprocess), one shared renderer."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dyadic.renderer.avatar import Avatar
from dyadic.renderer.idle import idle_pose, relaxed_pose
from dyadic.renderer.offscreen import BACKGROUND, DIVIDER_RGB, DyadRenderer

BG = np.round(np.array(BACKGROUND) * 255).astype(np.int16)


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    os.environ.setdefault("DYADIC_CACHE", str(tmp_path_factory.mktemp("dyadic-cache")))
    return Avatar()


@pytest.fixture(scope="module")
def renderer(avatar):
    with DyadRenderer(avatar, size=(640, 480), ghost=True) as r:
        yield r


@pytest.fixture(scope="module")
def base(avatar, renderer):
    speaker, listener = avatar.vertices(relaxed_pose()), avatar.vertices(relaxed_pose())
    return speaker, listener, renderer.render(speaker, listener)


def foreground(image: np.ndarray) -> np.ndarray:
    return np.abs(image.astype(np.int16) - BG).max(axis=2) > 6


def test_both_avatars_in_frame(renderer, base):
    image = base[2]
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    fg = foreground(image)
    left, right = fg[:, :320], fg[:, 320:]
    assert left.mean() > 0.1 and right.mean() > 0.1
    for half, centre in ((left, 160), (right, 160)):
        xs = np.nonzero(half)[1]
        assert abs(np.median(xs) - centre) < 60  # each avatar sits near the middle of its half
    rows = np.nonzero(fg.any(axis=1))[0]
    assert rows.min() > 10  # the top of the heads is inside the frame


def _head_box(renderer, avatar, *vertex_sets, margin=3):
    pts = np.concatenate([renderer.project(v[avatar.head_vertex_mask], "listener") for v in vertex_sets])
    (x0, y0), (x1, y1) = pts.min(0) - margin, pts.max(0) + margin
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


@pytest.mark.parametrize("shape", ["jawOpen", "eyeBlinkLeft", "mouthSmileLeft"])
def test_blendshape_changes_only_head_pixels(avatar, renderer, base, shape):
    speaker, listener, image = base
    posed = relaxed_pose().set_face(**{shape: 1.0})
    listener2 = avatar.vertices(posed)
    changed = np.abs(renderer.render(speaker, listener2).astype(np.int16) - image).max(axis=2) > 8
    assert changed.sum() > 15, shape
    x0, y0, x1, y1 = _head_box(renderer, avatar, listener, listener2)
    outside = changed.copy()
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert outside.sum() == 0, f"{shape} changed {outside.sum()} pixels outside the head"


def test_ghost_is_translucent(avatar, renderer, base):
    speaker, listener, image = base
    ghost_pose = relaxed_pose()
    ghost_pose.body_pose[15] = (0, 0, -0.2)  # left arm raised a little: differs from the listener
    with_ghost = renderer.render(speaker, listener, avatar.vertices(ghost_pose))
    diff = np.abs(with_ghost.astype(np.int16) - image).max(axis=2)
    tinted = diff > 8
    assert tinted.sum() > 500
    assert (tinted[:, :300].sum()) == 0  # the speaker's half is untouched
    # translucent: where the ghost lies over the background, the pixel is neither background
    # nor the ghost's opaque colour
    over_bg = tinted & ~foreground(image)
    assert over_bg.sum() > 50
    assert np.all(with_ghost[over_bg].astype(np.int16).max(1) < 255)
    assert np.mean(np.abs(with_ghost[over_bg].astype(np.int16) - BG).max(1)) < 90
    # and the ghost disappears again when not given
    np.testing.assert_array_equal(renderer.render(speaker, listener), image)


def test_the_ghost_over_its_own_listener_tints_it_evenly(avatar, renderer, base):
    """The ghost in the very pose of the listener (a model that reproduces the recording): every
    listener pixel is tinted once, no staircase of pixels where the two surfaces interleave."""
    speaker, listener, image = base
    with_ghost = renderer.render(speaker, listener, listener)
    listener_pixels = foreground(image)
    listener_pixels[:, : image.shape[1] // 2] = False
    tinted = np.abs(with_ghost.astype(np.int16) - image).max(axis=2) > 8
    assert tinted[listener_pixels].mean() > 0.97, tinted[listener_pixels].mean()
    blue_shift = with_ghost[listener_pixels].astype(np.int16)[:, 2] - image[listener_pixels].astype(np.int16)[:, 2]
    assert np.percentile(blue_shift, 5) > 0  # and evenly: towards the ghost's blue everywhere


def test_frame_draw_matches_pyrenders_own_render(avatar, renderer, base):
    """The per-frame draw (renderer/offscreen.py _FrameDraw) is pyrender's forward pass, faster."""
    import pyrender

    speaker, listener, _ = base
    ghost_pose = relaxed_pose()
    ghost_pose.body_pose[15] = (0, 0, -0.2)
    ghost = avatar.vertices(ghost_pose)
    renderer.render(speaker, listener, ghost)  # the ghost's VBO now holds `ghost`; not drawn below
    ours = renderer.render(speaker, listener)
    renderer._ghost.mesh.is_visible = False
    try:
        theirs, _ = renderer._offscreen.render(renderer.scene, pyrender.RenderFlags.FLAT)
    finally:
        renderer._ghost.mesh.is_visible = True
    np.testing.assert_array_equal(ours, theirs)
    # with --msaa the draw goes to the multisampled framebuffer and the read resolves it
    with DyadRenderer(avatar, size=(320, 240), msaa=True) as smooth:
        ours = smooth.render(speaker, listener)
        theirs, _ = smooth._offscreen.render(smooth.scene, pyrender.RenderFlags.FLAT)
    np.testing.assert_array_equal(ours, theirs)
    with DyadRenderer(avatar, size=(320, 240)) as plain:
        aliased = plain.render(speaker, listener)
    edges = np.abs(ours.astype(np.int16) - aliased).max(axis=2) > 0
    assert 0 < edges.mean() < 0.1  # smoothed silhouettes, nothing else moved


def test_decimated_bodies_look_the_same_with_a_third_fewer_triangles(avatar, renderer, base):
    speaker, listener, full = base
    with DyadRenderer(avatar, size=(640, 480), decimate=0.5) as lean:
        image = lean.render(speaker, listener)
        assert lean.triangles < 0.7 * len(avatar.faces)
    full_mask, lean_mask = foreground(full), foreground(image)
    assert (full_mask & lean_mask).sum() / (full_mask | lean_mask).sum() > 0.98  # same silhouettes
    diff = np.abs(image.astype(np.int16) - full).max(axis=2)
    assert diff.mean() < 1.5 and (diff > 16).mean() < 0.01  # and shading: a few edge pixels differ


def test_render_rgba_is_the_same_frame_in_gls_row_order(renderer, base):
    speaker, listener, image = base
    out = np.zeros((480, 640, 4), np.uint8)
    top_down = renderer.render_rgba(out, speaker, listener)
    assert np.shares_memory(top_down, out) and np.array_equal(top_down[..., :3], image)
    assert np.array_equal(out[::-1, :, :3], image) and (out[..., 3] == 255).all()
    with pytest.raises(ValueError, match="C-contiguous"):
        renderer.render_rgba(np.zeros((480, 640, 3), np.uint8), speaker, listener)


def test_in_place_updates_leave_no_stale_buffers(avatar, renderer, base):
    speaker, listener, image_a = base
    counts = renderer.gl_object_counts()
    other = avatar.vertices(idle_pose(1.3, seed=2, talking=True))
    image_b = renderer.render(other, other)
    assert np.abs(image_b.astype(np.int16) - image_a).max() > 50
    np.testing.assert_array_equal(renderer.render(speaker, listener), image_a)
    for k in range(40):
        v = avatar.vertices(idle_pose(k / 30, seed=1, talking=True))
        renderer.render(v, v, v if k % 2 else None)
    assert renderer.gl_object_counts() == counts


_OTHER_BACKEND = r"""
import os, sys, numpy as np
from dyadic.renderer.avatar import Avatar
from dyadic.renderer.idle import relaxed_pose
from dyadic.renderer.offscreen import DyadRenderer
a = Avatar()
v = a.vertices(relaxed_pose())
with DyadRenderer(a, size=(320, 240), backend=sys.argv[1]) as r:
    np.save(sys.argv[2], r.render(v, v))
    print(r.backend, r.gl_renderer)
"""


def test_osmesa_and_egl_give_nearly_the_same_image(tmp_path):
    images = {}
    for backend in ("egl", "osmesa"):
        out = tmp_path / f"{backend}.npy"
        proc = subprocess.run(
            [sys.executable, "-c", _OTHER_BACKEND, backend, str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ.copy(),
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith(backend)
        images[backend] = np.load(out).astype(np.int16)
    diff = np.abs(images["egl"] - images["osmesa"]).max(axis=2)
    assert (diff > 16).mean() < 0.005


def test_closing_one_renderer_leaves_the_others_working(avatar, renderer, base):
    """Every renderer of a process shares one EGL display: closing one (a session that ends)
    must not tear down the contexts of the others."""
    from dyadic.renderer.offscreen import DyadRenderer

    speaker, listener, before = base
    other = DyadRenderer(avatar, size=(160, 120))
    other.render(speaker, listener)
    other.close()
    assert np.array_equal(renderer.render(speaker, listener), before)


def test_renderers_created_and_closed_in_parallel_threads(avatar, base):
    """Sessions that start or end together create and close their renderers on their own threads
    at the same moment; each must come up whole (this broke one of them before context_lock)."""
    import threading

    speaker, listener, _ = base
    errors, images = [], []

    def session() -> None:
        try:
            with DyadRenderer(avatar, size=(160, 120)) as r:
                images.append(r.render(speaker, listener))
        except Exception as exc:
            errors.append(repr(exc))

    for _ in range(8):
        threads = [threading.Thread(target=session) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(images) == 24 and all(np.array_equal(im, images[0]) for im in images)


def test_faces_framing_gives_each_head_its_half(avatar, renderer, base):
    """Data with no body (REACT) is framed as two faces, head and shoulders, each in its half."""
    from dyadic.renderer.adapters import framing_for

    assert (framing_for("seamless"), framing_for("react"), framing_for(None)) == ("body", "faces", "body")
    speaker, listener, _ = base
    faces = renderer.render(speaker, listener, framing="faces")
    w = faces.shape[1]
    divider = np.round(np.array(DIVIDER_RGB) * 255).astype(np.int16)
    assert np.abs(faces[:, w // 2 - 1 : w // 2 + 1].astype(np.int16) - divider).max() <= 2  # a line between them
    for slot, half in (("speaker", slice(0, w // 2 - 2)), ("listener", slice(w // 2 + 2, w))):
        head = listener[avatar.head_vertex_mask]
        in_body, in_faces = (renderer.project(head, slot, framing) for framing in ("body", "faces"))
        height = np.ptp(in_faces[:, 1])
        assert height > 2 * np.ptp(in_body[:, 1]) and height > 150, height  # twice as large, a third of the frame
        inside = (in_faces[:, 0] >= half.start) & (in_faces[:, 0] < half.stop) & (in_faces[:, 1] >= 0)
        assert inside.all()  # the whole head in its own half
        assert foreground(faces[:, half]).mean() > 0.3  # a person fills the half
    with pytest.raises(ValueError, match="framing must be one of body, faces"):
        renderer.render(speaker, listener, framing="feet")
