"""Where dyadic keeps what it makes once and reuses: the sample data, the embedded avatar, the
catalog indexes, the self-signed certificate. `$DYADIC_CACHE`, else `~/.cache/dyadic`."""

from __future__ import annotations

import os
from pathlib import Path


def sample_cache_dir() -> Path:
    base = os.environ.get("DYADIC_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "dyadic"
