"""Debian's Chromium for the appointments browser test (package scope: see tests/support/browser.py)."""

from tests.support.browser import browser, playwright_instance

__all__ = ["browser", "playwright_instance"]
