"""The clip list at the real dataset's size: searched and paged by the server, never sent whole.

The Chromium test serves a tree of 16,000 interactions (hard links to the files of the sample's V01
interaction, whose NPZs hold 9 arrays, not V00's 24: the server indexes the tree in half the time;
the first 100 with their JSON, WAV and MP4, the rest without, so that "without problems" has
something to find), built and indexed once for this module, its index removed after.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest

from dyadic.datasets.catalog import index_location
from dyadic.datasets.interaction import InteractionInfo
from dyadic.engine.harness.serve_process import ServeProcess
from dyadic.engine.serve.clips import PAGE, ClipList, ClipQuery

TEMPLATE = "V01_S0346_I00000725"
TREE = 16_000
COMPLETE = 100  # interactions with every companion file


def _info(
    id_: str, dataset: str = "seamless", seconds: float = 20.0, fps: float = 30.0, problems=()
) -> InteractionInfo:
    groups = ["smplh:body_pose", "movement:expression"] if dataset == "seamless" else ["face:au"]
    return InteractionInfo(id_, dataset, ["P1", "P2"], int(seconds * fps), fps, groups, list(problems))


def test_search_filters_and_pages():
    infos = [_info(f"V00_S0001_I{k:08d}", seconds=10 + k % 50, problems=["x"] * (k % 3 == 0)) for k in range(1000)]
    infos += [_info("V01_S0002_I00000001", fps=29.97), _info("train/session0/a", dataset="react")]
    clips = ClipList(infos, {"seamless"})
    assert clips.facets == {
        "datasets": ["react", "seamless"],
        "vendors": ["V00", "V01"],
        "fps": [29.97, 30.0],
        "features": ["face", "movement", "smplh"],
    }
    total, page = clips.search(ClipQuery())
    assert total == 1002 and len(page) == PAGE and page[0]["id"] == "V00_S0001_I00000000"
    total, page = clips.search(ClipQuery(offset=1000, limit=50))
    assert total == 1002 and [c["id"] for c in page] == ["V01_S0002_I00000001", "train/session0/a"]
    assert clips.search(ClipQuery(text="i0000099"))[0] == 10  # I00000990-I00000999
    assert clips.search(ClipQuery(dataset="react"))[1][0]["listener"] == "recorded"
    assert clips.search(ClipQuery(vendor="V01", fps=29.97))[0] == 1
    assert clips.search(ClipQuery(family="face"))[0] == 1
    assert clips.search(ClipQuery(problems=True))[0] == 334
    assert clips.search(ClipQuery(problems=False))[0] == 1002 - 334
    assert clips.search(ClipQuery(min_seconds=55, max_seconds=59))[0] == 5 * 20
    assert clips.search(ClipQuery(text="nothing like it"))[0] == 0
    nulls = ClipQuery.from_body({"type": "clips", "query": None, "offset": None, "limit": None, "fps": None})
    assert clips.search(nulls) == clips.search(ClipQuery())  # null is "any", as the protocol says


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from dyadic.datasets import default_sample_root

    files = sorted(default_sample_root().glob(f"seamless/**/{TEMPLATE}_P*.*"))
    root = tmp_path_factory.mktemp("clips16k")
    for k in range(TREE):
        folder = root / "improvised" / "train" / f"{k // 10000:04d}" / f"{(k // 100) % 100:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            if k < COMPLETE or f.suffix == ".npz":
                os.link(f, folder / f.name.replace(TEMPLATE, f"V01_S9000_I{k:08d}"))
    yield root
    index_location(root).unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)


def test_the_page_searches_and_pages_16000_clips(tree):
    server = ServeProcess("--data", str(tree), "--model", "none")
    try:
        asyncio.run(_page_session(server, tree))
    finally:
        server.stop()


async def _page_session(server: ServeProcess, tree) -> None:
    from dyadic.engine.harness.browser import ChromiumPage

    welcome = await _welcome(server.ws)
    assert welcome["clips_total"] == TREE and len(welcome["clips"]) == PAGE
    assert len(json.dumps(welcome)) < 64_000  # was 1.75 MB with every clip in it
    async with ChromiumPage(server.url) as page:
        await page.page.wait_for_function(f"() => window.dyadic.clips().total === {TREE}", timeout=60_000)
        assert await page.evaluate("() => document.querySelectorAll('#clip-list .clip[data-clip]').length") == PAGE
        await page.page.click("#clip-list .more")  # the next page
        await page.page.wait_for_function(f"() => window.dyadic.clips().clips.length === {2 * PAGE}")
        await page.page.fill("#clip-filter", "I0001234")  # I00012340-I00012349
        await page.page.wait_for_function("() => window.dyadic.clips().total === 10", timeout=10_000)
        await page.page.fill("#clip-filter", "")
        await page.page.select_option("#clip-problems", "false")  # the complete ones only
        await page.page.wait_for_function(f"() => window.dyadic.clips().total === {COMPLETE}", timeout=10_000)
        text = await page.evaluate("() => document.getElementById('clip-count').textContent")
        assert text.startswith(f"{COMPLETE} clips")
        ids = await page.evaluate("() => window.dyadic.clips().clips.map((c) => c.id)")
        assert ids == [f"V01_S9000_I{k:08d}" for k in range(COMPLETE)]


async def _welcome(url: str) -> dict:
    import websockets

    async def reply(ws, kinds: tuple[str, ...]) -> dict:
        while True:  # telemetry may come in between
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg["type"] in kinds:
                return msg

    async with websockets.connect(url, max_size=2**20) as ws:  # a Python client's default limit
        welcome = await reply(ws, ("welcome",))
        await ws.send(json.dumps({"type": "clips", "limit": 0}))
        error = await reply(ws, ("error", "clips"))
        assert error["type"] == "error" and "'limit' must be a whole number from 1 to 500" in error["message"]
        await ws.send(json.dumps({"type": "clips", "query": "I0000005", "seq": 7}))
        found = await reply(ws, ("error", "clips"))
        assert found["type"] == "clips" and found["seq"] == 7 and found["total"] == 10
        return welcome
