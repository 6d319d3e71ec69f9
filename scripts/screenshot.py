"""The README's picture of the page: `python scripts/screenshot.py [--out docs/page.png]`.

Starts `dyadic serve` on loopback (harness/serve_process.py), opens the page in headless Chromium
(harness/browser.py) as a first-time visitor would, waits until the avatars have played for a few
seconds and the live numbers have filled in, and saves a PNG of the window.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dyadic.engine.harness.browser import ChromiumPage
from dyadic.engine.harness.serve_process import ServeProcess

VIEWPORT = {"width": 1360, "height": 820}


async def shoot(url: str, out: Path, settle_s: float) -> None:
    async with ChromiumPage(url) as page:
        assert page.page is not None
        await page.page.set_viewport_size(VIEWPORT)
        await page.wait_connected()
        await page.page.wait_for_function("() => window.dyadic.frames().length > 0", timeout=60_000)
        await asyncio.sleep(settle_s)  # the latency panel needs a few seconds of joined frames
        await page.page.screenshot(path=str(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/page.png", help="where the PNG goes (default: %(default)s)")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds of playing before the shot (default: 8)")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with ServeProcess() as server:
        asyncio.run(shoot(server.url, out, args.settle))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
