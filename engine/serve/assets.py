"""What `dyadic serve` answers to plain HTTP GETs besides /status: the page, three.js, the avatar.

Every path is looked up in a fixed table: nothing from a request reaches the file system.
- the page's own files (client/), ES modules with no build step;
- three.js and the few example modules the page imports, from client/node_modules (npm ci from
  client/package-lock.json), under /vendor/three/ (the page's import map names them);
- /avatar.glb: the avatar the server renders, as glTF (renderer/gltf.py), made on the first request
  in a thread (about a second: it loads the body model) and kept. A user's --body-model is served
  only to this server's own pages (the access policy already refuses other origins), as SMPL-H and
  SMPL-X licences restrict redistribution.
"""

from __future__ import annotations

import asyncio
import importlib.util
import mimetypes
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dyadic.renderer.pose import ARKIT_BLENDSHAPES
from dyadic.renderer.scene import scene_layout

PAGE_FILES = ("index.html", "app.js", "latency.js", "style.css", "scene3d.js")
THREE_FILES = (
    "build/three.module.js",
    "build/three.core.js",
    "examples/jsm/loaders/GLTFLoader.js",
    "examples/jsm/utils/BufferGeometryUtils.js",
    "examples/jsm/utils/SkeletonUtils.js",
    "examples/jsm/controls/OrbitControls.js",
)
THREE_PREFIX = "vendor/three/"
GLB_TYPE = "model/gltf-binary"


def client_dir() -> Path:
    """client/ beside the engine package (editable install) or installed as dyadic.client."""
    beside = Path(__file__).resolve().parents[2] / "client"
    if (beside / "index.html").is_file():
        return beside
    spec = importlib.util.find_spec("dyadic.client")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise FileNotFoundError("the browser page (client/index.html) is not installed")


def three_dir() -> Path:
    return client_dir() / "node_modules" / "three"


def three_problem() -> str | None:
    """Why the page cannot draw in the browser here, or None."""
    missing = [name for name in THREE_FILES if not (three_dir() / name).is_file()]
    if missing:
        return f"three.js is not installed ({three_dir()}: run `npm ci --prefix client`, as make setup does)"
    return None


class _AvatarExport(NamedTuple):
    glb: bytes
    head_centre: np.ndarray  # the "faces" cameras aim at it (renderer/scene.py)


class PageAssets:
    def __init__(self, body_model: str | None):
        self._body_model = body_model
        self._avatar: _AvatarExport | None = None
        self._avatar_lock = asyncio.Lock()

    async def get(self, path: str) -> tuple[bytes, str] | None:
        """(body, content type) for a request path (no query), or None: not found."""
        name = "index.html" if path == "/" else path.lstrip("/")
        if name == "avatar.glb":
            return (await self._export()).glb, GLB_TYPE
        if name in PAGE_FILES:
            file = client_dir() / name
        elif name.startswith(THREE_PREFIX) and name[len(THREE_PREFIX) :] in THREE_FILES:
            file = three_dir() / name[len(THREE_PREFIX) :]
        else:
            return None
        try:
            body = file.read_bytes()
        except FileNotFoundError:
            return None
        return body, f"{mimetypes.guess_type(name)[0] or 'application/octet-stream'}; charset=utf-8"

    async def scene(self, size: tuple[int, int]) -> dict[str, Any]:
        """The scene a page draws in browser mode: the server renderer's layout for `size`, and
        the face weights' names in the order the poses carry them."""
        layout = scene_layout(size, (await self._export()).head_centre).as_json()
        return {**layout, "face_names": list(ARKIT_BLENDSHAPES)}

    async def _export(self) -> _AvatarExport:
        async with self._avatar_lock:
            if self._avatar is None:
                self._avatar = await asyncio.to_thread(_export_avatar, self._body_model)
            return self._avatar


def _export_avatar(body_model: str | None) -> _AvatarExport:
    from dyadic.renderer.avatar import Avatar
    from dyadic.renderer.gltf import avatar_glb
    from dyadic.renderer.offscreen import head_centre

    avatar = Avatar(body_model, torch_threads=None)
    return _AvatarExport(avatar_glb(avatar), head_centre(avatar))
