"""The display board in Debian's Chromium: live calls within a second, area filtering, resync after a restart — over
HTTP and over HTTPS by the appliance's mDNS name with the test CA (its event stream and its service worker in a secure
context); Chromium refuses a certificate from another CA or for another name."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from playwright.sync_api import Browser, Page, Playwright, expect
from playwright.sync_api import Error as PlaywrightError

from edge.engine import commands as c
from edge.service import QueueService
from tests.e2e.board.conftest import CHROMIUM, Staff, board_url
from tests.e2e.conftest import HOST, OTHER_HOST, chromium_options, screenshot, trusting_home
from tests.support.appliance import RunningAppliance

pytestmark = pytest.mark.slow


def now_number(page: Page) -> str:
    """The big number on the board."""
    return page.locator("#now-number").inner_text()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_board_of_area_a_shows_a_call_within_a_second_and_ignores_area_b(
    appliance: RunningAppliance, staff: Staff, board_page: Callable[..., Page], scheme: str
) -> None:
    page = board_page(board_url(appliance, "lantai-1"))
    assert page.evaluate("[location.protocol, isSecureContext]") == [f"{scheme}:", True]
    assert now_number(page) == "—"

    staff.enqueue("cs")
    called_b = staff.call_next("4")  # Meja CS 4, lantai-2: not this board's area
    staff.enqueue("teller")
    started = time.monotonic()
    called_a = staff.call_next("1")
    page.wait_for_function("document.getElementById('now-number').textContent === 'A001'", timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    expect(page.locator("#now-counter")).to_have_text("Loket 1")

    assert called_b["ticket_number"] == "B001"
    assert called_a["ticket_number"] == "A001"
    assert "B001" not in page.locator("body").inner_text()

    # A second call moves the first into the recent calls; area B's board shows only B.
    staff.enqueue("teller")
    staff.call_next("2")
    page.wait_for_function("document.getElementById('now-number').textContent === 'A002'", timeout=1000)
    expect(page.locator("#recent li .num")).to_have_text(["A001"])
    other = board_page(board_url(appliance, "lantai-2", lang="en"))
    assert now_number(other) == "B001"
    expect(other.locator(".now-label")).to_have_text("Now Calling")
    assert "A00" not in other.locator("body").inner_text()
    if scheme == "https":
        screenshot(page, "board-https-live")


def test_the_called_number_takes_a_fifth_of_the_screen_height_on_1080p_and_4k(
    appliance: RunningAppliance, staff: Staff, board_page: Callable[..., Page]
) -> None:
    staff.enqueue("teller")
    staff.call_next("1")
    for width, height in ((1920, 1080), (3840, 2160)):
        check_layout(board_page(board_url(appliance, "lantai-1"), viewport={"width": width, "height": height}), height)


def check_layout(page: Page, height: int) -> None:
    """The number is huge, not clipped, and the signage region does not overlap the calls."""
    number = page.locator("#now-number").bounding_box()
    panel = page.locator("#now").bounding_box()
    signage = page.locator("#signage").bounding_box()
    assert number is not None
    assert panel is not None
    assert signage is not None
    assert number["height"] >= 0.2 * height  # cap height ~ 1/5 of the screen: legible from 10 m
    assert panel["x"] <= number["x"]
    assert number["x"] + number["width"] <= panel["x"] + panel["width"]  # never clipped
    assert panel["x"] + panel["width"] <= signage["x"]  # signage sits beside the calls, never over them


ASSET = "/board/static/board.css"
FETCH_PAST_HTTP_CACHE = f"fetch('{ASSET}', {{cache: 'no-store'}}).then(r => r.ok, () => false)"
# `page.wait_for_function` does not await a promise (one returned is truthy at once: a single look, see 747b18c), so
# the predicate starts a cache look when none is running and is true once a finished look found the asset.
IN_WORKER_CACHE = """() => { const probe = window.__cacheProbe ||= { busy: false, seen: false };
  if (!probe.busy) { probe.busy = true; caches.open('qms-board-v1').then(c => c.match('ASSET')).then(
    r => { probe.seen = Boolean(r); probe.busy = false; }, () => { probe.busy = false; }); }
  return probe.seen; }""".replace("ASSET", ASSET)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_after_a_restart_the_board_resyncs_by_itself_and_the_offline_indicator_comes_and_goes(
    appliance: RunningAppliance, staff: Staff, board_page: Callable[..., Page], scheme: str
) -> None:
    staff.enqueue("teller")
    staff.enqueue("teller")
    staff.call_next("1")
    page = board_page(board_url(appliance, "lantai-1"))
    assert now_number(page) == "A001"
    expect(page.locator("#offline")).to_be_hidden()
    # The service worker (secure contexts only) takes the page over; an asset fetched through it is kept.
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    assert page.evaluate(FETCH_PAST_HTTP_CACHE) is True
    page.wait_for_function(IN_WORKER_CACHE)

    appliance.stop()
    expect(page.locator("#offline")).to_be_visible(timeout=5000)
    expect(page.locator("#offline")).to_contain_text("Koneksi terputus")
    assert page.evaluate(FETCH_PAST_HTTP_CACHE) is True  # the service worker serves it while the appliance is down

    # While the server is down the queue moves on (another process on the same database): no event reaches the
    # board, so only a resync can show A002.
    service = QueueService(appliance.data_dir)
    try:
        tickets = [t for t in service.view.state.tickets.values() if t.status == "waiting"]
        service.execute(c.CallTicket(ticket_id=tickets[0].ticket_id, counter_id="3"))
    finally:
        service.stop()
    assert now_number(page) == "A001"

    appliance.start()  # the same port: the page's EventSource reconnects by itself
    expect(page.locator("#now-number")).to_have_text("A002", timeout=10000)
    expect(page.locator("#now-counter")).to_have_text("Loket 3")
    expect(page.locator("#offline")).to_be_hidden()
    expect(page.locator("#recent li .num")).to_have_text(["A001"])

    # And it is live again.
    staff.enqueue("teller")
    staff.call_next("2")
    expect(page.locator("#now-number")).to_have_text("A003", timeout=1000)


@pytest.mark.parametrize("scheme", ["https"])
def test_chromium_refuses_another_cas_certificate_and_another_name(
    appliance: RunningAppliance, browser: Browser, playwright_instance: Playwright, tmp_path: Path
) -> None:
    url = board_url(appliance, "lantai-1")
    assert f"https://{HOST}:" in url
    page = browser.new_page()
    try:
        with pytest.raises(PlaywrightError, match="ERR_CERT_COMMON_NAME_INVALID"):
            page.goto(url.replace(HOST, OTHER_HOST))  # the test CA's certificate, but for another appliance's name
    finally:
        page.close()
    elsewhere = trusting_home(tmp_path / "home", trustme.CA().cert_pem.bytes())  # trusts another CA only
    other = playwright_instance.chromium.launch(executable_path=CHROMIUM, **chromium_options(elsewhere))
    try:
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            other.new_page().goto(url)
    finally:
        other.close()
