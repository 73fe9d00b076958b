"""The display board in Debian's Chromium: live calls within a second, area filtering, resync after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from edge.engine import commands as c
from edge.service import QueueService
from tests.e2e.board.conftest import Staff, board_url
from tests.support.appliance import RunningAppliance

pytestmark = pytest.mark.slow


def now_number(page: Page) -> str:
    """The big number on the board."""
    return page.locator("#now-number").inner_text()


def test_a_board_of_area_a_shows_a_call_within_a_second_and_ignores_area_b(
    appliance: RunningAppliance, staff: Staff, board_page: Callable[..., Page]
) -> None:
    page = board_page(board_url(appliance, "lantai-1"))
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


def test_after_a_restart_the_board_resyncs_by_itself_and_the_offline_indicator_comes_and_goes(
    appliance: RunningAppliance, staff: Staff, board_page: Callable[..., Page]
) -> None:
    staff.enqueue("teller")
    staff.enqueue("teller")
    staff.call_next("1")
    page = board_page(board_url(appliance, "lantai-1"))
    assert now_number(page) == "A001"
    expect(page.locator("#offline")).to_be_hidden()

    appliance.stop()
    expect(page.locator("#offline")).to_be_visible(timeout=5000)
    expect(page.locator("#offline")).to_contain_text("Koneksi terputus")

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
