"""Seamless Interaction reader on generated files: shapes, pairing, frame rates, quirks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dyadic.datasets import audio_sample, find_interactions, load_interaction, scan
from dyadic.datasets.specs import SEAMLESS_SPEC, SMPLH_GROUPS

DEMO, SPLIT, TAR, NON_V00 = ("V00_S0809_I00000582", "V00_S0809_I00000583", "V00_S0811_I00000601", "V01_S0346_I00000725")


@pytest.fixture(scope="module")
def seamless_root(sample_root):
    return sample_root / "seamless"


@pytest.fixture(scope="module")
def loaded(seamless_root):
    return {i.id: load_interaction(seamless_root, i.id) for i in find_interactions(seamless_root)}


def test_index_lists_the_paired_interactions(seamless_root):
    infos = find_interactions(seamless_root)
    assert [i.id for i in infos] == [DEMO, SPLIT, TAR, NON_V00]
    for info in infos:
        assert info.dataset == "seamless" and len(info.participants) == 2 and info.n_frames > 500
        assert info.problems == []
    by_id = {i.id: i for i in infos}
    assert set(by_id[DEMO].groups) == set(SEAMLESS_SPEC.names)
    assert by_id[NON_V00].groups == [g.name for g in SMPLH_GROUPS]


def test_shapes_and_dtypes(loaded):
    for interaction in loaded.values():
        for track in (interaction.speaker, interaction.listener):
            for name, array in track.channels.items():
                assert array.dtype == np.float32
                assert array.shape == (track.n_frames,) + SEAMLESS_SPEC[name].shape
                assert np.isfinite(array).all()
                assert track.valid[name].dtype == bool and track.valid[name].shape == (track.n_frames,)


def test_letter_suffixed_participants_are_kept_opaque(loaded):
    ids = {t.file_id for i in loaded.values() for t in (i.speaker, i.listener)}
    assert f"{DEMO}_P0602A" in ids and f"{TAR}_P1281A" in ids
    assert {i.speaker.participant for i in loaded.values()} | {i.listener.participant for i in loaded.values()} >= {
        "P0602A"
    }


def test_speaker_talks_more(loaded):
    for interaction in loaded.values():
        assert interaction.speaker.talk_time() > interaction.listener.talk_time()


def test_frame_rates_come_from_the_mp4(loaded):
    assert loaded[DEMO].fps == 30.0
    assert loaded[SPLIT].fps == pytest.approx(float(Fraction(30000, 1001)), abs=1e-9)
    assert loaded[TAR].fps == pytest.approx(float(Fraction(45000, 1501)), abs=1e-9)
    assert loaded[NON_V00].fps == pytest.approx(29.97, abs=1e-3)


def test_2997_fps_audio_alignment(loaded):
    interaction = loaded[SPLIT]
    fps = interaction.fps
    assert audio_sample(1000, fps) == round(1000 * 48000 * 1001 / 30000)  # 1601600: exact, no drift
    _s0, s1 = interaction.audio_span(0, interaction.n_frames)
    audio = interaction.speaker.audio()
    assert audio.dtype == np.float32
    assert abs(len(audio) - s1) <= 48000 / fps  # audio and motion durations agree within one frame
    assert abs(len(audio) - s1) <= 1  # the generator writes exactly round(N * 48000 / fps) samples
    assert abs(len(audio) - interaction.n_frames * 48000 / 30) > 0.5 * 48000 / fps  # N/30 drifts (20 s)


def test_pair_split_across_archives(seamless_root, loaded):
    folders = {p.parent.name for p in seamless_root.rglob(f"{SPLIT}_*.npz")}
    assert folders == {"0000", "0001"}
    assert {loaded[SPLIT].speaker.file_id, loaded[SPLIT].listener.file_id} == {f"{SPLIT}_P0602A", f"{SPLIT}_P0947"}


def test_tar_pair_and_duplicate_json_last_wins(seamless_root, loaded):
    import tarfile

    tar = next(seamless_root.rglob("*.tar"))
    names = [m.name for m in tarfile.open(tar)]
    assert len(names) == len(set(names)) + 2  # one stale .json per participant
    interaction = loaded[TAR]
    for track in (interaction.speaker, interaction.listener):
        assert track.vad and track.transcript  # the stale copies have empty lists
        assert track.audio_path is None and len(track.audio()) > 0  # audio read from inside the tar


def test_smplh_invalid_bursts_are_bridged(seamless_root, loaded):
    raw = np.load(next(seamless_root.rglob(f"{SPLIT}_P0602A.npz")))
    invalid = ~raw["smplh:is_valid"]
    assert invalid.any() and (np.abs(raw["smplh:translation"][invalid]) > 1e11).any()  # the sentinel
    track = next(t for t in (loaded[SPLIT].speaker, loaded[SPLIT].listener) if t.file_id.endswith("P0602A"))
    assert (~track.valid["smplh:body_pose"] == invalid).all()
    assert np.abs(track.channels["smplh:translation"]).max() < 100
    # bridged frames lie between their valid neighbours (no garbage, no jumps)
    pose = track.channels["smplh:body_pose"]
    assert np.abs(np.diff(pose, axis=0)).max() < 0.5


def test_unwrapped_axis_angle_is_kept(loaded):
    orient = loaded[DEMO].speaker.channels["smplh:global_orient"]
    norms = np.linalg.norm(orient, axis=1)
    assert norms.max() > np.pi  # not wrapped to <= pi, as in the real data
    assert abs(np.median(orient[:, 0]) - np.pi) < 0.4  # about pi around x: camera frame, y down


def test_movement_blocks(seamless_root, loaded):
    raw = np.load(next(seamless_root.rglob(f"{SPLIT}_P0947.npz")))
    flag = raw["movement:is_valid"]
    assert flag.shape[1:] == (1,) and flag.dtype == np.float32
    bad = np.flatnonzero(flag[:, 0] < 0.5)
    assert len(bad) % 60 == 0 and (bad[::60] % 60 == 0).all()
    assert (raw["movement:FAUValue"][bad] == 0).all()
    track = next(t for t in (loaded[SPLIT].speaker, loaded[SPLIT].listener) if t.file_id.endswith("P0947"))
    assert (~track.valid["movement:FAUValue"] == (flag[:, 0] < 0.5)).all()
    assert (track.channels["movement:FAUValue"][bad].sum(axis=1) > 0).all()  # bridged, not zeros


def test_non_v00_has_no_movement(loaded):
    for track in (loaded[NON_V00].speaker, loaded[NON_V00].listener):
        assert not any(name.startswith("movement:") for name in track.channels)


def test_raw_npz_layout(seamless_root):
    raw = np.load(next(seamless_root.rglob(f"{DEMO}_P0947.npz")))
    n = raw["smplh:body_pose"].shape[0]
    expected = {
        "smplh:body_pose": (n, 21, 3),
        "smplh:left_hand_pose": (n, 15, 3),
        "smplh:global_orient": (n, 3),
        "smplh:translation": (n, 3),
        "smplh:is_valid": (n,),
        "movement:alignment_translation": (n, 2, 3),
        "movement:hypernet_features": (-(-n // 15), 5120),
        "boxes_and_keypoints:keypoints": (n, 133, 3),
        "boxes_and_keypoints:box": (n, 4),
        "movement:FAUValue": (n, 24),
        "movement:is_valid": (n, 1),
    }
    for key, shape in expected.items():
        assert raw[key].shape == shape, key
    assert raw["smplh:is_valid"].dtype == bool and raw["smplh:body_pose"].dtype == np.float32
    fau = raw["movement:FAUValue"]
    assert (fau[:, 16:19] == 0).all() and fau.min() >= 0 and fau.max() <= 2
    translation = raw["smplh:translation"]
    assert (-0.7 <= translation[:, 0]).all() and (translation[:, 0] <= 0.8).all()
    assert (26 <= translation[:, 2]).all() and (translation[:, 2] <= 63).all()
    assert len([k for k in raw.files if k.startswith("movement:")]) == 15


def test_placeholder_is_skipped_with_one_line(seamless_root):
    catalog = scan(seamless_root)
    lines = [p for p in catalog.problems if "P1694" in p]
    assert lines == ["V01_S0346_I00000726_P1694.npz: smplh:body_pose has shape (0, 21, 3): empty placeholder, skipped"]
    placeholder = next(seamless_root.rglob("*P1694.mp4"))
    assert placeholder.stat().st_size == 261 and placeholder.with_suffix(".wav").stat().st_size == 58


def test_transcript_and_vad(loaded):
    track = loaded[DEMO].speaker
    assert all(s.end > s.start for s in track.vad) and track.transcript[0].text
    assert track.speaking(track.vad[0].start + 0.01) and track.duration == pytest.approx(20, abs=0.05)


def test_lenient_root(seamless_root):
    batch = next(seamless_root.rglob(f"{SPLIT}_P0947.npz")).parent.parent  # improvised/dev/0000
    assert [i.id for i in find_interactions(batch)] == [DEMO, SPLIT, TAR]
    catalog = scan(batch / "0001")  # one archive: half of a pair
    assert catalog.entries == []
    assert catalog.problems == [f"{SPLIT}_P0947.npz: no partner file for interaction {SPLIT}: unpaired, skipped"]
