"""Browser tests: the whole app served live, driven in Debian's Chromium by Playwright.

- `live`: one uvicorn server of the full app (authorization on, the demo
  clinic loaded) on a free loopback port, in a thread, for the browser tests; beside
  it a real Celery worker, an SMTP server and one local HTTP stand-in that
  plays the web push service (tests/integration/notify_support.py), so a push
  the server sends can be captured and handed to the browser.
- `browser`: one Chromium (`/usr/bin/chromium`, which `make test` installs with
  apt-get) for the browser tests; `page`: a fresh context and page per test (1280 px
  wide, English).
- `axe(page)`: axe-core (bundled in axe-playwright-python, nothing fetched)
  with the WCAG 2.0/2.1/2.2 A and AA tags; zero violations or the test fails
  with axe's report.
- `fits(page)`: no horizontal scroll; `screenshots(page, name)`: the page at
  320 px and 1280 px in test-artifacts/screenshots/ (each width also checked
  for horizontal scroll); `zoomed(page)`: 200% zoom of a 1280 px window.
- `sign_in(page, ...)`: through the portal's sign-in (the authorization
  server's pages), as the demo patient by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from fhir_server.app import create_app
from fhir_server.auth.demo_access import DemoAccess
from fhir_server.demo import prepare_demo
from fhir_server.settings import Settings
from tests.integration.notify_support import (
    SmtpHandler,
    StandIns,
    Worker,
    free_port,
    short_tmp,
    start_smtp,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# As root in a container with no network but the registries: no sandbox, no GPU, and no
# background calls to Google's services (refused here, many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDE, NARROW = 1280, 320


@dataclass
class Live:
    """The running server and what a test needs to reach it."""

    url: str  # http://127.0.0.1:<port>, no trailing slash
    settings: Settings
    access: DemoAccess
    push_service: StandIns
    smtp: SmtpHandler


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own
        return


async def _load_demo(settings: Settings) -> DemoAccess:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        auth = application.state.auth
        result = await prepare_demo(
            application.state.services.store, auth.store, settings, datetime.now(UTC)
        )
    assert result.access is not None
    return result.access


# Package scope: the server, its worker and the browser end with the browser tests, and
# Playwright's event loop leaves the main thread before the tests that run their own.
@pytest.fixture(scope="package")
def live(settings_factory: Callable[..., Settings]) -> Iterator[Live]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    smtp = SmtpHandler()
    controller = start_smtp(smtp)
    push_service = StandIns()
    settings = settings_factory(
        public_base_url=f"{url}/fhir",
        auth_enabled=True,
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_starttls=False,
        notify_timezone="Europe/Paris",
        # the push stand-in listens on loopback, which the server otherwise refuses to call
        subscription_allowed_hosts=["127.0.0.1"],
    )
    # In a thread of its own: Playwright's sync API may already run a loop in this one.
    with ThreadPoolExecutor(1) as loader:
        access = loader.submit(asyncio.run, _load_demo(settings)).result()
    worker = Worker(settings, short_tmp())
    worker.start()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "live server did not start"
        time.sleep(0.05)
    try:
        yield Live(url, settings, access, push_service, smtp)
    finally:
        server.should_exit = True
        thread.join(30)
        worker.stop()
        push_service.close()
        controller.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian chromium is missing: `make test` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session", autouse=True)
def fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)


def new_context(browser: Browser, locale: str = "en-GB", **options: Any) -> BrowserContext:
    """A context whose pages record any CSP refusal on `page.csp_violations`."""
    context = browser.new_context(locale=locale, viewport={"width": WIDE, "height": 900}, **options)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = new_context(browser)
    try:
        yield watched(context.new_page())
    finally:
        context.close()


def watched(page: Page) -> Page:
    """Keep the console messages that say the Content Security Policy refused something."""
    refusals: list[str] = []
    page.on(
        "console",
        lambda message: (
            refusals.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.csp_violations = refusals  # type: ignore[attr-defined]
    return page


def axe(page: Page) -> None:
    """axe-core on the page as it is now: zero violations of WCAG 2.0-2.2 A and AA."""
    page.evaluate(AXE_SCRIPT)
    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    result = page.evaluate("options => axe.run(document, options)", options)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {n['target']}: {n['failureSummary']}" for n in v["nodes"])
        for v in result["violations"]
    ]
    assert not found, f"axe on {page.url}:\n" + "\n".join(found)


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scroll)."""
    return int(
        page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def fits(page: Page) -> None:
    assert horizontal_overflow(page) <= 0, f"{page.url} scrolls sideways at {page.viewport_size}"


@contextlib.contextmanager
def width(page: Page, pixels: int) -> Iterator[None]:
    before = page.viewport_size or {"width": WIDE, "height": 900}
    page.set_viewport_size({"width": pixels, "height": before["height"]})
    try:
        yield
    finally:
        page.set_viewport_size(before)


def zoomed(page: Page) -> None:
    """At 200% zoom a 1280 px window is 640 CSS px wide: the page must still fit."""
    with width(page, WIDE // 2):
        fits(page)


def screenshots(page: Page, name: str) -> None:
    """`name`-320.png and `name`-1280.png (whole page), each width checked for sideways
    scroll; 200% zoom is checked too."""
    for pixels in (NARROW, WIDE):
        with width(page, pixels):
            fits(page)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{pixels}.png"), full_page=True)
    zoomed(page)


def sign_in(
    page: Page,
    live: Live,
    username: str | None = None,
    password: str | None = None,
    site: str = "portal",
) -> None:
    """Sign in to a site (the portal, or `site="clinic"`) through the authorization server's
    sign-in page, as the demo patient unless told otherwise (no consent page: both sites are
    the clinic's own clients)."""
    page.goto(f"{live.url}/{site}/sign-in")
    page.locator("#username").fill(username or live.access.patient_login)
    page.locator("#password").fill(password or live.access.password)
    page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{live.url}/{site}/**")


def focus_visible(page: Page) -> None:
    """The focused element shows it: an outline or a box shadow (the portal's focus style),
    and it is inside the viewport, not hidden behind anything."""
    shown = page.evaluate(
        """() => {
        const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
        const ringed = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2)
            || s.boxShadow !== 'none';
        const x = Math.min(Math.max(r.left + r.width / 2, 0), innerWidth - 1);
        const y = Math.min(Math.max(r.top + r.height / 2, 0), innerHeight - 1);
        const top = document.elementFromPoint(x, y);
        return {ringed, visible: r.bottom > 0 && r.top < innerHeight,
                onTop: top !== null && (e === top || e.contains(top) || top.contains(e)),
                what: e.outerHTML.slice(0, 120)};
    }"""
    )
    assert shown["ringed"] and shown["visible"] and shown["onTop"], shown


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching `selector` has focus (keyboard-only tests)."""
    target = page.locator(selector).first
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            focus_visible(page)
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector} on {page.url}")
