"""DyadRenderer: the two avatars of a dyad in one persistent pyrender scene, rendered offscreen.

One scene per renderer; the avatar meshes are created once and each frame only their vertex buffers
are rewritten in place (glBufferSubData into the VBO pyrender made for the primitive), so no GL
objects are created or freed per frame. Speaker on the left, listener on the right, each turned
slightly towards the other; the camera frames both upper bodies. An optional translucent ghost (the
real listener, in replay) is drawn over the listener's place.

Lighting is computed per vertex (three-point: key, fill, rim, plus a sky/ground ambient) by our own
version of pyrender's FLAT shader pair (renderer/shaders/flat.*), loaded through pyrender's shader
cache: on llvmpipe pyrender's per-pixel PBR shader costs about 45 ms per 640x480 frame with two
avatars filling the view, this one about 9 ms, and at 7k vertices per avatar Gouraud shading looks
the same for these smooth, untextured surfaces.

pyrender builds the scene, the GL buffers and the shader program, and renders the first frame.
After that each frame is drawn by `_FrameDraw`: the ~20 GL calls this fixed scene needs, without
pyrender's per-frame walk of the scene graph (context update, sorting, uniform lookups by name),
which costs about 1.4 ms of Python per 640x480 frame on llvmpipe (7.9 -> 6.5 ms, pixel-identical).

A live renderer may draw each body with fewer triangles (`decimate`, renderer/lod.py): the same
vertices, a shorter index buffer.

The GL context is current only inside a call: render() makes it current and releases it again, as
pyrender does, so a renderer may be created, used and closed from different threads, one call at
a time (the engine gives each renderer a thread of its own).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import gl, lod
from .avatar import Avatar
from .normals import VertexNormals
from .scene import FAR, View, scene_layout

BACKGROUND = (0.80, 0.83, 0.86)  # calm blue-grey, as the clear colour (not gamma corrected)
LISTENER_SHIRT = (0.70, 0.40, 0.30)  # sRGB; tells the two avatars apart at a glance
GHOST_RGBA = (0.45, 0.80, 1.0, 0.35)
DIVIDER_RGB = (0.62, 0.66, 0.70)  # the line between the two faces
FRAMINGS = ("body", "faces")  # both upper bodies in one view; each head and shoulders in its half
SHADER_DIR = Path(__file__).with_name("shaders")
FLOATS_PER_VERTEX_COLOURED = 10  # pyrender's interleaved VBO: position 3 | normal 3 | colour 4


def head_centre(avatar: Avatar, rest: np.ndarray | None = None) -> np.ndarray:
    """The rest head's centre in the body frame (the "faces" cameras aim at it)."""
    rest = avatar.rest_mesh() if rest is None else rest
    return rest[avatar.head_vertex_mask].mean(axis=0)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Our vertex shader lights linear albedo and gamma-encodes the result, so colours go in linear."""
    return np.power(np.clip(c, 0, 1), 2.2)


class _AvatarMesh:
    """One pyrender mesh whose vertex buffer is rewritten in place every frame."""

    def __init__(self, pyrender, faces, rest_vertices, normals: VertexNormals, albedo_srgb: np.ndarray, material):
        self.normals = normals
        colours = np.ones((len(rest_vertices), 4), np.float32)
        colours[:, :3] = srgb_to_linear(albedo_srgb)  # the vertex shader lights linear albedo
        prim = pyrender.Primitive(
            positions=rest_vertices, normals=normals(rest_vertices), indices=faces, color_0=colours, material=material
        )
        self.primitive = prim
        self.mesh = pyrender.Mesh([prim])
        self.staging = np.ones((len(rest_vertices), FLOATS_PER_VERTEX_COLOURED), np.float32)
        self.staging[:, 6:10] = colours  # constant: only positions and normals change per frame

    def upload(self, vertices: np.ndarray, normals: np.ndarray | None = None) -> None:
        """Write positions and normals (computed from the faces if not given) into the existing
        VBO (context current)."""
        from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

        self.staging[:, 0:3] = vertices
        self.staging[:, 3:6] = self.normals(vertices) if normals is None else normals
        glBindBuffer(GL_ARRAY_BUFFER, self.primitive._buffers[0])  # pyrender's interleaved VBO
        glBufferSubData(GL_ARRAY_BUFFER, 0, self.staging.nbytes, self.staging)
        glBindBuffer(GL_ARRAY_BUFFER, 0)


class DyadRenderer:
    """Renders speaker (left) and listener (right) to an (H, W, 3) uint8 image."""

    def __init__(
        self,
        avatar: Avatar,
        size: tuple[int, int] = (640, 480),
        backend: str = "auto",
        msaa: bool = False,
        ghost: bool = False,
        decimate: float | str = 0.0,
    ):
        """`decimate`: the fraction of each body's triangles left out of the drawing (lod.py; the
        head is always whole), or "auto": lod.DECIMATE_AUTO when GL renders in software, else 0."""
        self.size = (int(size[0]), int(size[1]))
        with gl.context_lock:
            self._create(avatar, backend, msaa, ghost, decimate)

    def _create(self, avatar: Avatar, backend: str, msaa: bool, ghost: bool, decimate: float | str) -> None:
        pyrender = gl.import_pyrender(backend)
        self._offscreen, info = gl.create_offscreen(*self.size, backend=backend, msaa=msaa)
        self.backend, self.gl_renderer, self.gl_version = info.backend, info.renderer, info.version
        self.msaa = msaa
        self._offscreen._renderer._program_cache = pyrender.shader_program.ShaderProgramCache(
            shader_dir=str(SHADER_DIR)
        )

        rest = avatar.vertices(_rest_pose())
        normals = VertexNormals(avatar.faces, avatar.num_vertices)  # smooth normals of the whole mesh
        self.decimate = lod.resolve_fraction(decimate, info.renderer)
        faces = self._drawn_faces(avatar, rest)
        self.triangles = len(faces)  # per avatar
        self.layout = scene_layout(self.size, head_centre(avatar, rest))
        self.speaker_pose, self.listener_pose = self.layout.speaker, self.layout.listener
        ghost_pose = self.layout.ghost
        body_view = self.layout.views["body"][0]
        self.camera = self._pyrender_camera(body_view)
        self.camera_pose = body_view.camera

        listener_albedo = avatar.vertex_colors.copy()
        shirt = avatar.part_mask("shirt")
        if shirt is not None:
            listener_albedo[shirt] = LISTENER_SHIRT
        opaque = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0))
        self._speaker = _AvatarMesh(pyrender, faces, rest, normals, avatar.vertex_colors, opaque)
        self._listener = _AvatarMesh(pyrender, faces, rest, normals, listener_albedo, opaque)
        self._ghost = None
        if ghost:
            translucent = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=(1.0, 1.0, 1.0, GHOST_RGBA[3]), alphaMode="BLEND"
            )
            self._ghost = _AvatarMesh(
                pyrender,
                faces,
                rest,
                normals,
                np.tile(np.array(GHOST_RGBA[:3], np.float32), (avatar.num_vertices, 1)),
                translucent,
            )

        self.scene = pyrender.Scene(bg_color=(*BACKGROUND, 1.0))
        self.scene.add(self._speaker.mesh, pose=self.speaker_pose)
        self.scene.add(self._listener.mesh, pose=self.listener_pose)
        if self._ghost is not None:
            self.scene.add(self._ghost.mesh, pose=ghost_pose)
        self.scene.add(self.camera, pose=self.camera_pose)
        # pyrender's one full render creates the VBOs and vertex arrays and compiles the shaders
        self._offscreen.render(self.scene, pyrender.RenderFlags.FLAT)
        platform = self._offscreen._platform
        platform.make_current()
        try:
            meshes = [(self._speaker, self.speaker_pose), (self._listener, self.listener_pose)]
            views = {
                framing: [_View(v.viewport, v.camera, self._pyrender_camera(v).get_projection_matrix(*v.viewport[2:]))
                          for v in layout_views]
                for framing, layout_views in self.layout.views.items()
            }  # fmt: skip
            self._draw = _FrameDraw(
                pyrender,
                self._offscreen._renderer,
                self.size,
                BACKGROUND,
                views,
                meshes,
                None if self._ghost is None else (self._ghost, ghost_pose),
            )
        finally:
            platform.make_uncurrent()
        self._read_colour = self._colour_reader()
        self._rgb_buffer = np.empty((self.size[1], self.size[0], 3), np.uint8)  # render()'s, reused

    def _drawn_faces(self, avatar: Avatar, rest: np.ndarray) -> np.ndarray:
        if self.decimate == 0.0:
            return avatar.faces
        _, regions = np.unique(avatar.vertex_colors, axis=0, return_inverse=True)  # colour regions
        return lod.decimate_faces(
            rest, avatar.faces, self.decimate, regions=regions.ravel(), keep=avatar.head_vertex_mask
        )

    # ------------------------------------------------------------------------------------------
    def _pyrender_camera(self, view: View):
        import pyrender

        return pyrender.PerspectiveCamera(yfov=self.layout.yfov, aspectRatio=view.aspect, znear=view.near, zfar=FAR)

    def _colour_reader(self):
        """A function read(fmt, out) that reads the colour buffer (bottom row first, as GL stores
        it) into the uint8 array `out`, as GL_RGB or GL_RGBA.

        pyrender's _read_main_framebuffer always reads the depth buffer too and linearises it in
        numpy (a few ms per frame on CPU); we need colour only. Without MSAA the multisample
        framebuffer has one sample, so we read it directly and skip the blit as well. OSMesa has
        no framebuffer objects in pyrender: there we read its single-buffered default framebuffer.
        Reading into a given array also spares PyOpenGL's new bytes object per frame (~0.5 ms).
        """
        from OpenGL.GL import (
            GL_COLOR_BUFFER_BIT,
            GL_DRAW_FRAMEBUFFER,
            GL_FRONT,
            GL_LINEAR,
            GL_PACK_ALIGNMENT,
            GL_READ_FRAMEBUFFER,
            GL_UNSIGNED_BYTE,
            glBindFramebuffer,
            glBlitFramebuffer,
            glPixelStorei,
            glReadBuffer,
            glReadPixels,
        )

        renderer = self._offscreen._renderer
        msaa = self.msaa
        own_buffer = not self._offscreen._platform.supports_framebuffers()
        w, h = self.size

        def read_colour(fmt, out: np.ndarray) -> None:
            if own_buffer:
                glBindFramebuffer(GL_READ_FRAMEBUFFER, 0)
                glReadBuffer(GL_FRONT)
            elif msaa:
                glBindFramebuffer(GL_READ_FRAMEBUFFER, renderer._main_fb_ms)
                glBindFramebuffer(GL_DRAW_FRAMEBUFFER, renderer._main_fb)
                glBlitFramebuffer(0, 0, w, h, 0, 0, w, h, GL_COLOR_BUFFER_BIT, GL_LINEAR)
                glBindFramebuffer(GL_READ_FRAMEBUFFER, renderer._main_fb)
            else:
                glBindFramebuffer(GL_READ_FRAMEBUFFER, renderer._main_fb_ms)
            glPixelStorei(GL_PACK_ALIGNMENT, 1)
            glReadPixels(0, 0, w, h, fmt, GL_UNSIGNED_BYTE, out)

        return read_colour

    # ------------------------------------------------------------------------------------------
    def render(
        self,
        speaker_vertices: np.ndarray,
        listener_vertices: np.ndarray,
        ghost_vertices: np.ndarray | None = None,
        *,
        normals: tuple[np.ndarray | None, ...] | None = None,
        framing: str = "body",
    ) -> np.ndarray:
        """(H, W, 3) uint8 frame, a new array. Vertices are (V, 3) in the avatar's body frame.

        `normals`: optional (speaker, listener[, ghost]) unit normals, e.g. from
        Avatar.skin_with_normals; any that is None or missing is computed from the faces.
        `framing`: "body" (both upper bodies in one view) or "faces" (each person's head and
        shoulders in their half: data with no body, adapters.framing_for()).
        """
        from OpenGL.GL import GL_RGB

        bottom_up = self._rgb_buffer
        self._draw_and_read(GL_RGB, bottom_up, speaker_vertices, listener_vertices, ghost_vertices, normals, framing)
        return np.ascontiguousarray(bottom_up[::-1])

    def render_rgba(
        self,
        out: np.ndarray,
        speaker_vertices: np.ndarray,
        listener_vertices: np.ndarray,
        *,
        normals: tuple[np.ndarray | None, ...] | None = None,
        framing: str = "body",
    ) -> np.ndarray:
        """Like render(), for the live path: the frame goes into `out` (H, W, 4) uint8 as GL keeps
        it (RGBA, bottom row first), and a top-down view of `out` is returned. On llvmpipe GL reads
        RGBA as it stores it: 0.10 ms per 640x480 frame against 0.45 for RGB, and the flip is left
        to the copy that follows anyway (tracks.video_frame)."""
        from OpenGL.GL import GL_RGBA

        if out.shape != (self.size[1], self.size[0], 4) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous ({self.size[1]}, {self.size[0]}, 4) uint8 array")
        self._draw_and_read(GL_RGBA, out, speaker_vertices, listener_vertices, None, normals, framing)
        return out[::-1]

    def _draw_and_read(
        self, fmt, out, speaker_vertices, listener_vertices, ghost_vertices, normals, framing: str
    ) -> None:
        spk_n, lst_n, ghost_n = (tuple(normals or ()) + (None, None, None))[:3]
        if ghost_vertices is not None and self._ghost is None:
            raise ValueError("this DyadRenderer was created without ghost=True")
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
        platform = self._offscreen._platform
        platform.make_current()
        try:
            self._speaker.upload(speaker_vertices, spk_n)
            self._listener.upload(listener_vertices, lst_n)
            if ghost_vertices is not None:
                assert self._ghost is not None  # checked on entry
                self._ghost.upload(ghost_vertices, ghost_n)
            self._draw(ghost=ghost_vertices is not None, framing=framing)
            self._read_colour(fmt, out)
        finally:
            platform.make_uncurrent()  # as pyrender leaves it (module docstring)

    @property
    def has_ghost(self) -> bool:
        return self._ghost is not None

    def project(self, points: np.ndarray, slot: str = "listener", framing: str = "body") -> np.ndarray:
        """Pixel coordinates (N, 2) as (x, y), y down, of body-frame points of one avatar."""
        place = {"speaker": self.speaker_pose, "listener": self.listener_pose}[slot]
        views = self._draw.views[framing]
        view = views[min(int(slot == "listener"), len(views) - 1)]
        world = points @ place[:3, :3].T + place[:3, 3]
        cam = world @ view.view[:3, :3].T + view.view[:3, 3]
        clip = np.c_[cam, np.ones(len(cam))] @ view.projection.T
        ndc = clip[:, :2] / clip[:, 3:4]
        x0, y0, w, h = view.viewport  # GL's: y from the bottom
        return np.stack([x0 + (ndc[:, 0] + 1) / 2 * w, self.size[1] - y0 - (ndc[:, 1] + 1) / 2 * h], 1)

    def gl_object_counts(self) -> dict[str, int]:
        """Live GL buffers and vertex arrays among the first 4096 names (a leak check)."""
        from OpenGL.GL import glIsBuffer, glIsVertexArray

        platform = self._offscreen._platform
        platform.make_current()
        try:
            return {
                "buffers": sum(bool(glIsBuffer(i)) for i in range(1, 4097)),
                "vertex_arrays": sum(bool(glIsVertexArray(i)) for i in range(1, 4097)),
            }
        finally:
            platform.make_uncurrent()

    def close(self) -> None:
        if self._offscreen is not None:
            with gl.context_lock:
                if self.backend == "egl":
                    _keep_egl_display(self._offscreen._platform)
                self._offscreen.delete()
                self._offscreen = None

    def __enter__(self) -> DyadRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Item(NamedTuple):
    """One mesh as _FrameDraw draws it: looked up once."""

    program: int
    vertex_array: int
    indices: int  # how many indices (3 per triangle drawn)
    model: np.ndarray  # 4x4 placement
    base_colour: np.ndarray


class _View:
    """Where one person is drawn: a viewport (x, y, w, h; GL's origin, bottom left) and a camera."""

    def __init__(self, viewport: tuple[int, int, int, int], camera_pose: np.ndarray, projection: np.ndarray):
        self.viewport = viewport
        self.view = np.linalg.inv(camera_pose).astype(np.float32)
        self.projection = np.asarray(projection, np.float32)
        self.cam_pos = np.float32(camera_pose[:3, 3])


class _FrameDraw:
    """Draws the dyad's fixed scene into pyrender's offscreen framebuffer (context current).

    What pyrender's forward pass does for this scene, with everything that cannot change looked up
    once: each mesh's shader program (asked of pyrender, so the same cached program it drew the
    first frame with), uniform locations, vertex array and placement, and the camera matrices.
    Opaque avatars first, then the translucent ghost blended over them, as pyrender orders them.
    Each framing is a list of views (_View): one for both people, or one per person (the ghost
    takes the listener's).
    """

    UNIFORMS = ("M", "V", "P", "cam_pos", "material.base_color_factor")

    def __init__(self, pyrender, renderer, size, background, views: dict[str, list[_View]], meshes, ghost):
        self.framebuffer = renderer._main_fb_ms or 0  # 0: OSMesa draws into its own buffer
        self.size, self.background = size, (*background, 1.0)
        self.views = views
        self.locations: dict[int, dict[str, int]] = {}
        self.draws = [self._draw_item(pyrender, renderer, mesh, pose) for mesh, pose in meshes]
        self.ghost = None if ghost is None else self._draw_item(pyrender, renderer, *ghost)

    def _draw_item(self, pyrender, renderer, mesh: _AvatarMesh, pose: np.ndarray):
        from OpenGL.GL import glGetUniformLocation

        prim = mesh.primitive
        program = renderer._get_primitive_program(
            prim, pyrender.RenderFlags.FLAT, pyrender.constants.ProgramFlags.USE_MATERIAL
        )
        pid = program._program_id
        if pid not in self.locations:
            self.locations[pid] = {n: glGetUniformLocation(pid, n) for n in self.UNIFORMS}
        colour = np.asarray(prim.material.baseColorFactor, np.float32)
        return _Item(pid, prim._vaid, prim.indices.size, pose.astype(np.float32), colour)

    def __call__(self, ghost: bool, framing: str = "body") -> None:
        from OpenGL.GL import (
            GL_BACK,
            GL_BLEND,
            GL_COLOR_BUFFER_BIT,
            GL_CULL_FACE,
            GL_DEPTH_BUFFER_BIT,
            GL_DEPTH_TEST,
            GL_DRAW_FRAMEBUFFER,
            GL_LEQUAL,
            GL_LESS,
            GL_ONE_MINUS_SRC_ALPHA,
            GL_SRC_ALPHA,
            glBindFramebuffer,
            glBindVertexArray,
            glBlendFunc,
            glClear,
            glClearColor,
            glColorMask,
            glCullFace,
            glDepthFunc,
            glDepthMask,
            glDisable,
            glEnable,
            glUseProgram,
            glViewport,
        )

        glBindFramebuffer(GL_DRAW_FRAMEBUFFER, self.framebuffer)
        glViewport(0, 0, *self.size)
        glEnable(GL_DEPTH_TEST)
        glDepthMask(True)
        glDepthFunc(GL_LESS)
        glClearColor(*self.background)
        glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT)
        glEnable(GL_CULL_FACE)
        glCullFace(GL_BACK)
        glDisable(GL_BLEND)
        views = self.views[framing]
        for k, item in enumerate(self.draws):
            self._draw_one(item, views[min(k, len(views) - 1)])
        if len(views) > 1:
            self._divider()
        if ghost and self.ghost is not None:
            # A pass of its own: the ghost occupies nearly the listener's place, and depth-tested
            # against it the two surfaces interleave pixel by pixel (a grey staircase across the
            # shirt). Cleared depth, then the ghost's depth alone, then its nearest surface
            # blended once over everything: a clean translucent overlay.
            glClear(GL_DEPTH_BUFFER_BIT)
            listener_view = views[min(1, len(views) - 1)]
            glColorMask(False, False, False, False)
            self._draw_one(self.ghost, listener_view)
            glColorMask(True, True, True, True)
            glDepthFunc(GL_LEQUAL)
            glEnable(GL_BLEND)
            glBlendFunc(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA)
            self._draw_one(self.ghost, listener_view)
            glDisable(GL_BLEND)
            glDepthFunc(GL_LESS)
        glBindVertexArray(0)
        glUseProgram(0)

    def _divider(self) -> None:
        """A thin line between the two halves of the "faces" framing."""
        from OpenGL.GL import (
            GL_COLOR_BUFFER_BIT,
            GL_SCISSOR_TEST,
            glClear,
            glClearColor,
            glDisable,
            glEnable,
            glScissor,
        )

        w, h = self.size
        glEnable(GL_SCISSOR_TEST)
        glScissor(w // 2 - 1, 0, 2, h)
        glClearColor(*DIVIDER_RGB, 1.0)
        glClear(GL_COLOR_BUFFER_BIT)
        glDisable(GL_SCISSOR_TEST)

    def _draw_one(self, item: _Item, view: _View) -> None:
        from OpenGL.GL import (
            GL_TRIANGLES,
            GL_UNSIGNED_INT,
            glBindVertexArray,
            glDrawElementsInstanced,
            glUniform3fv,
            glUniform4fv,
            glUniformMatrix4fv,
            glUseProgram,
            glViewport,
        )

        glViewport(*view.viewport)
        glUseProgram(item.program)
        loc = self.locations[item.program]
        glUniformMatrix4fv(loc["V"], 1, True, view.view)
        glUniformMatrix4fv(loc["P"], 1, True, view.projection)
        glUniform3fv(loc["cam_pos"], 1, view.cam_pos)
        glUniformMatrix4fv(loc["M"], 1, True, item.model)
        glUniform4fv(loc["material.base_color_factor"], 1, item.base_colour)
        glBindVertexArray(item.vertex_array)
        glDrawElementsInstanced(GL_TRIANGLES, item.indices, GL_UNSIGNED_INT, ctypes.c_void_p(0), 1)


def _keep_egl_display(platform) -> None:
    """Make pyrender's EGL teardown destroy only this renderer's context.

    pyrender calls eglTerminate on close, but every renderer of a process shares one EGL display
    (one per device): terminating it kills the contexts of all other live renderers (every other
    session's, in the engine). The display stays initialised until the process exits.
    """

    def delete_context() -> None:
        from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

        if platform._egl_display is not None and platform._egl_context is not None:
            eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
            eglDestroyContext(platform._egl_display, platform._egl_context)
        platform._egl_context = None
        platform._egl_display = None

    platform.delete_context = delete_context


def _rest_pose():
    from .pose import AvatarPose

    return AvatarPose()
