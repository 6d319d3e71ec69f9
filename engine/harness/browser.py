"""Headless Chromium as the client of `dyadic serve` (tests, benchmarks, profiling).

Debian's `chromium` driven by Playwright through `executable_path` (Playwright's own browser
download is never used). The flags: loopback ICE without mDNS, fake
media devices, autoplay, no background traffic; Playwright gives each launch a fresh profile.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-quic",
]


class BrowserUnavailable(RuntimeError):
    pass


def chromium_path() -> str:
    """The system Chromium (scripts/bootstrap.sh installs Debian's package)."""
    for candidate in (
        os.environ.get("DYADIC_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BrowserUnavailable(
        "no Chromium found: install Debian's `chromium` package (make test does) or set DYADIC_CHROMIUM to its path"
    )


class ChromiumPage:
    """One headless Chromium with the engine's page open: `async with ChromiumPage(url) as page`."""

    def __init__(self, url: str, extra_flags: list[str] | None = None, ignore_https_errors: bool = False):
        self.url = url
        self.ignore_https_errors = ignore_https_errors  # a test server's self-signed certificate
        self.flags = CHROMIUM_FLAGS + list(extra_flags or [])
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self.page: Page | None = None
        self.console: list[str] = []

    async def __aenter__(self) -> ChromiumPage:
        try:
            from playwright.async_api import async_playwright
        except ImportError as exc:
            raise BrowserUnavailable(f"Playwright is not installed ({exc}); it comes with the 'dev' extra") from None
        self._pw = pw = await async_playwright().start()
        self._browser = browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=self.flags
        )  # Playwright gives every launch a fresh, temporary profile
        context = await browser.new_context(ignore_https_errors=self.ignore_https_errors)
        self.page = page = await context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        await page.goto(self.url)
        return self

    async def wait_connected(self, timeout_s: float = 30.0) -> None:
        assert self.page is not None
        await self.page.wait_for_function("() => window.dyadic && window.dyadic.pc", timeout=timeout_s * 1e3)
        await asyncio.wait_for(self.page.evaluate("() => window.dyadic.ready"), timeout_s)

    async def stats(self) -> dict[str, Any]:
        assert self.page is not None
        stats: dict[str, Any] = await self.page.evaluate("() => window.dyadic.stats()")
        return stats

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        assert self.page is not None
        return await self.page.evaluate(script, arg)

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()


async def page_timeline(
    url: str,
    seconds: float,
    period_s: float = 0.5,
    on_first_frame: Callable[[], None] | None = None,
    microphone: bool = False,
    insecure: bool = False,
) -> list[dict[str, Any]]:
    """Open the engine's page at `url`, wait for its first presented frame, then read
    `window.dyadic.stats()` (the page's getStats summary and the server's last telemetry and
    state) every `period_s` for `seconds`; each sample gets "t", this machine's monotonic clock in
    s. `microphone`: pick the browser microphone (Chromium's fake capture device) as a user does.
    `insecure`: accept a self-signed certificate."""
    samples: list[dict[str, Any]] = []
    async with ChromiumPage(url, ignore_https_errors=insecure) as page:
        await page.wait_connected()
        assert page.page is not None  # open since __aenter__
        if microphone:
            await page.page.click("#src-browser-mic")
        await page.page.wait_for_function("() => window.dyadic.frames().length > 0", timeout=60_000)
        if on_first_frame is not None:
            on_first_frame()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sample = await page.stats()
            sample["state"] = await page.evaluate("() => window.dyadic.state")  # the server's last
            sample["t"] = time.monotonic()
            samples.append(sample)
            await asyncio.sleep(period_s)
    return samples
