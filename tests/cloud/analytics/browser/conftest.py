"""Browser fixtures for the HQ dashboard tests (package-scoped Playwright: it must end with this package)."""

from __future__ import annotations

from tests.support import browser as chromium

playwright_instance = chromium.playwright_instance
browser = chromium.browser
