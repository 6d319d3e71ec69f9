"""renderer/lod.py: the body's triangles halved for software rendering, the head and colour edges whole."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dyadic.renderer import lod
from dyadic.renderer.avatar import Avatar
from dyadic.renderer.idle import relaxed_pose


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    os.environ.setdefault("DYADIC_CACHE", str(tmp_path_factory.mktemp("dyadic-cache")))
    avatar = Avatar()
    _, regions = np.unique(avatar.vertex_colors, axis=0, return_inverse=True)
    return avatar.vertices(relaxed_pose()), avatar.faces, regions.ravel(), avatar.head_vertex_mask


def _face_set(faces: np.ndarray) -> set:
    return {tuple(sorted(f)) for f in faces.tolist()}


def test_half_the_body_goes_the_head_and_colour_edges_stay(mesh):
    rest, faces, regions, head = mesh
    lean = lod.decimate_faces(rest, faces, 0.5, regions=regions, keep=head)
    assert len(lean) < 0.7 * len(faces)
    assert lean.min() >= 0 and lean.max() < len(rest)
    assert (lean[:, 0] != lean[:, 1]).all() and (lean[:, 1] != lean[:, 2]).all() and (lean[:, 0] != lean[:, 2]).all()
    kept = _face_set(lean)
    corner_regions = regions[faces]
    straddling = (corner_regions != corner_regions[:, :1]).any(axis=1)
    assert _face_set(faces[head[faces].any(axis=1)]) <= kept  # the face rig's triangles, untouched
    assert _face_set(faces[straddling]) <= kept  # sleeves, waistband, hairline where they were
    # deterministic: every render worker of a server draws the same mesh
    np.testing.assert_array_equal(lean, lod.decimate_faces(rest, faces, 0.5, regions=regions, keep=head))


def test_nothing_decimated_at_zero(mesh):
    rest, faces, regions, head = mesh
    np.testing.assert_array_equal(lod.decimate_faces(rest, faces, 0.0, regions=regions, keep=head), faces)


def test_auto_decimates_only_software_rendering():
    assert lod.resolve_fraction("auto", "llvmpipe (LLVM 15.0.6, 256 bits)") == lod.DECIMATE_AUTO
    assert lod.resolve_fraction("auto", "NVIDIA H100 80GB HBM3/PCIe/SSE2") == 0.0
    assert lod.resolve_fraction(0.25, "NVIDIA H100") == 0.25
    for bad in (1.0, -0.1, "most"):
        with pytest.raises(ValueError):
            lod.resolve_fraction(bad, "llvmpipe")


def test_serve_takes_a_fraction_or_auto(capsys):
    from dyadic.engine.cli.main import build_parser

    assert build_parser().parse_args(["serve"]).decimate == "auto"
    assert build_parser().parse_args(["serve", "--decimate", "0"]).decimate == 0.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--decimate", "1"])
    assert "less than 1" in capsys.readouterr().err
