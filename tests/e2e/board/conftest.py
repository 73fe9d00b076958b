"""Board tests: Debian's Chromium (Playwright) and httpx against a real `qms-edge serve` on a demo branch, over plain
HTTP or (parametrised `scheme`, tests/e2e/conftest.py) HTTPS with a test CA the browser trusts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright

from edge.auth import load_secret
from edge.web.board.access import Scope, board_path
from tests.e2e.conftest import LanCA, chromium_options, https_ca, page_base
from tests.support import browser as chromium
from tests.support.appliance import RunningAppliance, seed_demo

CHROMIUM, CHROMIUM_ARGS = chromium.CHROMIUM, chromium.CHROMIUM_ARGS
playwright_instance = chromium.playwright_instance  # package-scoped fixtures shared by the browser suites

BRANCH = "jkt-sudirman"
FULL_HD = {"width": 1920, "height": 1080}


@pytest.fixture(scope="session")
def board_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded demo data dir, created once."""
    path = tmp_path_factory.mktemp("board-template") / "data"
    seed_demo(path)
    return path


@pytest.fixture
def data_dir(tmp_path: Path, board_template: Path) -> Path:
    """This test's copy of the demo branch."""
    target = tmp_path / "data"
    shutil.copytree(board_template, target)
    return target


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright, lan_ca: LanCA) -> Iterator[Browser]:
    """Debian's Chromium, headless, trusting the test CA."""
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, **chromium_options(lan_ca.home))
    yield b
    b.close()


@pytest.fixture
def appliance(
    data_dir: Path, scheme: str, lan_ca: LanCA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningAppliance]:
    """This test's own running appliance, over `scheme`."""
    if (ca := https_ca(scheme, lan_ca, monkeypatch)) is not None:
        ca.serve_https(data_dir)
    with RunningAppliance(data_dir) as running:
        yield running


def board_url(appliance: RunningAppliance, area: str | None = None, service: str | None = None, **query: str) -> str:
    """The signed address of a board of this appliance."""
    scope = Scope("area", area) if area else Scope("service", service or "")
    path = board_path(load_secret(appliance.data_dir), BRANCH, scope)
    return page_base(appliance) + path + "".join(f"&{k}={v}" for k, v in query.items())


class Staff:
    """Queue actions through the JSON API, as the counters' agents would."""

    def __init__(self, appliance: RunningAppliance) -> None:
        self.appliance = appliance

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST with the admin's token; the JSON answer."""
        r = httpx.post(
            f"{self.appliance.api}{path}", json=body or {}, headers=self.appliance.headers("admin"), timeout=10
        )
        assert r.status_code in (200, 201), r.text
        return r.json()  # type: ignore[no-any-return]

    def enqueue(self, service_id: str = "teller") -> dict[str, Any]:
        """A new waiting ticket."""
        return self.post("/tickets", {"service_id": service_id})

    def call_next(self, counter_id: str) -> dict[str, Any]:
        """Call the next ticket to a counter; the called ticket."""
        ticket = self.post(f"/counters/{counter_id}/call-next")["ticket"]
        assert ticket is not None
        return ticket  # type: ignore[no-any-return]


@pytest.fixture
def staff(appliance: RunningAppliance) -> Staff:
    """API actions for the test."""
    return Staff(appliance)


@pytest.fixture
def board_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """`board_page(url)` -> a 1080p page showing the board, connected to its stream."""
    contexts = []

    def open_board(url: str, viewport: dict[str, int] = FULL_HD) -> Page:
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("document.body.dataset.online === '1'")
        return page

    yield open_board
    for context in contexts:
        context.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds (fails the test after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.02)
