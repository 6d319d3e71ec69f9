"""The catalog index: built on first use, kept in the cache, refreshed by reading only what changed,
rebuilt when damaged, and always giving what a scan of every file gives."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from dyadic.datasets import catalog, load_interaction, scan
from dyadic.datasets.catalog import index_location

DEMO, SPLIT = "V00_S0809_I00000582", "V00_S0809_I00000583"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache of this test's own, so each index is built here from nothing."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DYADIC_CACHE", str(folder))
    monkeypatch.delenv("DYADIC_CATALOG", raising=False)  # the default place: under the cache
    return folder


@pytest.fixture
def root(sample_root, tmp_path, cache):
    """A writable copy of the whole sample: extracted and tar Seamless files, and REACT."""
    out = tmp_path / "data"
    shutil.copytree(sample_root, out)
    return out


def _as_read_from_files(root):
    """What a scan of every file (no index) finds: infos and problems."""
    plain = scan(root, index=False)
    return [e.info for e in plain.entries], sorted(plain.problems)


def _same_as_full_scan(found, root):
    infos, problems = _as_read_from_files(root)
    assert [e.info for e in found.entries] == infos
    assert sorted(found.problems) == problems


def _copy_interaction(root, old, new):
    for path in list(root.rglob(f"{old}_P*.*")):
        shutil.copy(path, path.with_name(path.name.replace(old, new)))


def test_built_on_first_use_then_read_back_without_reading_a_file(root, cache):
    first = scan(root)
    assert first.report.location == index_location(root) and first.report.location.is_relative_to(cache)
    assert first.report.read > 0 and first.report.groups_scanned > 0
    _same_as_full_scan(first, root)
    again = scan(root)
    assert again.report.read == 0 and again.report.groups_scanned == 0
    _same_as_full_scan(again, root)
    for entry in again.entries:  # every stored entry loads as the reader's own does
        direct = load_interaction(root, entry.info.id)
        loaded = entry.load()
        assert loaded.n_frames == direct.n_frames and loaded.problems == direct.problems
        for name, channel in direct.speaker.channels.items():
            np.testing.assert_array_equal(loaded.speaker.channels[name], channel)


def test_a_changed_file_is_the_only_one_read_again(root):
    scan(root)
    json_path = next(root.rglob(f"{SPLIT}_P0947.json"))
    data = json.loads(json_path.read_text())
    data["metadata:vad"] = [{"start": 0.0, "end": 999.0}]  # P0947 now talks most: the speaker
    json_path.write_text(json.dumps(data))
    os.utime(json_path, ns=(0, json_path.stat().st_mtime_ns + 10**9))
    found = scan(root)
    assert found.report.read == 1 and found.report.groups_scanned == 1
    _same_as_full_scan(found, root)
    assert load_interaction(root, SPLIT).speaker.participant == "P0947"


def test_added_and_removed_interactions_are_seen(root):
    scan(root)
    _copy_interaction(root, DEMO, "V00_S0809_I00000999")
    added = scan(root)
    assert added.report.read == 6 and added.report.groups_scanned == 1  # 2 NPZ, 2 JSON, 2 MP4 (WAVs are not read)
    assert "V00_S0809_I00000999" in [i.id for i in added.interactions]
    _same_as_full_scan(added, root)
    next(root.rglob("V00_S0809_I00000999_P0947.npz")).unlink()
    removed = scan(root)
    assert removed.report.removed == 1 and removed.report.read == 0
    assert "V00_S0809_I00000999" not in [i.id for i in removed.interactions]
    assert any("V00_S0809_I00000999_P0602A.npz: no partner" in p for p in removed.problems)
    _same_as_full_scan(removed, root)


def test_a_tar_is_read_once_and_its_clips_load_by_seeking(root):
    tar = next(root.rglob("*.tar"))
    first = scan(root)
    members = first.report.read
    again = scan(root)
    assert again.report.read == 0
    clip = next(e for e in again.entries if e.info.id == "V00_S0811_I00000601")
    refs = [ref for bundle in clip.entry().bundles for ref in bundle.files.values()]
    assert refs and all(ref.path == tar and ref.member and ref.offset > 0 for ref in refs)
    assert clip.load().n_frames == load_interaction(root, clip.info.id).n_frames
    tar.write_bytes(b"not a tar at all" * 100)
    broken = scan(root)
    assert broken.report.read == 1 and members > 1
    assert "V00_S0811_I00000601" not in [i.id for i in broken.interactions]
    assert any(p.startswith(f"{tar.name}: not a readable tar") for p in broken.problems)
    _same_as_full_scan(broken, root)


def test_a_damaged_index_is_rebuilt(root, caplog):
    scan(root)
    location = index_location(root)
    location.write_bytes(b"this is not an SQLite file" * 100)
    found = scan(root)
    assert found.report.rebuilt_because and "rebuilt" in caplog.text
    _same_as_full_scan(found, root)


def test_an_index_of_another_version_or_folder_is_rebuilt(root):
    scan(root)
    with sqlite3.connect(index_location(root)) as db:
        db.execute("UPDATE meta SET value = 'catalog-v0' WHERE key = 'version'")
    found = scan(root)
    assert "catalog-v0" in found.report.rebuilt_because and found.report.groups_scanned > 0
    _same_as_full_scan(found, root)


def test_a_damaged_row_is_read_again_from_its_file(root):
    scan(root)
    with sqlite3.connect(index_location(root)) as db:
        db.execute("UPDATE files SET facts = '{\"npz\": 5}' WHERE path LIKE ?", (f"%{DEMO}_P0947.npz",))
        db.execute("UPDATE entries SET info = 'not json'")
        db.execute("DELETE FROM meta WHERE key = 'listing'")
    found = scan(root)
    _same_as_full_scan(found, root)


def test_read_only_data_and_an_unwritable_cache(root, tmp_path, monkeypatch, caplog):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    scan(root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written beside the data
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DYADIC_CACHE", str(blocker))  # the cache folder cannot be made
    found = scan(root)
    assert found.report.location is None and "cannot be kept" in caplog.text
    _same_as_full_scan(found, root)


def test_parallel_reads_give_what_one_process_reads(root, monkeypatch):
    serial = scan(root, workers=1)
    index_location(root).unlink()
    monkeypatch.setattr(catalog, "PARALLEL_FROM", 1)
    parallel = scan(root, workers=2)
    assert parallel.report.read == serial.report.read > 1
    assert [e.info for e in parallel.entries] == [e.info for e in serial.entries]
    assert sorted(parallel.problems) == sorted(serial.problems)


def test_data_index_command_reports_what_it_did(root, cache):
    env = {**os.environ, "DYADIC_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "dyadic.engine.cli", "data", "index", str(root), "--workers", "2"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "6 interaction(s)" in first.stderr and ", 30 read," in first.stderr
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert ", 0 read, 0 gone since the last scan, 0 group(s) scanned" in again.stderr
    assert str(index_location(root)) in again.stderr


def test_one_clip_is_looked_up_without_listing_the_folder_while_its_files_are_unchanged(root):
    scan(root)
    assert catalog.lookup(root, SPLIT).info.id == SPLIT
    assert catalog.lookup(root, f"{SPLIT}_P0947").info.id == SPLIT  # by a participant's file id
    assert catalog.lookup(root, "nope") is None
    assert catalog.lookup(root, None) is None  # the first clip: a scan decides
    npz = next(root.rglob(f"{SPLIT}_P0947.npz"))
    os.utime(npz, ns=(0, npz.stat().st_mtime_ns + 10**9))
    assert catalog.lookup(root, SPLIT) is None  # changed: the caller scans
    scan(root)
    assert catalog.lookup(root, SPLIT) is not None
    shutil.copy(npz, npz.with_name(f"{SPLIT}_P9999.npz"))  # a third participant beside it
    assert catalog.lookup(root, SPLIT) is None
    assert load_interaction(root, SPLIT).id == SPLIT  # found by a scan, which says what it saw
    info = next(i for i in scan(root).interactions if i.id == SPLIT)
    assert any(f"{SPLIT}: 3 participant files" in p for p in info.problems)


def test_a_refresh_rescans_only_the_interactions_touched(root):
    """Adding one interaction rescans its group alone; the others come back from the index as they were."""
    first = scan(root)
    _copy_interaction(root, SPLIT, "V00_S0809_I00000997")
    added = scan(root)
    assert added.report.groups_scanned == 1 and added.report.read == 6
    _same_as_full_scan(added, root)
    with sqlite3.connect(index_location(root)) as db:
        db.execute("UPDATE groups SET files = 'not json' WHERE gid LIKE ?", (f"%{SPLIT}%",))
    npz = next(root.rglob(f"{SPLIT}_P0947.npz"))
    os.utime(npz, ns=(0, npz.stat().st_mtime_ns + 10**9))
    damaged = scan(root)  # the touched group's file list does not decode: every group scanned again
    assert damaged.report.groups_scanned == first.report.groups_scanned + 1
    _same_as_full_scan(damaged, root)


def test_an_entry_listed_before_the_index_changed_still_loads(root):
    """A server lists the catalog once and loads clips for hours: an entry whose stored row was
    replaced by a later refresh is found again."""
    listed = scan(root)
    entry = next(e for e in listed.entries if e.info.id == SPLIT)
    npz = next(root.rglob(f"{SPLIT}_P0947.npz"))
    os.utime(npz, ns=(0, npz.stat().st_mtime_ns + 10**9))
    with sqlite3.connect(index_location(root)) as db:
        db.execute("DELETE FROM entries WHERE id = ?", (SPLIT,))
    assert entry.load().n_frames == load_interaction(root, SPLIT).n_frames


def test_an_unwritable_cache_is_one_clear_error_where_the_sample_is_needed(tmp_path, monkeypatch):
    from dyadic.datasets import DatasetError, default_sample_root

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DYADIC_CACHE", str(blocker / "cache"))
    with pytest.raises(DatasetError, match=r"cannot write the embedded sample under .*a-file/cache.*DYADIC_CACHE"):
        default_sample_root()


def test_a_group_two_processes_both_wrote_is_listed_once(root, monkeypatch):
    """A server and a `data ls` refreshing at once both scan a new interaction: the second write
    replaces the first's rows, whatever the second had read of the index before."""
    scan(root)
    new = "V00_S0809_I00000996"
    _copy_interaction(root, SPLIT, new)
    scan(root)  # the first process writes the new group
    with sqlite3.connect(index_location(root)) as db:  # the second saw neither the files nor the group
        db.execute("DELETE FROM files WHERE path LIKE ?", (f"%{new}%",))
        db.execute("DELETE FROM meta WHERE key = 'listing'")
    stored_groups = catalog._stored_groups
    monkeypatch.setattr(
        catalog, "_stored_groups", lambda db: {g: k for g, k in stored_groups(db).items() if new not in g}
    )
    found = scan(root)
    assert [i.id for i in found.interactions].count(new) == 1
    _same_as_full_scan(found, root)
