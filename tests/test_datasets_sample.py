"""The sample-data generator: determinism, the dyadic structure, the cache folder, both formats together."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import dyadic.datasets as ds
from dyadic.datasets import find_interactions, load_interaction
from dyadic.datasets.sample import generate_sample


def _digests(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["seamless", "react"])
def test_deterministic_by_seed(tmp_path, fmt):
    a = _digests(generate_sample(tmp_path / "a", fmt, interactions=1, seconds=3, seed=5))
    b = _digests(generate_sample(tmp_path / "b", fmt, interactions=1, seconds=3, seed=5))
    c = _digests(generate_sample(tmp_path / "c", fmt, interactions=1, seconds=3, seed=6))
    assert a == b and len(a) >= 4
    assert a.keys() == c.keys() and a != c


def test_both_formats_under_one_root(sample_root):
    infos = find_interactions(sample_root)
    assert [i.dataset for i in infos] == ["seamless"] * 4 + ["react"] * 2
    first = load_interaction(sample_root)
    assert first.id == "V00_S0809_I00000582" and first.fps == 30.0 and first.problems == []


def _turns(track):
    return [s for s in track.vad if s.end - s.start > 0.6]


def test_turn_taking_demo(sample_root):
    demo = load_interaction(sample_root, "V00_S0809_I00000582")
    switches = sorted([(s.start, 0) for s in _turns(demo.speaker)] + [(s.start, 1) for s in _turns(demo.listener)])
    changes = sum(a[1] != b[1] for a, b in zip(switches, switches[1:]))
    assert changes >= 4  # lots of turn-taking in the demo


def _listener_reactions(interaction):
    """Per frame: speaker talking?, listener backchannel onset?, listener nod energy."""
    fps, n = interaction.fps, interaction.n_frames
    times = np.arange(n) / fps
    speaking = np.array([interaction.speaker.speaking(t) for t in times])
    backchannels = [s for s in interaction.listener.vad if s.end - s.start < 0.6]
    if interaction.dataset == "seamless":
        pitch = interaction.listener.channels["smplh:body_pose"][:, 14, 0].astype(float)
    else:
        pitch = interaction.listener.channels["react:3dmm_rotation"][:, 0].astype(float)
    velocity = np.abs(np.diff(pitch, prepend=pitch[0]))
    listening = ~np.array([interaction.listener.speaking(t) for t in times])
    return speaking, backchannels, velocity, listening


def test_listener_reacts_in_the_speakers_pauses(sample_root):
    in_pause = total = 0
    nod_pause, nod_speech = [], []  # listener head-pitch speed per frame
    for info in find_interactions(sample_root / "seamless"):  # REACT has no VAD to tell the pauses
        interaction = load_interaction(sample_root, info.id)
        speaking, backchannels, velocity, listening = _listener_reactions(interaction)
        for s in backchannels:
            total += 1
            in_pause += not interaction.speaker.speaking((s.start + s.end) / 2)
        nod_pause += list(velocity[~speaking & listening])
        nod_speech += list(velocity[speaking & listening])
    assert total >= 5 and in_pause / total > 0.8  # backchannels sit in the pauses
    assert np.mean(nod_pause) > 1.5 * np.mean(nod_speech)  # nods too


def test_listener_mirrors_smiles(sample_root):
    interaction = load_interaction(sample_root, "V00_S0809_I00000582")
    au = ds.specs.SEAMLESS_FAU_ORDER.index("AU12")
    smile_s = interaction.speaker.channels["movement:FAUValue"][:, au]
    smile_l = interaction.listener.channels["movement:FAUValue"][:, au]
    lags = range(31)
    corr = [np.corrcoef(smile_s[: len(smile_s) - k], smile_l[k:])[0, 1] for k in lags]
    best = int(np.argmax(corr))
    assert 6 <= best <= 20 and corr[best] > 0.3  # follows 200-650 ms later


def test_jaw_follows_own_speech(sample_root):
    interaction = load_interaction(sample_root, "V00_S0809_I00000582")
    track = interaction.speaker
    audio = track.audio()
    hop = round(48000 / track.fps)
    energy = np.sqrt((audio[: track.n_frames * hop].reshape(-1, hop) ** 2).mean(1))
    jaw = track.channels["movement:FAUValue"][: len(energy), ds.specs.SEAMLESS_FAU_ORDER.index("AU26")]
    assert np.corrcoef(energy, jaw)[0, 1] > 0.5


def test_default_sample_root_is_atomic(tmp_path, monkeypatch):
    import dyadic.datasets.sample as sample

    monkeypatch.setenv("DYADIC_CACHE", str(tmp_path))

    def crash(out):
        (out / "half").write_text("x")
        raise RuntimeError("crash")

    monkeypatch.setattr(sample, "generate_default_sample", crash)
    with pytest.raises(RuntimeError):
        ds.default_sample_root()
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind

    monkeypatch.setattr(sample, "generate_default_sample", lambda out: (out / "seamless").mkdir())
    root = ds.default_sample_root()
    assert root == tmp_path / "sample-v1" and (root / "seamless").is_dir()
    monkeypatch.setattr(sample, "generate_default_sample", crash)
    assert ds.default_sample_root() == root  # present: not regenerated


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, dyadic.datasets; print(any(m in sys.modules for m in ('av', 'scipy', 'torch')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
