"""Debian's Chromium under Playwright for the browser tests: launch settings, package-scoped fixtures, and signing a
page in to the hub console through its sign-in form.

Package scope on purpose: Playwright's sync API keeps an event loop running in the main thread while it lives, which
breaks every later asyncio test; it must end with the package that uses it. A missing browser fails the tests
(`make system-deps` installs it) instead of skipping them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

# Assertions wait for their condition; 5 s (the default) is tight when a login's argon2 hash shares 2 busy cores.
expect.set_options(timeout=15_000)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    """One Playwright driver for the package."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian's chromium package)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


def shot(page: Page, name: str) -> None:
    """Photograph the whole page to docs/screenshots/`name`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def submit_sign_in(page: Page, username: str, password: str) -> None:
    """Fill the hub console's sign-in form shown on `page` and submit it (the caller expects what follows)."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin")


def sign_in_to_console(page: Page, hub: str, username: str, password: str, lang: str = "en") -> Page:
    """Sign `page` in to the hub console at `hub` through its sign-in page in `lang`; returns it on the overview."""
    page.goto(f"{hub}/lang/{lang}?next=/signin")
    submit_sign_in(page, username, password)
    page.wait_for_url(f"{hub}/")
    return page


def console_page(browser: Browser, hub: str, username: str, password: str, lang: str = "en", *, width: int = 1280,
                 height: int = 900) -> Page:  # fmt: skip
    """A new browser context (`lang`'s locale, a `width` x `height` window) signed in to the hub console; the caller
    closes it with `page.context.close()`."""
    locale = "id-ID" if lang == "id" else "en-US"
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    return sign_in_to_console(context.new_page(), hub, username, password, lang)


def basic_auth_page(browser: Browser, username: str, password: str, *, width: int = 1280, height: int = 900) -> Page:
    """A new browser context that sends HTTP Basic credentials with every request (as a BI tool or script signs in to
    the hub); the caller closes it with `page.context.close()`."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    context = browser.new_context(extra_http_headers={"Authorization": f"Basic {token}"},
                                  viewport={"width": width, "height": height})  # fmt: skip
    return context.new_page()
