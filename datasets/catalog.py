"""The catalog index: what scanning a data folder found, kept so that the next scan reads only
what changed.

A full scan reads ~24 member headers of every NPZ, the member list of every tar, the frame rate of
every MP4 and the VAD of every JSON: milliseconds per interaction, minutes at the real dataset's
size, on every command. The index keeps, in an SQLite file under the cache (`$DYADIC_CACHE/catalog/`,
named after the folder's real path: the data itself may be read-only):

- `files`: every dataset file's size, mtime and the facts read from it (datasets/facts.py);
- `groups`: the interactions, each group being the files that can affect each other's entries
  (one interaction's bundles and companions; every interaction of a tar together), with the
  entries found (their `InteractionInfo`, and what loading needs) and the problem lines;
- `meta`: the index's version, the folder, and a digest of the last listing.

A scan lists the folder (one stat per file). When the listing's digest is the stored one, the
catalog is read back as it is. Otherwise only the groups holding a new, changed or removed file
are scanned again, from stored facts, reading only the files that are new or changed (in worker
processes when there are many). SQLite (Python's own) rather than a JSON or pickle file: updates
are transactions (a crash mid-write leaves the previous index), a damaged file is detected and
rebuilt, and only changed rows are written. Nothing stored is trusted blindly: an index of
another version or folder is rebuilt, and a fact or entry that does not decode is read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from .cache import sample_cache_dir
from .errors import DatasetError
from .facts import (
    READ,
    FileFacts,
    NpyHeader,
    Rate,
    has_facts,
    members_from_json,
    members_to_json,
    npy_from_json,
    rate_from_json,
    read_all,
    summary_from_json,
    summary_to_json,
)
from .files import DATASET_SUFFIXES, PRESENCE_ONLY, FileRef, Listing, list_files
from .interaction import InteractionInfo

log = logging.getLogger("dyadic.datasets")
INDEX_VERSION = "catalog-v3"
PARALLEL_FROM = 2000  # files to read: fewer are read in this process (about a second's work)
PRUNE_AFTER_S = 30 * 24 * 3600  # an index nobody opened for 30 days (its folder may be gone) is removed
DATASET_ORDER = ("seamless", "react")
T = TypeVar("T")


@dataclass
class Catalog:
    """Everything found under one root: loadable entries (each has `.info`, `.file_ids`,
    `.load()`), sorted Seamless first then REACT, each by id; and one line per skipped file."""

    root: Path
    entries: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report: IndexReport | None = None  # what the catalog index did (None: scanned without one)
    _by_id: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def interactions(self) -> list[InteractionInfo]:
        return [e.info for e in self.entries]

    def find(self, clip_id: str):
        """The entry of an interaction id or of either participant's file id (None: none)."""
        if self._by_id is None:
            self._by_id = {}
            for entry in reversed(self.entries):  # the first entry wins a shared id
                self._by_id.update(dict.fromkeys((entry.info.id, *entry.file_ids), entry))
        return self._by_id.get(clip_id)


class StoredEntry:
    """An interaction as the index keeps it: its info at once; what loading needs (the payload) is
    given, or read from the index when loaded (at 16,000 interactions the payloads are ~50 MB that
    a listing or a server never needs whole)."""

    __slots__ = ("_index", "_payload", "_prefix", "_root", "file_ids", "info")

    def __init__(
        self,
        info: InteractionInfo,
        file_ids: list[str],
        prefix: str,
        payload: str | None = None,
        index: tuple[Path, Path] | None = None,  # (the folder, its index file), to read the payload from
    ):
        self.info, self.file_ids, self._prefix, self._payload = info, file_ids, prefix, payload
        self._root: Path | None = index[0] if index else None
        self._index: Path | None = index[1] if index else None

    def entry(self):
        """The reader's own entry (seamless.SeamlessEntry or react.ReactEntry)."""
        from . import react, seamless

        payload = self._payload if self._payload is not None else self._read_payload()
        if payload is None:  # the index changed since this entry was listed: scan again
            assert self._root is not None
            fresh = indexed_scan(self._root).find(self.info.id)
            if fresh is None:
                raise DatasetError(f"{self.info.id}: no longer found under {self._root}")
            return fresh.entry()
        reader = seamless if self.info.dataset == seamless.DATASET else react
        return reader.entry_from_json(self.info, json.loads(payload), self._prefix)

    def _read_payload(self) -> str | None:
        if self._index is None:
            return None
        try:
            with contextlib.closing(sqlite3.connect(f"{self._index.as_uri()}?mode=ro", uri=True, timeout=5.0)) as db:
                row = db.execute(
                    "SELECT payload FROM entries WHERE id = ? AND rank = ?", (self.info.id, _rank(self.info)[0])
                ).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else row[0]

    def load(self):
        return self.entry().load()


@dataclass
class IndexReport:
    """What one scan through the index did."""

    location: Path | None  # the index file (None: the cache could not be written)
    files: int = 0  # listed
    read: int = 0  # read now: new or changed
    removed: int = 0  # gone since the last scan
    groups_scanned: int = 0  # groups scanned again (0: the listing was the stored one)
    seconds: float = 0.0
    rebuilt_because: str | None = None  # why an existing index was thrown away


# --- facts from the index ---------------------------------------------------------------------


class CachedFacts(FileFacts):
    """Facts from the index (`stored`: absolute path -> its facts in JSON form); what it lacks, or
    cannot decode, is read from the file and stored, and the file's path is added to `changed`."""

    def __init__(self, stored: dict[str, dict[str, Any]]):
        self.stored = stored
        self.changed: set[str] = set()

    def _slot(self, ref: FileRef) -> tuple[str, dict[str, Any]]:
        key = str(ref.path)
        facts = self.stored.setdefault(key, {})
        if ref.member is None:
            return key, facts
        return key, facts.setdefault("member_facts", {}).setdefault(ref.member.rsplit("/", 1)[-1], {})

    def _get(
        self,
        ref: FileRef,
        name: str,
        decode: Callable[[Any], T],
        read: Callable[[], T],
        encode: Callable[[T], Any] = lambda v: v,
    ) -> T:
        key, slot = self._slot(ref)
        if name in slot:
            try:
                return decode(slot[name])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                pass  # damaged: read again
        value = read()
        slot[name] = encode(value)
        self.changed.add(key)
        return value

    def tar_members(self, path: Path) -> dict[str, FileRef]:
        key, slot = self._slot(FileRef(path))
        if "tar_error" in slot:
            raise tarfile.ReadError(slot["tar_error"])
        try:
            return self._get(
                FileRef(path),
                "members",
                lambda v: members_from_json(path, v),
                lambda: READ.tar_members(path),
                members_to_json,
            )
        except (tarfile.TarError, OSError) as exc:
            slot["tar_error"] = str(exc)
            self.changed.add(key)
            raise

    def npz_summary(self, ref: FileRef):
        return self._get(ref, "npz", summary_from_json, lambda: READ.npz_summary(ref), summary_to_json)

    def talk_time(self, ref: FileRef | None, file_id: str) -> float:
        if ref is None:
            return 0.0
        return self._get(ref, "talk", float, lambda: READ.talk_time(ref, file_id))

    def video_fps(self, ref: FileRef | None, file_id: str) -> Rate:
        if ref is None:
            return READ.video_fps(None, file_id)
        return self._get(ref, "fps", rate_from_json, lambda: READ.video_fps(ref, file_id), lambda r: [r[0], r[1]])

    def npy_header(self, path: Path) -> NpyHeader:
        return self._get(
            FileRef(path),
            "npy",
            npy_from_json,
            lambda: READ.npy_header(path),
            lambda h: h if isinstance(h, str) else [list(h[0]), h[1]],
        )


# --- the SQLite file --------------------------------------------------------------------------


def index_location(root: Path) -> Path:
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    folder = os.environ.get("DYADIC_CATALOG")  # the test suite keeps its many small indexes apart
    return (Path(folder) if folder else sample_cache_dir() / "catalog") / f"{digest}.sqlite"


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INT, mtime_ns INT, facts TEXT)",
    "CREATE TABLE IF NOT EXISTS groups (gid TEXT PRIMARY KEY, keys TEXT, problems TEXT, files TEXT)",
    "CREATE TABLE IF NOT EXISTS entries (gid TEXT, rank INT, id TEXT, info TEXT, file_ids TEXT, payload TEXT)",
    "CREATE INDEX IF NOT EXISTS entries_gid ON entries (gid)",
    "CREATE INDEX IF NOT EXISTS entries_id ON entries (id, rank)",
)


class IndexStore:
    """The SQLite file of one folder's index."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.location = index_location(root)
        self.rebuilt_because: str | None = None
        self.db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        self.location.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.location, timeout=30.0)
        for statement in SCHEMA:
            db.execute(statement)
        found = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('version', 'root')").fetchall())
        want = {"version": INDEX_VERSION, "root": str(self.root)}
        if found and found != want:
            db.close()
            raise sqlite3.DatabaseError(f"made by {found.get('version')} for {found.get('root')}")
        if not found:
            with db:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(want.items()))
        return db

    def open(self) -> sqlite3.Connection | None:
        """The index, rebuilt empty when damaged or not this folder's; None when the cache cannot
        be written (the scan then reads every file, as without an index)."""
        try:
            try:
                db = self._connect()
                db.execute("SELECT count(*) FROM files").fetchone()
            except sqlite3.DatabaseError as exc:
                self.rebuilt_because = str(exc)
                log.warning("%s: catalog index unusable (%s): rebuilt", self.location, exc)
                self.location.unlink(missing_ok=True)
                db = self._connect()
            os.utime(self.location)  # last used: see prune()
            self.db = db
            return db
        except (OSError, sqlite3.Error) as exc:
            log.warning("%s: catalog index cannot be kept (%s): every file is read", self.location, exc)
            return None

    def meta(self, key: str) -> str | None:
        assert self.db is not None
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]


def prune(folder: Path, keep: Path) -> None:
    """Remove indexes nobody has opened for PRUNE_AFTER_S (their folders may be long gone)."""
    cutoff = time.time() - PRUNE_AFTER_S
    for old in folder.glob("*.sqlite"):
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


# --- reading files, in parallel ---------------------------------------------------------------


def _read_one(item: tuple[str, bool]) -> tuple[str, dict[str, Any]]:
    path, beside_npz = item
    return path, read_all(Path(path), beside_npz)


def _parallel(fn: Callable[[Any], T], items: list[Any], workers: int, progress: bool | None, unit: str) -> list[T]:
    """fn of each item, in order, by `workers` processes (one: in this one), with a progress bar
    on stderr (`progress` None: only for 500 items or more on a terminal)."""
    from tqdm import tqdm

    show = progress if progress is not None else len(items) >= 500 and sys.stderr.isatty()
    bar = tqdm(total=len(items), desc="indexing", unit=unit, disable=not (show and items), leave=False)
    out: list[T] = []
    try:
        if workers <= 1:
            results: Iterator[T] = map(fn, items)
            pool = None
        else:
            # forkserver: a server process may already run threads, which fork would copy mid-lock
            pool = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))
            results = pool.map(fn, items, chunksize=16)
        for result in results:
            out.append(result)
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


# --- groups -----------------------------------------------------------------------------------


def file_keys(prefix: str, rel: str, facts: dict[str, Any] | None, readers: tuple[Any, Any]) -> list[str]:
    """The interactions a file may take part in: its group keys. A tar's are its members'; one
    that lists none (unreadable, empty) is a group of its own, to carry its problem line."""
    seamless, react = readers
    if rel.endswith(".tar"):
        names = [m[0] for m in (facts or {}).get("members", [])]
        keys = {k for k in map(seamless.group_key, names) if k is not None}
        return sorted(keys) if keys else [f"file:{rel}"]
    tail = rel.rsplit(os.sep, 2)
    own = seamless.group_key(tail[-1])
    if len(tail) < 2 or not tail[-2].startswith("session"):  # not REACT's layout (the cheap test first)
        return [own] if own else []
    parts = (prefix + rel).split(os.sep)  # whole: REACT's layout may begin above the folder listed
    return [k for k in (own, react.group_key(parts)) if k]


def _components(keys_of: dict[str, list[str]], start: set[str]) -> list[tuple[list[str], list[str]]]:
    """The groups (keys, files) reachable from the keys in `start`: files sharing a key are in
    one group (a tar joins all its interactions)."""
    files_of: dict[str, list[str]] = {}
    for rel, its_keys in keys_of.items():
        for key in its_keys:
            files_of.setdefault(key, []).append(rel)
    seen: set[str] = set()
    groups = []
    for first in sorted(start):
        if first in seen or first not in files_of:
            continue
        keys: set[str] = {first}
        files: set[str] = set()
        todo = [first]
        seen.add(first)
        while todo:
            for rel in files_of[todo.pop()]:
                if rel in files:
                    continue
                files.add(rel)
                for key in keys_of[rel]:
                    if key not in seen:
                        seen.add(key)
                        keys.add(key)
                        todo.append(key)
        groups.append((sorted(keys), sorted(files, key=lambda r: r.split(os.sep))))
    return groups


# --- the scan ---------------------------------------------------------------------------------


def indexed_scan(root: Path, workers: int | None = None, progress: bool | None = None) -> Catalog:
    """The catalog of `root` through its index (see the module's docstring)."""
    started = time.monotonic()
    listing = list_files(root)
    store = IndexStore(root)
    db = store.open()
    report = IndexReport(store.location if db is not None else None, files=len(listing.files))
    report.rebuilt_because = store.rebuilt_because
    digest = listing.digest()
    catalog, damaged = None, False
    if db is not None and store.meta("listing") == digest:
        catalog = _read_catalog(db, listing)
        damaged = catalog is None
    if catalog is None:
        workers = workers or os.cpu_count() or 1
        catalog = _rescan(db, listing, workers, progress, report, everything=damaged)
        if catalog is None:  # stored rows outside the groups scanned do not decode: all of them again
            catalog = _rescan(db, listing, workers, progress, report, everything=True)
        assert catalog is not None  # a scan of every group always gives a catalog
        if db is not None:
            try:
                with db:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('listing', ?)", (digest,))
            except sqlite3.Error as exc:
                log.warning("%s: catalog index not updated (%s)", store.location, exc)
    if db is not None:
        db.close()
        prune(store.location.parent, store.location)
    report.seconds = time.monotonic() - started
    catalog.report = report
    return catalog


def lookup(root: Path, clip_id: str | None) -> StoredEntry | None:
    """One interaction (by interaction or file id) straight from the index,
    without listing the folder: when its group's files are unchanged (stat) and the folders that
    hold them have no new file of it. None when the index has no such entry, or cannot vouch for
    it: the caller then scans (which refreshes the index)."""
    location = index_location(root)
    if clip_id is None or not root.is_dir() or not location.is_file():
        return None  # the first clip: one added since may come first, so scan
    try:
        db = sqlite3.connect(f"{location.as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            if db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() != (INDEX_VERSION,):
                return None
            select = "SELECT e.info, e.file_ids, e.payload, g.keys, g.files FROM entries e JOIN groups g USING (gid)"
            by_file_id = f"{select} WHERE EXISTS (SELECT 1 FROM json_each(e.file_ids) WHERE value = ?)"
            row = (
                db.execute(f"{select} WHERE e.id = ?", (clip_id,)).fetchone()
                or db.execute(by_file_id, (clip_id,)).fetchone()
            )
        finally:
            db.close()
        if row is None:
            return None
        info, ids, payload, keys, files = row
        prefix = os.path.join(os.path.abspath(root), "")
        if not _group_unchanged(prefix, set(json.loads(keys)), json.loads(files)):
            return None
        return StoredEntry(InteractionInfo(**json.loads(info)), json.loads(ids), prefix, payload)
    except (sqlite3.Error, TypeError, ValueError, KeyError):
        return None


def _group_unchanged(prefix: str, keys: set[str], files: list[list[Any]]) -> bool:
    readers = _readers()
    known = {rel for rel, _, _ in files}
    for rel, size, mtime in files:
        try:
            info = os.stat(prefix + rel)
        except OSError:
            return False
        if not rel.endswith(PRESENCE_ONLY) and (info.st_size, info.st_mtime_ns) != (size, mtime):
            return False
    for folder in {rel.rpartition(os.sep)[0] for rel in known}:
        try:
            names = os.listdir(prefix + folder)
        except OSError:
            return False
        for name in names:
            rel = f"{folder}{os.sep}{name}" if folder else name
            if name.endswith(DATASET_SUFFIXES) and rel not in known:
                if keys & set(file_keys(prefix, rel, None, readers)):
                    return False  # a new file of this interaction
    return True


def _read_catalog(db: sqlite3.Connection, listing: Listing) -> Catalog | None:
    """The stored catalog (None when a row does not decode: the caller scans again)."""
    try:
        # one JSON text for all rows: 16,000 json.loads calls took 0.3 s, one takes 0.05
        (problems,) = db.execute(
            "SELECT '[' || ifnull(group_concat(problems, ','), '') || ']' "
            "FROM (SELECT problems FROM groups ORDER BY gid)"
        ).fetchone()
        (infos,) = db.execute(
            "SELECT '[' || ifnull(group_concat('[' || info || ',' || file_ids || ']', ','), '') || ']' "
            "FROM (SELECT info, file_ids FROM entries ORDER BY rank, id)"
        ).fetchone()
        where = (listing.root, index_location(listing.root))
        entries = [
            StoredEntry(InteractionInfo(**info), ids, listing.prefix, index=where) for info, ids in json.loads(infos)
        ]
        problems = [line for lines in json.loads(problems) for line in lines]
    except (sqlite3.Error, TypeError, ValueError, KeyError) as exc:
        log.warning("catalog index: a stored entry does not decode (%s): scanned again", exc)
        return None
    return Catalog(listing.root, entries, listing.problems + problems)


def _rescan(
    db: sqlite3.Connection | None,
    listing: Listing,
    workers: int,
    progress: bool | None,
    report: IndexReport,
    everything: bool = False,
) -> Catalog | None:
    """Scan again the groups that hold a new, changed or removed file (`everything`: every group);
    store them. None when the stored groups left as they were do not decode."""
    prefix = listing.prefix
    stored: dict[str, tuple[int, int, bool]] = {}
    if db is not None:
        query = "SELECT path, size, mtime_ns, facts IS NOT NULL FROM files"
        stored = {p: (size, mtime, has) for p, size, mtime, has in db.execute(query)}
    signature = {rel: (size, mtime) for rel, size, mtime in listing.files}
    changed = [rel for rel, sig in signature.items() if rel not in stored or stored[rel][:2] != sig]
    removed = [rel for rel in stored if rel not in signature]
    report.removed = len(removed)
    stored_groups = _stored_groups(db)
    full = everything or db is None or not stored_groups  # nothing kept to reuse: every group

    def wants(rel: str) -> tuple[bool, bool] | None:
        """(beside an NPZ of its stem, to be read) for a file the readers ask about; else None."""
        folder, sep, name = rel.rpartition(os.sep)
        stem, _, suffix = name.rpartition(".")
        beside_npz = f"{folder}{sep}{stem}.npz" in signature
        if not has_facts(f".{suffix}", beside_npz):
            return None
        old = stored.get(rel)
        return beside_npz, old is None or old[:2] != signature[rel] or not old[2]

    # changed tars are read first: their member lists give their groups
    readers = _readers()
    tars = [(prefix + rel, False) for rel in changed if rel.endswith(".tar")]
    fresh_tars = {
        path[len(prefix) :]: facts
        for path, facts in _parallel(_read_one, tars, workers if len(tars) > 1 else 1, progress, "tar")
    }
    old_tars = _stored_facts(db, [rel for rel in removed + changed if rel.endswith(".tar")])
    dirty = {key for rel in removed + changed for key in file_keys(prefix, rel, old_tars.get(rel), readers)}
    dirty |= {key for rel in changed for key in file_keys(prefix, rel, fresh_tars.get(rel), readers)}
    if not full:  # the changed files and the stored groups they touch: no other group can change
        touched = _stored_group_files(db, [gid for gid, keys in stored_groups.items() if keys & dirty])
        full = touched is None
    if full:
        files = list(signature)
    else:
        assert touched is not None
        files = sorted(set(changed) | {rel for rel in touched if rel in signature})
    tar_facts = {**_stored_facts(db, [r for r in files if r.endswith(".tar") and r not in fresh_tars]), **fresh_tars}
    keys_of = {rel: file_keys(prefix, rel, tar_facts.get(rel), readers) for rel in files}
    if full:
        dirty |= {key for keys in keys_of.values() for key in keys}
    groups = _components(keys_of, dirty)
    report.groups_scanned = len(groups)

    wanted = {rel: w for _, group in groups for rel in group if (w := wants(rel)) is not None}
    kept = _stored_texts(db, [rel for rel, (_, read) in wanted.items() if not read])
    fresh_text = {rel: json.dumps(facts) for rel, facts in fresh_tars.items()}
    jobs = [
        GroupJob(
            keys,
            [(rel, *(wanted.get(rel) or (False, False)), fresh_text.get(rel) or kept.get(rel)) for rel in group],
            prefix,
        )
        for keys, group in groups
    ]
    to_read = sum(1 for job in jobs for f in job.files if f[2] and f[0] not in fresh_tars)
    report.read = len(fresh_tars) + to_read
    rows = _parallel(scan_group, jobs, workers if to_read >= PARALLEL_FROM else 1, progress, "group")
    facts_rows = {rel: text for row in rows for rel, text in row.facts.items()}
    facts_rows.update(fresh_text)
    keys_now = {key for keys, _ in groups for key in keys} | dirty
    stale = [gid for gid, keys in stored_groups.items() if keys & keys_now]
    if db is None:
        return _assemble(listing, rows)
    group_files = {keys[0]: json.dumps([[rel, *signature[rel]] for rel in group]) for keys, group in groups}
    _write(db, listing, facts_rows, changed, removed, stale, rows, group_files)
    found = _read_catalog(db, listing)
    return _assemble(listing, rows) if found is None and everything else found


def _readers() -> tuple[Any, Any]:
    from . import react, seamless  # imported here: they bring PyAV, which `import dyadic.datasets` should not

    return seamless, react


@dataclass
class GroupJob:
    """One group to scan: its keys, its files (relative path, beside an NPZ, to read, stored facts
    as JSON text or None) and the folder's prefix. Picklable, for a worker process."""

    keys: list[str]
    files: list[tuple[str, bool, bool, str | None]]
    prefix: str


@dataclass
class GroupRow:
    """A group scanned: what the index stores of it, already as JSON text."""

    gid: str
    keys: str
    problems: str
    entries: list[tuple[int, str, str, str, str]]  # rank, id, info, file ids, payload
    facts: dict[str, str]  # relative path -> facts read now


def scan_group(job: GroupJob) -> GroupRow:
    """Read what the group's files lack, run both readers on them, and serialize the result."""
    seamless, react = _readers()
    stored: dict[str, dict[str, Any]] = {}
    for rel, beside_npz, read, text in job.files:
        path = job.prefix + rel
        facts = None if read else _decode(text)
        if facts is None and has_facts(os.path.splitext(rel)[1], beside_npz):
            facts = read_all(Path(path), beside_npz)
        stored[path] = facts if facts is not None else {}
    cached = CachedFacts(stored)
    cached.changed.update(job.prefix + rel for rel, _, read, text in job.files if read or text is None)
    paths = [Path(job.prefix + rel) for rel, _, _, _ in job.files]
    entries, problems = [], []
    for reader in (seamless, react):
        found, lines = reader.index(paths, cached)
        problems += lines
        entries += [
            (
                *_rank(e.info),
                json.dumps(vars(e.info)),
                json.dumps(e.file_ids),
                json.dumps(reader.entry_to_json(e, job.prefix)),
            )
            for e in found
        ]
    facts = {path[len(job.prefix) :]: json.dumps(stored[path]) for path in cached.changed if stored.get(path)}
    return GroupRow(job.keys[0], json.dumps(job.keys), json.dumps(problems), entries, facts)


def _where_in(db: sqlite3.Connection | None, query: str, values: list[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of `query` (whose `IN ({marks})` takes `values`), 500 values a statement: SQLite
    bounds the parameters of one statement."""
    if db is None:
        return
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


def _stored_facts(db: sqlite3.Connection | None, rels: list[str]) -> dict[str, dict[str, Any]]:
    """Stored facts, decoded (one that does not decode is left out: its file is read again)."""
    rows = _where_in(db, "SELECT path, facts FROM files WHERE path IN ({marks})", rels)
    return {rel: facts for rel, text in rows if (facts := _decode(text)) is not None}


def _stored_texts(db: sqlite3.Connection | None, rels: list[str]) -> dict[str, str]:
    """Stored facts as JSON text (decoded by the worker that scans the group)."""
    return dict(_where_in(db, "SELECT path, facts FROM files WHERE path IN ({marks}) AND facts IS NOT NULL", rels))


def _stored_group_files(db: sqlite3.Connection | None, gids: list[str]) -> list[str] | None:
    """The files the stored groups `gids` were made of (relative paths); None when one of their
    rows does not decode (the caller then scans every group)."""
    out: list[str] = []
    for (text,) in _where_in(db, "SELECT files FROM groups WHERE gid IN ({marks})", gids):
        try:
            out += [str(f[0]) for f in json.loads(text)]
        except (TypeError, ValueError, IndexError, KeyError):
            return None
    return out


def _stored_groups(db: sqlite3.Connection | None) -> dict[str, set[str]]:
    if db is None:
        return {}
    out = {}
    for gid, keys in db.execute("SELECT gid, keys FROM groups"):
        try:
            out[gid] = set(json.loads(keys))
        except (TypeError, ValueError):
            out[gid] = {gid}
    return out


def _write(
    db: sqlite3.Connection,
    listing: Listing,
    facts: dict[str, str],
    changed: list[str],
    removed: list[str],
    stale: list[str],
    rows: list[GroupRow],
    group_files: dict[str, str],
) -> None:
    """One transaction: the files that changed (or whose facts were read), the groups scanned."""
    signature = {rel: (size, mtime) for rel, size, mtime in listing.files}
    touched = sorted((set(changed) | set(facts)) & set(signature))
    file_rows = [(rel, *signature[rel], facts.get(rel)) for rel in touched]
    try:
        with db:
            db.executemany("DELETE FROM files WHERE path = ?", ((rel,) for rel in removed))
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", file_rows)
            # the groups written replace any row of theirs, stale or not: another process (a server
            # and a `data ls` at once) may have written the same group since this one read the index
            gone = sorted(set(stale) | {r.gid for r in rows})
            db.executemany("DELETE FROM entries WHERE gid = ?", ((gid,) for gid in gone))
            db.executemany("DELETE FROM groups WHERE gid = ?", ((gid,) for gid in gone))
            db.executemany(
                "INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?)",
                ((r.gid, r.keys, r.problems, group_files[r.gid]) for r in rows),
            )
            db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", ((r.gid, *e) for r in rows for e in r.entries)
            )
    except sqlite3.Error as exc:
        log.warning("catalog index not updated (%s)", exc)


def _rank(info: InteractionInfo) -> tuple[int, str]:
    """Seamless first, then REACT, each by id."""
    order = DATASET_ORDER.index(info.dataset) if info.dataset in DATASET_ORDER else len(DATASET_ORDER)
    return order, info.id


def _assemble(listing: Listing, rows: list[GroupRow]) -> Catalog:
    """The catalog from groups just scanned (no index to read it back from)."""
    entries = [
        StoredEntry(InteractionInfo(**json.loads(info)), json.loads(ids), listing.prefix, payload)
        for _, _, info, ids, payload in sorted(e for row in rows for e in row.entries)
    ]
    problems = [p for row in sorted(rows, key=lambda r: r.gid) for p in json.loads(row.problems)]
    return Catalog(listing.root, entries, listing.problems + problems)


def _decode(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
