"""The whole dataset's scale: `python bench/scale.py [--sizes 1000,4000,16000] [--keep DIR] [--json FILE]`.

Trees of N interactions made of hard links to the embedded sample's files (the extracted Seamless
layout: `improvised/train/BATCH/ARCHIVE/ID.{npz,json,wav,mp4}`, 100 interactions a folder), and one
of --tar-size interactions in the webdataset tar layout (50 interactions a tar, members copied, WAVs
left out). For
each tree, on this machine, each command as a user runs it (its own process, wall time):

- `dyadic data index DIR` on a folder never indexed (the build, --workers 2), and again after
  adding 100 interactions (the incremental refresh);
- with the index built: `dyadic data ls DIR`, `dyadic replay CLIP --data DIR --seconds 1`, and
  `dyadic serve --data DIR` until it prints its URL (ready), with the size of the first websocket
  message a page then gets.

Budgets (issue 20), at 16,000 interactions: data ls <= 2 s, replay <= 6 s, serve ready <= 3 s,
index build <= 30 s, refresh after adding 100 <= 3 s. The embedded sample (6 interactions) is
measured first, in the same run, as the baseline: this machine's speed drifts by tens of percent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

from dyadic.datasets import default_sample_root
from dyadic.datasets.catalog import index_location
from dyadic.engine.harness.serve_process import ServeProcess

TEMPLATE = "V00_S0809_I00000582"  # the sample's complete interaction (both participants, every file)
TAR_TEMPLATE = "V01_S0346_I00000725"
PER_FOLDER = 100
PER_TAR = 50
BUDGETS = {"data ls": 2.0, "replay --seconds 1": 6.0, "serve ready": 3.0, "index build": 30.0, "refresh +100": 3.0}


def template_files() -> list[Path]:
    found = sorted(default_sample_root().glob(f"seamless/**/{TEMPLATE}_P*.*"))
    if len({p.name for p in found}) != 8:
        raise SystemExit(f"the sample's {TEMPLATE} should have 8 files, found {[p.name for p in found]}")
    return found


def interaction_id(k: int) -> str:
    return f"V00_S{9000 + k // 10000:04d}_I{k:08d}"


def add_linked(root: Path, first: int, count: int) -> None:
    """Interactions first .. first+count-1 as hard links to the template's files."""
    files = template_files()
    for k in range(first, first + count):
        folder = root / "improvised" / "train" / f"{k // 10000:04d}" / f"{(k // PER_FOLDER) % 100:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            os.link(f, folder / f.name.replace(TEMPLATE, interaction_id(k)))


def make_tar_tree(root: Path, count: int) -> None:
    """`count` interactions in webdataset tars of PER_TAR. Members are copies (a tar cannot link),
    so they are TAR_TEMPLATE's (a V01 interaction: 1.1 MB NPZs) without its WAVs, which no scan
    reads: 2.4 GB for 1,000 interactions instead of 9."""
    files = [f for f in sorted(default_sample_root().glob(f"seamless/**/{TAR_TEMPLATE}_P*.*")) if f.suffix != ".wav"]
    for t in range(0, count, PER_TAR):
        folder = root / "improvised" / "train" / f"{t // 10000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / f"{(t // PER_TAR) % 10000:04d}.tar", "w") as tar:
            for k in range(t, min(count, t + PER_TAR)):
                for f in files:
                    tar.add(f, arcname=f.name.replace(TAR_TEMPLATE, interaction_id(k)))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return time.monotonic() - t0


def serve_ready(root: Path) -> tuple[float, int]:
    """Seconds from start to the server's "open http://..." line (it listens, its clip list made),
    and the size in bytes of the first websocket message a page gets (the welcome)."""
    import asyncio

    import websockets

    async def welcome_bytes(url: str) -> int:
        async with websockets.connect(url, max_size=None) as ws:
            return len(await ws.recv())

    t0 = time.monotonic()
    with ServeProcess("--data", str(root), "--model", "none") as server:
        ready = time.monotonic() - t0
        return ready, asyncio.run(welcome_bytes(server.ws))


def measure_tree(root: Path, n: int, env: dict[str, str], repeats: int, tar: bool | None, clip: str = "") -> dict:
    """The timings of one tree (`tar` None: the embedded sample, the baseline: no build, no refresh)."""
    dyadic = [sys.executable, "-m", "dyadic.engine.cli"]
    row: dict = {"interactions": n, "layout": {True: "tar", False: "extracted", None: "the sample"}[tar]}
    row["index build"] = timed(dyadic + ["data", "index", str(root), "--workers", "2", "-q"], env)
    if tar is None:
        del row["index build"]  # built long ago: this was a refresh of nothing
    clip = clip or interaction_id(n // 2)
    out = root.parent / "replay.mp4"
    runs = {"data ls": [], "replay --seconds 1": [], "serve ready": []}
    for _ in range(repeats):
        runs["data ls"].append(timed(dyadic + ["data", "ls", str(root)], env))
        replay = ["replay", clip, "--data", str(root), "--seconds", "1", "--out", str(out), "-q", "--model", "none"]
        runs["replay --seconds 1"].append(timed(dyadic + replay, env))
        ready, row["welcome bytes"] = serve_ready(root)
        runs["serve ready"].append(ready)
    row.update({name: statistics.median(times) for name, times in runs.items()})
    if tar is False:
        add_linked(root, n, 100)
        row["refresh +100"] = timed(dyadic + ["data", "index", str(root), "-q"], env)
        for k in range(n, n + 100):  # back to n, for the next size
            folder = root / "improvised" / "train" / f"{k // 10000:04d}" / f"{(k // PER_FOLDER) % 100:04d}"
            for f in folder.glob(f"{interaction_id(k)}_*"):
                f.unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,4000,16000", help="tree sizes, comma-separated (default: %(default)s)")
    ap.add_argument("--tar-size", type=int, default=1000, help="the tar layout's tree size (0: none; default: 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each timed command (median; default: 3)")
    ap.add_argument("--keep", metavar="DIR", help="build the trees here and keep them (default: a temporary folder)")
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = Path(args.keep or tempfile.mkdtemp(prefix="dyadic-scale-", dir=default_sample_root().parent))
    env = dict(os.environ)
    rows = []
    sample = default_sample_root()  # the baseline, measured in the same run: this machine's speed drifts
    rows.append(measure_tree(sample, 6, env, args.repeats, tar=None, clip=TEMPLATE))
    print(_line(rows[-1]), flush=True)
    try:
        extracted, made = base / "extracted", 0
        for n in sizes:
            add_linked(extracted, made, n - made)
            made = n
            index_location(extracted).unlink(missing_ok=True)  # the build starts from nothing
            rows.append(measure_tree(extracted, n, env, args.repeats, tar=False))
            print(_line(rows[-1]), flush=True)
        if args.tar_size:
            tars = base / "tar"
            make_tar_tree(tars, args.tar_size)
            index_location(tars).unlink(missing_ok=True)
            rows.append(measure_tree(tars, args.tar_size, env, args.repeats, tar=True))
            print(_line(rows[-1]), flush=True)
    finally:
        if not args.keep:
            for tree in (base / "extracted", base / "tar"):
                index_location(tree).unlink(missing_ok=True)
            shutil.rmtree(base, ignore_errors=True)
    largest = max((r for r in rows if r["layout"] == "extracted"), key=lambda r: r["interactions"])
    results = [
        {
            "name": f"{name}, {largest['interactions']} interactions",
            "median": round(largest[name], 3),
            "p95": None,
            "unit": "s",
            "budget": f"<= {budget:g}",
            "ok": largest[name] <= budget,
        }
        for name, budget in BUDGETS.items()
        if name in largest
    ]
    write_json(args.json, {"benchmark": "scale", "machine": machine_info(), "rows": rows, "results": results})
    return 0


def _line(row: dict) -> str:
    cells = ", ".join(f"{k} {row[k]:.2f} s" for k in BUDGETS if k in row)
    return f"{row['interactions']} interactions ({row['layout']}): {cells}; welcome {row['welcome bytes']:,} bytes"


if __name__ == "__main__":
    sys.exit(main())
