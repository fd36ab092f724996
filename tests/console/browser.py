"""Helpers of the browser tests: Debian's Chromium driven by Playwright (never a downloaded
browser), signing in through the login form, and collecting what the page's scripts report."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    sync_playwright,
)

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: Final = ViewportSize(width=1440, height=900)
SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Bounded waits: a step that has not happened by then has failed.
STEP_MS: Final = 10_000


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def screenshots_wanted() -> bool:
    return os.environ.get("XDRSYNC_SCREENSHOTS") == "1"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Session:
    """One signed-in browser context, and the script errors its pages reported."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def no_script_errors(errors: Sequence[str]) -> None:
    """What a page's scripts reported (``Session.errors``): nothing, or the test fails."""
    assert not errors, f"the page's scripts reported errors: {list(errors)}"


def _watch(page: Page, errors: list[str]) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))


def new_session(browser: Browser, base_url: str) -> Session:
    context = browser.new_context(
        base_url=base_url, viewport=VIEWPORT, timezone_id="Europe/Berlin", locale="en-GB"
    )
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    session = Session(context, page)
    _watch(page, session.errors)
    return session


def login(page: Page, live: Any, role: str, next_path: str = "/") -> None:
    """Sign in through the login form as ``role`` of ``live.users``; lands on ``next_path``."""
    login_as(page, *live.users[role], next_path)


def login_as(page: Page, name: str, password: str, next_path: str = "/") -> None:
    """Sign in through the login form as ``name``; lands on ``next_path``."""
    target = "/login" if next_path == "/" else f"/login?next={next_path}"
    page.goto(target)
    page.fill("#username", name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def signed_in(browser: Browser, live: Any, role: str, next_path: str = "/") -> Session:
    session = new_session(browser, live.url)
    login(session.page, live, role, next_path)
    return session


def fetch_status(page: Page, method: str, path: str, body: Any = None, csrf: bool = True) -> int:
    """The status of a ``fetch`` made by the page's own JavaScript (its cookie, its origin),
    with or without the CSRF header read from the page's ``<meta name="csrf-token">``."""
    status: int = page.evaluate(
        """async ([method, path, body, csrf]) => {
            const headers = {"Content-Type": "application/json"};
            if (csrf) headers["X-CSRF-Token"] =
                document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(path, {method, headers, credentials: "same-origin",
                body: body === null ? undefined : JSON.stringify(body)});
            return r.status;
        }""",
        [method, path, body, csrf],
    )
    return status


def fetch_json(page: Page, method: str, path: str, body: Any = None) -> Any:
    """The JSON answer of a ``fetch`` made by the page (with the CSRF header)."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const r = await fetch(path, {method, credentials: "same-origin",
                headers: {"Content-Type": "application/json",
                          "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
                body: body === null ? undefined : JSON.stringify(body)});
            return {status: r.status, body: await r.json().catch(() => null)};
        }""",
        [method, path, body],
    )


def shoot(page: Page, name: str) -> None:
    """A screenshot for the docs, only when XDRSYNC_SCREENSHOTS=1."""
    if not screenshots_wanted():
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toasts')?.replaceChildren()")
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=False)


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "STEP_MS",
    "VIEWPORT",
    "Session",
    "chromium",
    "chromium_available",
    "fetch_json",
    "fetch_status",
    "login",
    "new_session",
    "screenshots_wanted",
    "shoot",
    "signed_in",
]
