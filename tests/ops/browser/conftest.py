"""Debian's Chromium for this package only (Playwright's sync API must end with the package that uses it)."""

from __future__ import annotations

from tests.support.browser import browser, playwright_instance

__all__ = ["browser", "playwright_instance"]
