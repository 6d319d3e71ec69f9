"""The server's clip list: searched and paged on the server, so a page never holds 16,000 clips.

The welcome message carries the first page, the total and the filters' choices (`facets`); the page
asks for the rest with `{"type": "clips", ...}` (protocol.py), one page at a time. A search is a
pass over a list of plain tuples: ~5 ms for 16,000 clips on this project's machine, so it runs on
the event loop like any other message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dyadic.datasets.interaction import InteractionInfo

PAGE = 100  # clips in the welcome message, and per page by default


def vendor_of(info: InteractionInfo) -> str | None:
    """Seamless Interaction's vendor (the id's `V00` prefix); REACT has none."""
    head = info.id.split("_", 1)[0]
    return head if info.dataset == "seamless" and head[:1] == "V" and head[1:].isdigit() else None


@dataclass(frozen=True)
class ClipQuery:
    """A validated `clips` request (protocol.py checks the types and ranges)."""

    text: str = ""  # part of the id, any case
    dataset: str | None = None
    vendor: str | None = None
    fps: float | None = None  # within 0.01
    min_seconds: float | None = None
    max_seconds: float | None = None
    family: str | None = None  # a feature family that must be present
    problems: bool | None = None  # True: only clips with problems; False: only clean ones
    offset: int = 0
    limit: int = PAGE

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ClipQuery:
        return cls(
            text=str(body.get("query") or "").strip().lower(),
            dataset=body.get("dataset"),
            vendor=body.get("vendor"),
            fps=body.get("fps"),
            min_seconds=body.get("min_seconds"),
            max_seconds=body.get("max_seconds"),
            family=body.get("family"),
            problems=body.get("problems"),
            offset=body.get("offset") or 0,  # null, as every other field: the default
            limit=body.get("limit") or PAGE,
        )


class ClipList:
    """Every clip of the catalog as the page shows it, searchable."""

    def __init__(self, infos: list[InteractionInfo], with_model: set[str]):
        self.rows = [self._row(i, with_model) for i in infos]
        self.facets = self._facets()  # for every welcome: the list never changes while serving
        # (lower-case id, dataset, vendor, fps, duration, families, has problems): what a search compares
        self._keys = [
            (r["id"].lower(), r["dataset"], r["vendor"], r["fps"], r["duration"], set(r["features"]), r["problems"] > 0)
            for r in self.rows
        ]

    @staticmethod
    def _row(info: InteractionInfo, with_model: set[str]) -> dict[str, Any]:
        return {
            "id": info.id,
            "dataset": info.dataset,
            "vendor": vendor_of(info),
            "duration": round(info.duration, 2),
            "fps": round(info.fps, 3),
            "features": info.families,
            "problems": len(info.problems),
            "playable": info.n_frames > 0,
            "listener": "model" if info.dataset in with_model else "recorded",
        }

    def __len__(self) -> int:
        return len(self.rows)

    def _facets(self) -> dict[str, list[Any]]:
        """The values each filter can take, for the page's menus."""
        return {
            "datasets": sorted({r["dataset"] for r in self.rows}),
            "vendors": sorted({r["vendor"] for r in self.rows if r["vendor"]}),
            "fps": sorted({r["fps"] for r in self.rows}),
            "features": sorted({f for r in self.rows for f in r["features"]}),
        }

    def search(self, q: ClipQuery) -> tuple[int, list[dict[str, Any]]]:
        """(how many clips match, the page of them from q.offset)."""
        matched = [
            i
            for i, (text, dataset, vendor, fps, seconds, families, troubled) in enumerate(self._keys)
            if q.text in text
            and (q.dataset is None or dataset == q.dataset)
            and (q.vendor is None or vendor == q.vendor)
            and (q.fps is None or abs(fps - q.fps) < 0.01)
            and (q.min_seconds is None or seconds >= q.min_seconds)
            and (q.max_seconds is None or seconds <= q.max_seconds)
            and (q.family is None or q.family in families)
            and (q.problems is None or troubled == q.problems)
        ]
        return len(matched), [self.rows[i] for i in matched[q.offset : q.offset + q.limit]]
