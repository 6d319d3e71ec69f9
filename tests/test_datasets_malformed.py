"""Bad input: one clear line naming the file and the field, and everything else still loads."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from dyadic.datasets import DatasetError, find_interactions, load_interaction, scan
from dyadic.datasets.npzio import npz_bytes
from dyadic.datasets.seamless import load_file

DEMO, SPLIT = "V00_S0809_I00000582", "V00_S0809_I00000583"


@pytest.fixture
def root(sample_root, tmp_path):
    """A writable copy of the extracted Seamless sample (no tar, no placeholder)."""
    out = tmp_path / "seamless"
    for path in (sample_root / "seamless").rglob("*"):
        if path.is_file() and path.suffix != ".tar" and "P1694" not in path.name:
            target = out / path.relative_to(sample_root / "seamless")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return out


def _file(root, name):
    return next(root.rglob(name))


def _others_load(root, broken_id):
    infos = find_interactions(root)
    for info in infos:
        if info.id != broken_id:
            interaction = load_interaction(root, info.id)
            assert interaction.n_frames > 0 and interaction.speaker.channels


def test_truncated_npz(root):
    path = _file(root, f"{DEMO}_P0947.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    catalog = scan(root)
    assert DEMO not in [i.id for i in catalog.interactions]
    line = next(p for p in catalog.problems if "P0947.npz" in p and DEMO in p)
    assert "not a readable npz" in line
    assert any(f"{DEMO}_P0602A.npz: no partner" in p for p in catalog.problems)  # its partner: unpaired
    _others_load(root, DEMO)
    with pytest.raises(DatasetError, match=r"P0947.npz"):
        load_file(path)


def test_empty_placeholder_npz(root):
    path = _file(root, f"{SPLIT}_P0947.npz")
    arrays = dict(np.load(path))
    path.write_bytes(npz_bytes({k: v[:0] for k, v in arrays.items()}))
    catalog = scan(root)
    assert f"{SPLIT}_P0947.npz: smplh:body_pose has shape (0, 21, 3): empty placeholder, skipped" in catalog.problems
    _others_load(root, SPLIT)


def test_wrong_shape_key(root):
    path = _file(root, f"{DEMO}_P0947.npz")
    arrays = dict(np.load(path))
    n = len(arrays["smplh:body_pose"])
    arrays["smplh:body_pose"] = arrays["smplh:body_pose"].reshape(n, 63)  # the repo's mock layout
    arrays["movement:FAUValue"] = arrays["movement:FAUValue"][:, :20]
    path.write_bytes(npz_bytes(arrays))
    interaction = load_interaction(root, DEMO)
    lines = [p for p in interaction.problems if "P0947.npz" in p]
    assert f"{DEMO}_P0947.npz: smplh:body_pose has shape ({n}, 63), expected ({n}, 21, 3): left out" in lines
    assert any("movement:FAUValue has shape" in p for p in lines)
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    assert "smplh:body_pose" not in track.channels and "movement:FAUValue" not in track.channels
    assert "smplh:global_orient" in track.channels  # the rest of the file still loads


def test_missing_key(root):
    path = _file(root, f"{DEMO}_P0947.npz")
    arrays = dict(np.load(path))
    del arrays["smplh:is_valid"]
    path.write_bytes(npz_bytes(arrays))
    interaction = load_interaction(root, DEMO)
    assert f"{DEMO}_P0947.npz: smplh:is_valid missing: all frames taken as valid" in interaction.problems


def test_malformed_json(root):
    path = _file(root, f"{DEMO}_P0602A.json")
    path.write_text('{"id": "x", "metadata:vad": [')
    interaction = load_interaction(root, DEMO)
    line = next(p for p in interaction.problems if "P0602A.json" in p)
    assert line.startswith(f"{DEMO}_P0602A.json: not valid JSON")
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0602A"))
    assert track.vad == [] and track.channels  # motion still there


def test_null_word_times_and_bad_segments(root):
    path = _file(root, f"{DEMO}_P0602A.json")
    data = json.loads(path.read_text())
    data["metadata:transcript"][0]["words"][0].update(start=None, end=None)
    data["metadata:transcript"][0]["words"][0].pop("score", None)
    data["metadata:vad"].append({"start": None, "end": 3})
    path.write_text(json.dumps(data))
    interaction = load_interaction(root, DEMO)
    assert [p for p in interaction.problems if "P0602A.json" in p] == [
        f"{DEMO}_P0602A.json: metadata:vad: 1 segment(s) without valid start/end: ignored"
    ]


def test_missing_and_empty_media(root):
    _file(root, f"{DEMO}_P0602A.mp4").unlink()
    wav = _file(root, f"{DEMO}_P0947.wav")
    from dyadic.datasets.media import empty_wav_bytes

    wav.write_bytes(empty_wav_bytes())
    interaction = load_interaction(root, DEMO)
    assert f"{DEMO}_P0602A.mp4: missing: frame rate taken as 30" in interaction.problems
    assert f"{DEMO}_P0947.wav: no audio samples: no audio" in interaction.problems
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    assert len(track.audio()) == 0


def test_tar_with_duplicate_json_and_corrupt_tar(tmp_path, sample_root):
    import tarfile

    tar_path = tmp_path / "0007.tar"
    source = next((sample_root / "seamless").rglob("*.tar"))
    with tarfile.open(source) as src, tarfile.open(tar_path, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()
            if member.name.endswith(".json"):  # a broken copy first: the later, good one must win
                broken = tarfile.TarInfo(member.name)
                broken.size = 7
                dst.addfile(broken, io.BytesIO(b"{broken"))
            dst.addfile(member, io.BytesIO(data))
    (tmp_path / "0008.tar").write_bytes(b"not a tar at all" * 100)
    catalog = scan(tmp_path)
    assert [i.id for i in catalog.interactions] == ["V00_S0811_I00000601"]
    assert any(p.startswith("0008.tar: not a readable tar") for p in catalog.problems)
    interaction = catalog.entries[0].load()
    assert not any(".json" in p for p in interaction.problems)  # the last copy won
    assert interaction.speaker.vad


def test_unknown_clip_id(root):
    with pytest.raises(DatasetError, match=r"'nope'.*available: V00_S0809_I00000582"):
        load_interaction(root, "nope")
    assert load_interaction(root, f"{SPLIT}_P0947").id == SPLIT  # a file id selects its interaction
    assert load_interaction(root).id == DEMO  # None: the first in sorted order


def test_no_data(tmp_path):
    with pytest.raises(DatasetError, match="no Seamless Interaction or REACT"):
        load_interaction(tmp_path)


def test_deeply_nested_json_is_one_line_and_the_scan_goes_on(root):
    path = _file(root, f"{DEMO}_P0602A.json")
    path.write_text("[" * 100_000 + "]" * 100_000)
    interaction = load_interaction(root, DEMO)
    assert f"{DEMO}_P0602A.json: not valid JSON (nested too deeply): no VAD or transcript" in interaction.problems
    _others_load(root, None)


def test_a_fifo_named_npz_is_skipped_not_waited_on(root):
    import os

    fifo = root / "V00_S0809_I00000999_P0001.npz"
    os.mkfifo(fifo)
    catalog = scan(root)  # opening a FIFO would block here forever
    assert "V00_S0809_I00000999_P0001.npz: not a regular file: skipped" in catalog.problems
    _others_load(root, None)


def test_text_and_complex_arrays_are_left_out(root):
    path = _file(root, f"{DEMO}_P0947.npz")
    arrays = dict(np.load(path))
    n = len(arrays["smplh:body_pose"])
    arrays["smplh:global_orient"] = np.full((n, 3), "x")
    arrays["smplh:translation"] = arrays["smplh:translation"].astype(np.complex64)
    path.write_bytes(npz_bytes(arrays))
    interaction = load_interaction(root, DEMO)
    lines = [p for p in interaction.problems if "P0947.npz" in p]
    assert f"{DEMO}_P0947.npz: smplh:global_orient has dtype <U1, expected numbers: left out" in lines
    assert f"{DEMO}_P0947.npz: smplh:translation has dtype complex64, expected numbers: left out" in lines
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    assert "smplh:body_pose" in track.channels  # the rest of the file loads


def test_a_header_that_claims_a_trillion_frames_is_skipped(root):
    import zipfile

    from numpy.lib import format as npy_format

    path = _file(root, f"{SPLIT}_P0947.npz")
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 21, 3)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("smplh:body_pose.npy", header.getvalue())  # the header alone: no data follows
    catalog = scan(root)
    assert any(
        p.startswith(f"{SPLIT}_P0947.npz: smplh:body_pose claims 1000000000000 frames") for p in catalog.problems
    )
    _others_load(root, SPLIT)


def test_a_wav_with_no_channels_means_no_audio(root):
    import struct

    wav = _file(root, f"{DEMO}_P0947.wav")
    data = bytearray(wav.read_bytes())
    struct.pack_into("<H", data, data.find(b"fmt ") + 10, 0)  # nChannels = 0, the rest intact
    wav.write_bytes(bytes(data))
    interaction = load_interaction(root, DEMO)
    assert f"{DEMO}_P0947.wav: header gives 0 channel(s) at 48000 Hz: no audio" in interaction.problems
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    assert len(track.audio()) == 0 and track.channels


def test_nan_infinite_and_absurd_segment_times_are_ignored(root):
    path = _file(root, f"{DEMO}_P0602A.json")
    data = json.loads(path.read_text())
    good = len(data["metadata:vad"])
    data["metadata:vad"] += [
        {"start": float("nan"), "end": 2.0},
        {"start": 1.0, "end": float("inf")},
        {"start": 1.0, "end": 1e30},
        {"start": -5.0, "end": 1.0},
    ]
    path.write_text(json.dumps(data))  # Python writes NaN and Infinity, and reads them back
    interaction = load_interaction(root, DEMO)
    assert f"{DEMO}_P0602A.json: metadata:vad: 4 segment(s) without valid start/end: ignored" in interaction.problems
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0602A"))
    assert len(track.vad) == good and all(0 <= s.start <= s.end < 1e5 for s in track.vad)


def test_absurd_values_are_invalid_frames_said_and_bridged(root):
    path = _file(root, f"{SPLIT}_P0947.npz")
    arrays = dict(np.load(path))
    arrays["smplh:body_pose"][5:9] = 1e30
    arrays["movement:FAUValue"][3, 0] = -1e30
    path.write_bytes(npz_bytes(arrays))
    interaction = load_interaction(root, SPLIT)
    lines = [p for p in interaction.problems if "P0947.npz" in p]
    assert (
        f"{SPLIT}_P0947.npz: smplh:body_pose: 4 frame(s) marked valid hold values beyond +/-1,000,000: "
        "taken as invalid, bridged" in lines
    )
    assert any("movement:FAUValue: 1 frame(s)" in p for p in lines)
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    assert not track.valid["smplh:body_pose"][5:9].any() and track.valid["smplh:body_pose"][10]
    assert max(float(np.abs(a).max()) for a in track.channels.values()) < 1e6


def test_a_1000_fps_mp4_is_taken_as_30(root):
    from fractions import Fraction

    from dyadic.datasets.media import write_mp4

    mp4 = _file(root, f"{DEMO}_P0947.mp4")
    write_mp4(mp4, [np.zeros((16, 16, 3), np.uint8)] * 3, Fraction(1000), (16, 16))
    catalog = scan(root)
    info = next(i for i in catalog.interactions if i.id == DEMO)
    assert f"{DEMO}_P0947.mp4: frame rate 1000 is outside 10-120: taken as 30" in info.problems
    assert load_interaction(root, DEMO).fps in (30.0, 30000 / 1001)  # the partner's or the fallback


def test_an_unreadable_folder_is_named_and_the_rest_loads(root):
    import os
    import shutil
    import subprocess
    import sys

    locked = root / "improvised" / "locked"
    locked.mkdir(parents=True)
    shutil.move(_file(root, f"{SPLIT}_P0947.npz"), locked)
    locked.chmod(0)
    try:
        # root reads any folder: drop the two capabilities that let it, as an ordinary user lacks them
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"] if os.geteuid() == 0 else []
        script = (
            "import json, sys; from dyadic.datasets import scan; c = scan(sys.argv[1]); "
            "print(json.dumps([c.problems, [i.id for i in c.interactions]]))"
        )
        run = subprocess.run(prefix + [sys.executable, "-c", script, str(root)], capture_output=True, timeout=120)
    finally:
        locked.chmod(0o755)
    problems, ids = json.loads(run.stdout)
    assert "improvised/locked: unreadable folder (Permission denied): skipped" in problems
    assert any(p.startswith(f"{SPLIT}_P0602A.npz: no partner file") for p in problems)  # its partner is locked in
    assert DEMO in ids  # the other interactions load


def test_a_wav_that_stops_decoding_after_loading_is_no_audio_with_its_name(root, caplog):
    interaction = load_interaction(root, DEMO)
    track = next(t for t in (interaction.speaker, interaction.listener) if t.file_id.endswith("P0947"))
    _file(root, f"{DEMO}_P0947.wav").write_bytes(b"RIFF" + bytes(40))  # replaced on disk since the load
    with caplog.at_level("WARNING", logger="dyadic.datasets"):
        assert len(track.audio()) == 0
    assert any(r.getMessage().startswith(f"{DEMO}_P0947.wav: audio does not decode") for r in caplog.records)
