"""Browser tests of the staff web app: Debian's Chromium (Playwright) against a real `qms-edge serve`.

The demo branch is seeded once per session and copied per test; each test gets its own running appliance.
Tickets are created through the JSON API (a kiosk's job, not the staff pages').
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support import browser as chromium
from tests.support.appliance import RunningAppliance, seed_demo

CHROMIUM, CHROMIUM_ARGS = chromium.CHROMIUM, chromium.CHROMIUM_ARGS
playwright_instance = chromium.playwright_instance  # package-scoped fixtures shared by the browser suites
browser = chromium.browser

VIEWPORT = {"width": 1366, "height": 768}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def staff_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded demo data dir, created once."""
    path = tmp_path_factory.mktemp("staff-template") / "data"
    seed_demo(path)
    return path


@pytest.fixture
def appliance(tmp_path: Path, staff_template: Path) -> Iterator[RunningAppliance]:
    """This test's own running appliance on a copy of the demo branch."""
    target = tmp_path / "data"
    shutil.copytree(staff_template, target)
    with RunningAppliance(target) as running:
        yield running


class Kiosk:
    """Creates tickets through the API, as a kiosk would."""

    def __init__(self, appliance: RunningAppliance) -> None:
        self.appliance = appliance

    def enqueue(self, service_id: str = "teller", **body: Any) -> dict[str, Any]:
        """A new waiting ticket."""
        r = httpx.post(
            f"{self.appliance.api}/tickets",
            json={"service_id": service_id, **body},
            headers=self.appliance.headers("admin"),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """A ticket as the API sees it."""
        r = httpx.get(f"{self.appliance.api}/tickets/{ticket_id}", headers=self.appliance.headers("admin"), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def kiosk(appliance: RunningAppliance) -> Kiosk:
    """Ticket creation for the test."""
    return Kiosk(appliance)


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Any]:
    """A factory of fresh browser contexts (each its own cookies), closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**kw: Any) -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT, **kw)
        context.set_default_timeout(10_000)  # generous for a loaded CI box; live checks set 1 s themselves
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Page, base_url: str, username: str, password: str = "demo") -> None:  # noqa: S107 - the demo password
    """Sign in through the login form."""
    page.goto(f"{base_url}/staff/login")
    page.get_by_label("Nama pengguna").fill(username)
    page.get_by_label("Kata sandi").fill(password)
    page.get_by_role("button", name="Masuk").click()
    page.wait_for_url(lambda url: "/staff/login" not in url)


@pytest.fixture
def signed_in(appliance: RunningAppliance, new_context: Any) -> Any:
    """`signed_in("agent1")` -> a page of a fresh context, signed in, in Indonesian."""

    def make(username: str, **kw: Any) -> Page:
        page: Page = new_context(**kw).new_page()
        sign_in(page, appliance.base_url, username)
        return page

    return make
