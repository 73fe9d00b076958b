"""Debian's Chromium under Playwright for the browser tests: launch settings and package-scoped fixtures.

Package scope on purpose: Playwright's sync API keeps an event loop running in the main thread while it lives, which
breaks every later asyncio test; it must end with the package that uses it. A missing browser fails the tests
(`make system-deps` installs it) instead of skipping them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

# Assertions wait for their condition; 5 s (the default) is tight when a login's argon2 hash shares 2 busy cores.
expect.set_options(timeout=15_000)

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
