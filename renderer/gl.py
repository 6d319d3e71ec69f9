"""Headless OpenGL for pyrender: pick EGL or OSMesa, then import pyrender safely.

PyOpenGL binds its platform (EGL, OSMesa, GLX) once, when `OpenGL` is first imported, from the
PYOPENGL_PLATFORM variable; a process can therefore use only one of them. `select_backend()` must run
before anything imports pyrender or OpenGL, and everything in dyadic imports pyrender through
`import_pyrender()` (pyrender 0.1.45 with numpy 2 and PyOpenGL 3.1.10, as measured here).

"auto" tries EGL first (Mesa llvmpipe on CPU machines; the NVIDIA driver on GPU machines, where EGL
device 0 is the GPU) by creating a real context in a short-lived subprocess: a failed EGL import
would pin this process to EGL, so the probe cannot run here. OSMesa is the fallback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from types import ModuleType

import numpy as np

BACKENDS = ("egl", "osmesa")

# Creates a 16x16 pyrender context with the given platform and prints the renderer string.
_PROBE = """
import os, sys
os.environ["PYOPENGL_PLATFORM"] = sys.argv[1]
import numpy as np
np.infty = np.inf
import pyrender
r = pyrender.OffscreenRenderer(16, 16)
from OpenGL.GL import glGetString, GL_RENDERER
print(glGetString(GL_RENDERER).decode())
r.delete()
"""

_selected: str | None = None
_probe_errors: dict[str, str] = {}

# Held while a context (and its framebuffer) is created or destroyed. Two threads doing either at
# once (two live sessions starting together) broke one of them here: "invalid framebuffer
# operation" on the first glClear, or EGL_NOT_INITIALIZED in eglDestroyContext. Rendering itself
# runs in parallel, each thread on its own context.
context_lock = threading.RLock()


class GLBackendError(RuntimeError):
    """No usable headless GL platform, or a conflicting one is already loaded."""


def _loaded_platform() -> str | None:
    """The platform PyOpenGL was imported with in this process, or None if not imported yet."""
    if "OpenGL" not in sys.modules and "pyrender" not in sys.modules:
        return None
    return os.environ.get("PYOPENGL_PLATFORM", "").lower() or "default (GLX/pyglet)"


def probe(backend: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Try to create a context with `backend` in a subprocess: (ok, GL_RENDERER or error text)."""
    env = dict(os.environ, PYOPENGL_PLATFORM=backend)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, backend], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if out.returncode == 0:
        return True, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    lines = (out.stderr or out.stdout).strip().splitlines()
    return False, lines[-1] if lines else f"exit code {out.returncode}"


def select_backend(backend: str = "auto") -> str:
    """Choose the GL platform for this process and set PYOPENGL_PLATFORM. Returns "egl" or "osmesa".

    Idempotent. Raises GLBackendError if OpenGL/pyrender were already imported with another
    platform (the choice cannot change after that), or if no backend works.
    """
    global _selected
    backend = backend.lower()
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'egl' or 'osmesa', not {backend!r}")
    if _selected is not None and backend in ("auto", _selected):
        return _selected
    loaded = _loaded_platform()
    if loaded is not None:
        if loaded in BACKENDS and backend in ("auto", loaded):
            _selected = loaded
            return loaded
        raise GLBackendError(
            f"OpenGL/pyrender were already imported with platform {loaded!r}; cannot use "
            f"{backend!r}. Select the backend (dyadic.renderer.gl.select_backend) before anything "
            "imports pyrender or OpenGL, or run the other backend in a separate process."
        )
    # pyrender imports pyglet's window module even offscreen; without headless mode pyglet loads
    # X11 libraries (libXrender...), absent on a bare server or a GPU node.
    os.environ.setdefault("PYGLET_HEADLESS", "true")
    if backend == "auto":
        ok, info = probe("egl")
        if ok:
            backend = "egl"
        else:
            _probe_errors["egl"] = info
            backend = "osmesa"  # the real context creation reports it if OSMesa fails too
    os.environ["PYOPENGL_PLATFORM"] = backend
    _selected = backend
    return backend


def import_pyrender(backend: str = "auto") -> ModuleType:
    """Select the backend (if not done yet), apply the numpy-2 shim and return the pyrender module."""
    select_backend(backend)
    if not hasattr(np, "infty"):
        # pyrender 0.1.45 still uses np.infty, removed in numpy 2 (and so from its stubs)
        np.infty = np.inf  # type: ignore[attr-defined]
    import pyrender

    return pyrender


@dataclass(frozen=True)
class GLInfo:
    backend: str
    renderer: str  # GL_RENDERER, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or the GPU's name
    version: str  # GL_VERSION


def current_gl_info() -> GLInfo:
    """GL strings of the context current on this thread."""
    from OpenGL.GL import GL_RENDERER, GL_VERSION, glGetString

    return GLInfo(
        backend=_selected or "?", renderer=glGetString(GL_RENDERER).decode(), version=glGetString(GL_VERSION).decode()
    )


def create_offscreen(width: int, height: int, backend: str = "auto", msaa: bool = False):
    """A pyrender OffscreenRenderer with MSAA on or off, and the context's GLInfo.

    pyrender hard-codes a 4x multisample framebuffer; on llvmpipe that doubles the frame time
    (stack-probe section 2), so `msaa=False` (the default) asks for 0 samples instead, as the probe did.
    The framebuffer is created on the first render, so the patch stays on this renderer instance.
    """
    pyrender = import_pyrender(backend)
    try:
        offscreen = pyrender.OffscreenRenderer(width, height)
    except Exception as exc:
        tried = "; ".join(f"{k}: {v}" for k, v in _probe_errors.items())
        raise GLBackendError(
            f"could not create a headless {_selected} GL context ({exc!r})"
            + (f"; earlier failures: {tried}" if tried else "")
            + ". EGL needs libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 (or an NVIDIA driver); "
            "OSMesa needs libosmesa6 and PyOpenGL >= 3.1.4."
        ) from exc
    samples = 4 if msaa else 0
    _set_msaa_samples(offscreen._renderer, samples)
    offscreen._platform.make_current()
    try:
        info = current_gl_info()
    finally:
        offscreen._platform.make_uncurrent()
    return offscreen, info


def _set_msaa_samples(renderer, samples: int) -> None:
    """Make this pyrender Renderer allocate its multisample framebuffer with `samples` samples."""
    import pyrender.renderer as pr_renderer

    configure = renderer._configure_main_framebuffer

    def configure_with_samples():
        original = pr_renderer.glRenderbufferStorageMultisample
        pr_renderer.glRenderbufferStorageMultisample = lambda target, _samples, fmt, w, h: original(
            target, samples, fmt, w, h
        )
        try:
            configure()
        finally:
            pr_renderer.glRenderbufferStorageMultisample = original

    renderer._configure_main_framebuffer = configure_with_samples
    renderer.msaa_samples = samples
