"""Offline replay to MP4 and the `dyadic` command line, on real generated files, real smplx,
real pyrender and real PyAV."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from dyadic.datasets import load_interaction
from dyadic.datasets.interaction import AUDIO_RATE, audio_sample
from dyadic.engine.cli import main
from dyadic.engine.offline.replay import exact_rate, replay


@pytest.fixture(scope="module")
def avatar():
    from dyadic.renderer.avatar import Avatar

    return Avatar()


@pytest.fixture(scope="module")
def renderer(avatar):
    from dyadic.renderer.offscreen import DyadRenderer

    with DyadRenderer(avatar, size=(320, 240)) as r:
        yield r


def decode(path):
    """(video frames, average rate, mono audio float32) of an MP4."""
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, rate, audio


@pytest.mark.parametrize("clip, fps", [("V00_S0809_I00000582", 30), ("V00_S0809_I00000583", 30000 / 1001)])
def test_replay_mp4_matches_the_clip(sample_root, avatar, renderer, tmp_path, clip, fps):
    interaction = load_interaction(sample_root / "seamless", clip)
    assert interaction.fps == pytest.approx(fps)
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=2.0)
    n = round(2.0 * fps)
    assert result.frames == n and result.path.exists()
    assert not (tmp_path / "r.mp4.part").exists()

    frames, rate, audio = decode(result.path)
    assert len(frames) == n  # every frame, none dropped or duplicated
    assert rate == exact_rate(fps)  # 29.97 stays 30000/1001, not 30
    expected = audio_sample(n, fps)
    # AAC works in 1024-sample blocks: the decoded track may end up to one block longer
    assert expected <= len(audio) <= expected + 1024
    assert frames[0].shape == (240, 320, 3)


def test_replay_audio_is_the_speakers_in_sync(sample_root, avatar, renderer, tmp_path):
    interaction = load_interaction(sample_root / "seamless")
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=3.0)
    _, _, audio = decode(result.path)
    source = interaction.speaker.audio()[: audio_sample(result.frames, result.fps)]
    other = interaction.listener.audio()[: len(source)]
    a = audio[: len(source)]
    # the speaker's voice (through lossy AAC), not the listener's
    assert np.corrcoef(a, source)[0, 1] > 0.85
    assert abs(np.corrcoef(a, other)[0, 1]) < 0.5
    # and no offset: the cross-correlation peaks at lag 0 (within 1 ms)
    lags = range(-96, 97)
    window = slice(4800, len(source) - 4800)
    score = [float(np.dot(a[window], np.roll(source, lag)[window])) for lag in lags]
    assert abs(list(lags)[int(np.argmax(score))]) <= AUDIO_RATE // 1000


def test_replay_shows_both_avatars_moving(sample_root, avatar, renderer, tmp_path):
    interaction = load_interaction(sample_root / "seamless")
    result = replay(interaction, tmp_path / "r.mp4", avatar=avatar, renderer=renderer, seconds=2.0)
    frames, _, _ = decode(result.path)
    first, last = frames[0].astype(int), frames[-1].astype(int)
    half = first.shape[1] // 2
    for side in (slice(0, half), slice(half, None)):  # speaker left, listener right
        assert np.abs(first[:, side] - last[:, side]).sum(axis=2).max() > 60


def test_replay_react_clip(sample_root, avatar, renderer, tmp_path):
    interaction = load_interaction(sample_root / "react")
    result = replay(interaction, tmp_path / "react.mp4", avatar=avatar, renderer=renderer, seconds=1.0)
    frames, _, audio = decode(result.path)
    assert len(frames) == 30 and len(audio) >= audio_sample(30, 30.0)


def test_cli_data_ls_table_and_json(sample_root, capsys):
    assert main(["data", "ls", str(sample_root)]) == 0
    out = capsys.readouterr().out
    assert "V00_S0809_I00000582" in out and "29.970" in out and "react" in out
    assert "empty placeholder" in out  # the skipped bundle is reported, named
    assert main(["data", "ls", str(sample_root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = [row["id"] for row in data["interactions"]]
    assert "V01_S0346_I00000725" in ids and len(ids) == 6
    v01 = next(r for r in data["interactions"] if r["id"] == "V01_S0346_I00000725")
    assert not any(g.startswith("movement:") for g in v01["groups"])  # non-V00: no face features
    assert any("P1694" in p for p in data["skipped"])


def test_cli_data_sample_writes_the_react_layout(tmp_path, capsys):
    out = tmp_path / "react_sample"
    assert (
        main(["data", "sample", str(out), "--format", "react", "--interactions", "1", "--seconds", "4", "--seed", "3"])
        == 0
    )
    assert capsys.readouterr().out.strip() == str(out)
    assert list(out.rglob("facial-attributes/speaker/session*/*.npy"))
    assert list(out.rglob("coefficients/listener/session*/*.npy"))


def test_cli_replay_end_to_end(sample_root, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    code = main(
        [
            "replay",
            "V01_S0346_I00000725_P1690",
            "--data",
            str(sample_root),
            "--out",
            str(out),
            "--seconds",
            "1",
            "--size",
            "320x240",
            "-q",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    frames, rate, _ = decode(out)
    assert len(frames) == 30 and rate == exact_rate(30000 / 1001)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["replay", "V99_S0000_I00000000", "--seconds", "1"], "V99_S0000_I00000000"),
        (["data", "ls", "/nonexistent/folder"], "no such folder"),
        (["data", "sample", "/tmp/dyadic-never-written", "--seconds", "1"], "at least 3 s"),
    ],
)
def test_cli_errors_are_one_clear_line(sample_root, capsys, argv, message):
    if argv[0] == "replay":
        argv = argv + ["--data", str(sample_root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dyadic: error:") and message in err[-1]


@pytest.mark.parametrize(
    "argv",
    [["replay", "--size", "640by480"], ["replay", "--seconds", "-1"], ["data", "sample", "x", "--interactions", "0"]],
)
def test_cli_rejects_bad_options(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
