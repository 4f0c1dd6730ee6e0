"""A real headless Chromium for the console's browser tests: the system ``/usr/bin/chromium`` driven by
Playwright (``scripts/install_test_tools.sh`` installs both; never ``playwright install``), pages that record
every browser console error, and screenshots kept as test artifacts: under pytest's temporary directory, and
copied to ``$POINTSMAN_ARTIFACTS`` when that is set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: run scripts/install_test_tools.sh")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_of(browser: Browser, errors: list[str]) -> Iterator[Page]:
    """A fresh page (its own cookies) whose console errors and uncaught exceptions land in ``errors``. A page
    that is itself an error answer (a form shown again with its errors, 400) is the page working; Chromium's
    "Failed to load resource" for that document is not counted, for anything else it is."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    documents: set[str] = set()

    def on_response(resp: Response) -> None:
        if resp.request.is_navigation_request():
            documents.add(resp.url)

    def on_console(msg: ConsoleMessage) -> None:
        own_status = msg.text.startswith("Failed to load resource") and msg.location.get("url") in documents
        if msg.type == "error" and not own_status:
            errors.append(f"{page.url}: {msg.text} ({msg.location.get('url')})")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    try:
        yield page
    finally:
        context.close()


class Screenshots:
    """Full-page screenshots in ``folder``, each also copied to ``$POINTSMAN_ARTIFACTS`` when set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.copy_to = os.environ.get("POINTSMAN_ARTIFACTS")

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.copy_to:
            dest = Path(self.copy_to) / "console-screenshots"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / path.name)
        return path
