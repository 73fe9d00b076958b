"""The signage playlist in Debian's Chromium (US-DISP-005): items rotate after their duration, an item outside its
schedule window is not shown (until the window opens), and a board shows only its own area's items.

The page's clock is Playwright's fake clock, paused: the test moves time, so a 5-second slide takes no 5 seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.board.conftest import FULL_HD, board_url
from tests.support.appliance import RunningAppliance

pytestmark = pytest.mark.slow

MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Jakarta"))  # the demo branch's time zone
PLAYLIST: list[dict[str, Any]] = [
    {"kind": "image", "src": "/board/media/one.svg", "seconds": 5, "areas": ["lantai-1"]},
    {"kind": "image", "src": "/board/media/night.svg", "seconds": 2, "start": "18:00", "end": "22:00"},
    {"kind": "image", "src": "/board/media/sunday.svg", "seconds": 2, "days": ["sun"]},
    {"kind": "image", "src": "/board/media/two.svg", "seconds": 3},
    {"kind": "image", "src": "/board/media/floor2.svg", "seconds": 2, "areas": ["lantai-2"]},
    {"kind": "image", "src": "/board/media/morning.svg", "seconds": 4, "days": ["mon"], "start": "09:00",
     "end": "11:00"},
]  # fmt: skip


@pytest.fixture
def boards(browser: Browser, appliance: RunningAppliance) -> Iterator[dict[str, Page]]:
    """Both areas' boards, loaded at Monday 10:00 branch time with their clocks paused; then the playlist arrives."""
    media = appliance.data_dir / "board-media"
    media.mkdir(exist_ok=True)
    for item in PLAYLIST:
        name = item["src"].rsplit("/", 1)[1]
        (media / name).write_text(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 9"><title>{name}</title>'
                                  '<rect width="16" height="9" fill="#0A5BD3"/></svg>')  # fmt: skip
    contexts, pages = [], {}
    for area in ("lantai-1", "lantai-2"):
        context = browser.new_context(viewport=FULL_HD)
        contexts.append(context)
        page = context.new_page()
        page.clock.install(time=MONDAY_10)
        page.goto(board_url(appliance, area))
        expect(page.locator("body")).to_have_attribute("data-online", "1")
        page.clock.pause_at(MONDAY_10 + timedelta(minutes=1))  # from here on only the test moves time
        pages[area] = page
    set_playlist(appliance, PLAYLIST)  # each board starts its rotation now, at the paused instant
    yield pages
    for context in contexts:
        context.close()


def set_playlist(appliance: RunningAppliance, playlist: list[dict[str, Any]]) -> None:
    """Replace the branch's signage playlist through the configuration API, as the branch admin would."""
    headers = appliance.headers("admin")
    body = httpx.get(f"{appliance.api}/config", headers=headers, timeout=10).json()
    config = body.get("config", body)
    config["display"] = {**config.get("display", {}), "playlist": playlist}
    r = httpx.put(f"{appliance.api}/config", json=config, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def showing(page: Page, src: str) -> None:
    """The board's signage shows exactly this item."""
    expect(page.locator("#slides > *")).to_have_count(1)
    expect(page.locator("#slides img")).to_have_attribute("src", src)


def test_items_rotate_after_their_duration_and_skip_what_is_out_of_schedule(boards: dict[str, Page]) -> None:
    page = boards["lantai-1"]
    showing(page, "/board/media/one.svg")
    page.clock.run_for(4_800)
    showing(page, "/board/media/one.svg")  # five seconds are five seconds
    page.clock.run_for(400)
    showing(page, "/board/media/two.svg")  # night (18-22 h), Sunday's and lantai-2's items are skipped
    page.clock.run_for(3_000)
    showing(page, "/board/media/morning.svg")  # Monday 09-11 h: inside its window
    page.clock.run_for(4_000)
    showing(page, "/board/media/one.svg")  # and round again
    expect(page.locator("#signage")).to_have_class("signage playing")


def test_an_item_appears_when_its_window_opens_and_leaves_when_it_closes(boards: dict[str, Page]) -> None:
    page = boards["lantai-1"]
    showing(page, "/board/media/one.svg")
    page.clock.pause_at(MONDAY_10.replace(hour=18, minute=30))  # the evening: night's window is open, morning's shut
    seen = set()
    for _ in range(24):  # more than two full rotations (one 5 s + night 2 s + two 3 s), a second at a time
        page.clock.run_for(1_000)
        seen.add(page.locator("#slides img").get_attribute("src"))
    assert seen == {"/board/media/one.svg", "/board/media/night.svg", "/board/media/two.svg"}


def test_a_board_shows_only_its_own_areas_items(boards: dict[str, Page]) -> None:
    showing(boards["lantai-1"], "/board/media/one.svg")
    showing(boards["lantai-2"], "/board/media/two.svg")  # its first item: lantai-1's is not in its playlist
    seen: dict[str, set[str | None]] = {}
    for area, page in boards.items():
        seen[area] = set()
        for _ in range(20):  # two full rotations of either board, a second at a time
            seen[area].add(page.locator("#slides img").get_attribute("src"))
            page.clock.run_for(1_000)
    assert seen["lantai-1"] == {"/board/media/one.svg", "/board/media/two.svg", "/board/media/morning.svg"}
    assert seen["lantai-2"] == {"/board/media/two.svg", "/board/media/floor2.svg", "/board/media/morning.svg"}
