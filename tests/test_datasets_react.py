"""REACT 2025 reader on generated files: pairing, shapes, NaN bridging, resampling to 48 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic.datasets import find_interactions, load_interaction, scan
from dyadic.datasets.media import read_audio
from dyadic.datasets.specs import REACT_SPEC

TRAIN = "train/session0/Camera-2024-06-21-103121-103102"
VAL = "val/session3/Camera-2024-07-17-104338-104241"


def test_pairs_and_shapes(sample_root):
    root = sample_root / "react"
    assert [i.id for i in find_interactions(root)] == [TRAIN, VAL]
    interaction = load_interaction(root, TRAIN)
    assert interaction.dataset == "react" and interaction.fps == 30.0
    assert (interaction.speaker.participant, interaction.listener.participant) == ("speaker", "listener")
    for track in (interaction.speaker, interaction.listener):
        assert set(track.channels) == set(REACT_SPEC.names)
        for name, array in track.channels.items():
            assert array.dtype == np.float32 and array.shape == (600,) + REACT_SPEC[name].shape
    raw = np.load(root / "train/facial-attributes/speaker/session0/Camera-2024-06-21-103121-103102.npy")
    assert raw.shape == (600, 25)
    assert np.array_equal(interaction.speaker.channels["react:au"], raw[:, :15])
    assert set(np.unique(raw[:, :15])) <= {0.0, 1.0}
    assert np.allclose(raw[:, 17:25].sum(1), 1, atol=1e-4)  # expression probabilities


def test_nan_frames_are_bridged(sample_root):
    interaction = load_interaction(sample_root / "react", VAL)
    listener = interaction.listener
    assert (~listener.valid["react:au"]).sum() == 4
    assert all(np.isfinite(a).all() for a in listener.channels.values())
    assert any("NaN/inf: bridged" in p and "listener facial-attributes" in p for p in interaction.problems)


@pytest.mark.parametrize("clip,role,rate", [(TRAIN, "listener", 16_000), (VAL, "speaker", 44_100)])
def test_audio_resampled_to_48k(sample_root, clip, role, rate):
    import av

    interaction = load_interaction(sample_root / "react", clip)
    track = getattr(interaction, role)
    with av.open(str(track.audio_path)) as container:
        assert container.streams.audio[0].rate == rate
    audio = track.audio()
    assert audio.dtype == np.float32
    assert abs(len(audio) - interaction.audio_span(0, interaction.n_frames)[1]) <= 48000 / 30
    native = read_audio(track.audio_path, rate)
    assert (
        np.corrcoef(
            np.abs(audio[: len(audio) // 4800 * 4800]).reshape(-1, 4800).mean(1),
            np.abs(native[: len(native) // rate * rate][: len(audio) // 4800 * rate // 10])
            .reshape(-1, rate // 10)
            .mean(1)[: len(audio) // 4800],
        )[0, 1]
        > 0.95
    )


def test_unpaired_and_bad_npy(sample_root, tmp_path):
    import shutil

    root = tmp_path / "react"
    shutil.copytree(sample_root / "react", root)
    for path in root.rglob("*"):
        if path.is_file() and "listener" in path.parts and "session3" in path.parts:
            path.unlink()
    bad = root / "train/coefficients/listener/session0/Camera-2024-06-21-103121-103102.npy"
    np.save(bad, np.zeros((600, 57), np.float32))
    catalog = scan(root)
    assert [i.id for i in catalog.interactions] == [TRAIN]
    assert f"{VAL}: no listener facial-attributes/coefficients: unpaired, skipped" in catalog.problems
    info = catalog.interactions[0]
    assert any("Camera-2024-06-21-103121-103102.npy: has shape (600, 57)" in p for p in info.problems)
    interaction = load_interaction(root, TRAIN)
    assert "react:3dmm_expression" not in interaction.listener.channels
    assert "react:au" in interaction.listener.channels


def test_truncated_and_lying_npy_headers_name_the_file(sample_root, tmp_path):
    import shutil

    from numpy.lib import format as npy_format

    from dyadic.datasets import DatasetError

    root = tmp_path / "react"
    shutil.copytree(sample_root / "react", root)
    name = "Camera-2024-06-21-103121-103102.npy"
    cut = root / "train/facial-attributes/speaker/session0" / name
    cut.write_bytes(cut.read_bytes()[:-1000])  # the header is whole, the data is not
    with pytest.raises(DatasetError, match=rf"{name}: not a readable \.npy"):
        load_interaction(root, TRAIN)
    lying = root / "val/coefficients/listener/session3/Camera-2024-07-17-104338-104241.npy"
    with open(lying, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 58)})
    catalog = scan(root)
    assert any(
        "Camera-2024-07-17-104338-104241.npy: claims 1000000000000 frames" in p
        for p in catalog.problems + [p for i in catalog.interactions for p in i.problems]
    )


def test_a_bad_react_wav_is_no_audio_and_the_replay_goes_on(sample_root, tmp_path, capsys, decode_mp4):
    import shutil

    from dyadic.engine.cli.main import main

    root = tmp_path / "react"
    shutil.copytree(sample_root / "react", root)
    name = "Camera-2024-06-21-103121-103102.wav"
    (root / "train/audio/speaker/session0" / name).write_bytes(b"RIFF garbage" * 10)
    interaction = load_interaction(root, TRAIN)
    assert any(p.startswith(f"speaker/{name}: unreadable") and p.endswith("no audio") for p in interaction.problems)
    assert len(interaction.speaker.audio()) == 0 and len(interaction.listener.audio()) == 48000 * 20
    out = tmp_path / "clip.mp4"
    args = ["replay", TRAIN, "--data", str(root), "--out", str(out), "--seconds", "0.5", "--size", "160x120", "-q"]
    assert main(args) == 0
    frames, _, audio = decode_mp4(out)
    assert len(frames) == 15 and np.abs(audio).max() < 1e-3  # the speaker's track: silence, said so
    assert f"speaker/{name}: unreadable" in capsys.readouterr().err
