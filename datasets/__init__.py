"""dyadic.datasets: find, list and load recorded dyads (Seamless Interaction, REACT 2025).

    find_interactions(root) -> list[InteractionInfo]      cheap: headers only
    load_interaction(root, clip_id=None) -> Interaction    clip id: interaction id or any file id
    default_sample_root() -> Path                          the generated sample, made on first use
    scan(root) -> Catalog                                  the above plus the problems of skipped files,
                                                           through the folder's catalog index (catalog.py)

Both formats are detected under one root and may coexist. Heavy modules (PyAV, scipy) are imported
on first use so that importing this package stays cheap.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from .cache import sample_cache_dir
from .catalog import Catalog, indexed_scan, lookup
from .errors import DatasetError
from .files import dataset_files
from .interaction import AUDIO_RATE, Interaction, InteractionInfo, MotionSpec, ParticipantTrack, Segment, audio_sample

__all__ = [
    "AUDIO_RATE",
    "Catalog",
    "DatasetError",
    "Interaction",
    "InteractionInfo",
    "MotionSpec",
    "ParticipantTrack",
    "Segment",
    "audio_sample",
    "default_sample_root",
    "find_interactions",
    "load_interaction",
    "sample_cache_dir",
    "scan",
]

SAMPLE_VERSION = "sample-v1"
log = logging.getLogger("dyadic.datasets")
_logged: set[str] = set()  # problem lines already logged by this process


def scan(root: str | Path, *, workers: int | None = None, progress: bool | None = None, index: bool = True) -> Catalog:
    """Walk `root` for both formats; problems of files that were skipped are logged and returned.

    Through the folder's catalog index (catalog.py): only new or changed files are read, by
    `workers` processes (default: one per core), with a progress bar (`progress`; None: when the
    read is long and stderr a terminal). `index=False` reads every file and keeps nothing."""
    from . import react, seamless

    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if index:
        catalog = indexed_scan(root, workers, progress)
    else:
        paths, unreadable = dataset_files(root)
        catalog = Catalog(root, problems=unreadable)
        for reader in (seamless, react):
            entries, problems = reader.index(paths)
            catalog.entries += entries
            catalog.problems += problems
    for line in catalog.problems:
        if line not in _logged:  # a process that scans again (an entry gone from the index) says it once
            _logged.add(line)
            log.warning(line)
    return catalog


def find_interactions(root: str | Path) -> list[InteractionInfo]:
    """The loadable interactions under `root` (per-interaction problems in `.problems`)."""
    return scan(root).interactions


def load_interaction(root: str | Path, clip_id: str | None = None) -> Interaction:
    """Load one interaction: by interaction id, by the file id of either participant, or (None)
    the first one in sorted order."""
    stored = lookup(Path(root).expanduser(), clip_id)  # the index can vouch for it: no scan
    if stored is not None:
        return stored.load()
    catalog = scan(root)
    if not catalog.entries:
        detail = f"; problems: {'; '.join(catalog.problems[:3])}" if catalog.problems else ""
        raise DatasetError(f"{catalog.root}: no Seamless Interaction or REACT interaction found{detail}")
    entry = catalog.entries[0] if clip_id is None else catalog.find(clip_id)
    if entry is None and clip_id is not None:
        skipped = [line for line in catalog.problems if clip_id in line]
        if skipped:  # it is there, but was skipped: say why, not "no such interaction"
            raise DatasetError(f"{clip_id}: skipped: {'; '.join(skipped[:3])}")
    if entry is None:
        available = ", ".join(e.info.id for e in catalog.entries[:5])
        more = f" (and {len(catalog.entries) - 5} more)" if len(catalog.entries) > 5 else ""
        raise DatasetError(f"no interaction or file id {clip_id!r} under {catalog.root}; available: {available}{more}")
    return entry.load()


def default_sample_root() -> Path:
    """The embedded sample (`seamless/` + `react/`), generated deterministically on first use into
    a temporary folder that is renamed into place, so a crash never leaves half a sample."""
    target = sample_cache_dir() / SAMPLE_VERSION
    if target.is_dir():
        return target
    from .sample import generate_default_sample

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{SAMPLE_VERSION}-", dir=target.parent))
    except OSError as exc:
        raise DatasetError(
            f"cannot write the embedded sample under {target.parent} ({exc.strerror or exc}): "
            "set DYADIC_CACHE to a writable folder, or give a data folder"
        ) from None
    try:
        generate_default_sample(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: use theirs
            if not target.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
