"""Fewer triangles for live rendering on a CPU: the body decimated, the head left whole.

Why: llvmpipe (Mesa's CPU rasterizer, the renderer wherever there is no GPU) spends about half a
microsecond on every triangle it draws, however few pixels the triangle covers, and at 640x480 most
of the body's triangles cover a few pixels. Measured on 2 cores (bench/render.py, BENCHMARKS.md):
with half of each body's triangles (13904 -> 8970 per avatar, the head whole) the dyad renders in
6.4 ms instead of 7.9 at 640x480, and looks the same (tested: the same silhouettes, a few edge
pixels differ). On a GPU triangles are nearly free, so `dyadic serve` decimates only when GL renders
in software (`DECIMATE_AUTO`), and `dyadic replay` never does.

How: fast-simplification's quadric edge collapses run on each colour region of the rest mesh with
the region's border kept, so colour edges (sleeves, waistband, hairline) stay where they are. Its
collapse history is then replayed as half-edge collapses: every removed vertex merges into one
that stays, at that vertex's own position. The decimated faces therefore index the avatar's own
vertices, and skinning, the face rig and the vertex buffers are unchanged: only the index buffer
is shorter. Triangles that touch the head (the face rig: eyes, lids, lips, brows) are never
decimated.
"""

from __future__ import annotations

import numpy as np

DECIMATE_AUTO = 0.5  # the fraction of body triangles left out when rendering in software
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")
_MIN_REGION_FACES = 64  # smaller regions (a fingernail's worth) are drawn as they are


def is_software_renderer(gl_renderer: str) -> bool:
    """Whether GL_RENDERER names a CPU rasterizer (llvmpipe, softpipe, swrast)."""
    return any(name in gl_renderer.lower() for name in _SOFTWARE_RENDERERS)


def resolve_fraction(decimate: float | str, gl_renderer: str) -> float:
    """The fraction to decimate: a number as given, or "auto": DECIMATE_AUTO in software, else 0."""
    if decimate == "auto":
        return DECIMATE_AUTO if is_software_renderer(gl_renderer) else 0.0
    fraction = float(decimate)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"decimate must be 'auto' or a fraction in [0, 1), not {decimate!r}")
    return fraction


def decimate_faces(
    rest_vertices: np.ndarray,
    faces: np.ndarray,
    fraction: float,
    regions: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """(F', 3) faces over the same vertices, with about `fraction` of the free triangles removed.

    rest_vertices (V, 3); faces (F, 3). `regions` (V,): a region id per vertex (e.g. its colour);
    a triangle whose corners lie in different regions is kept, and so is each region's border.
    `keep` (V,) bool: triangles touching these vertices are kept (the head).
    """
    faces = np.asarray(faces, np.int64)
    if fraction <= 0.0:
        return faces
    import fast_simplification

    n = len(rest_vertices)
    regions = np.zeros(n, np.int64) if regions is None else np.asarray(regions)
    keep = np.zeros(n, bool) if keep is None else np.asarray(keep, bool)
    corner_regions = regions[faces]
    free = (corner_regions[:, 0] == corner_regions[:, 1]) & (corner_regions[:, 1] == corner_regions[:, 2])
    free &= ~keep[faces].any(axis=1)
    kept = [faces[~free]]
    points = np.asarray(rest_vertices, np.float64)
    for region in np.unique(corner_regions[free, 0]):
        part = faces[free & (corner_regions[:, 0] == region)]
        if len(part) < _MIN_REGION_FACES:
            kept.append(part)
            continue
        used, local = np.unique(part, return_inverse=True)
        local = local.reshape(-1, 3)
        _, _, collapses = fast_simplification.simplify(
            points[used], local, target_reduction=fraction, return_collapses=True, preserve_border=True
        )
        merged = used[_survivors(len(used), collapses)[local]]
        distinct = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
        kept.append(merged[distinct])
    return np.concatenate(kept)


def _survivors(n: int, collapses: np.ndarray) -> np.ndarray:
    """(n,) the vertex each vertex ends up merged into; collapses[k] = (kept, removed)."""
    into = np.arange(n)
    if len(collapses):
        into[collapses[:, 1]] = collapses[:, 0]
    while True:  # follow chains (a vertex merged into one merged later) to their end
        further = into[into]
        if np.array_equal(further, into):
            return into
        into = further
