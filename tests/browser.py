"""A real browser for the page tests: the docs site built once per session, served on loopback, opened in headless
Chromium (the system's package) driven by Playwright. Every test that uses it skips, saying why, where Chromium,
Playwright or mkdocs is missing."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "")
                 if p and Path(p).exists()), None)
# the flags the machine's closed network needs (no background connections that would be refused)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def why_not() -> str | None:
    """The reason the browser tests cannot run here, or None."""
    if CHROMIUM is None:
        return "no Chromium (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e .[dev])"
    if not (Path(sys.executable).parent / "mkdocs").exists() and shutil.which("mkdocs") is None:
        return "mkdocs is not installed (pip install -e .[dev])"
    return None


needs_browser = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))


@functools.lru_cache(maxsize=1)
def built_site(tmp: str) -> Path:
    """``mkdocs build --strict`` into ``tmp/site`` (once per session)."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    site = Path(tmp) / "site"
    subprocess.run([str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return site


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - silence the server
        pass


@contextmanager
def served(folder: Path):
    """``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Visit:
    """One page in Chromium: its console errors, page errors, requests that left the site, failed requests."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.errors, self.outside, self.failed = [], [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:", "about:")) else
                self.outside.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(r.url))
        # nothing may leave the machine: a request elsewhere is recorded and refused
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith((base, "data:", "blob:"))
                   else route.abort())

    def open(self, path: str):
        self.page.goto(f"{self.base}/{path}", wait_until="load")
        self.page.wait_for_load_state("networkidle")
        return self.page


@contextmanager
def chromium():
    """A headless Chromium (the system's) under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Pages:
    """Fresh pages of one Chromium on one server of a built site: ``pages(width, height)`` opens a :class:`Visit`;
    :meth:`close` closes every page opened so far (the browser and the server stay)."""

    def __init__(self, browser, base: str):
        self.browser, self.base, self.opened = browser, base, []

    def __call__(self, width: int, height: int = 900) -> Visit:
        visit = Visit(self.browser.new_page(viewport={"width": width, "height": height}), self.base)
        self.opened.append(visit.page)
        return visit

    def close(self) -> None:
        while self.opened:
            self.opened.pop().close()


@contextmanager
def site_pages(site: Path):
    """:class:`Pages` of ``site`` served and one Chromium (a test module's: starting both takes seconds)."""
    with served(site) as base, chromium() as browser:
        pages = Pages(browser, base)
        try:
            yield pages
        finally:
            pages.close()

