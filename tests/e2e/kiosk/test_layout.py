"""The kiosk as customers see it: six services and "Done" on screen in both text sizes at the screens branches use,
a screen-only kiosk that says nothing about printers, honest waits, and the status page on a phone."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from jinja2 import Environment, FileSystemLoader
from playwright.sync_api import Browser, Page, expect

from cloud.ticket_status import words as hub_words
from sync.contract_config import Counter, Service
from tests.e2e.kiosk.conftest import KIOSK_USERS, KioskRig, kiosk_config, open_kiosk
from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import RunningAppliance, mint_token, seed_demo

pytestmark = pytest.mark.slow

SCREENS = {"1366x768": (1366, 768), "1920x1080": (1920, 1080), "portrait-1080x1920": (1080, 1920)}
USERS = [*KIOSK_USERS, ("agent7", "agent", ["7"])]
SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
EXTRA_SERVICES = [  # a realistic branch: six services, one of them closed today (loans open tomorrow)
    Service(id="bills", name="Bill payments", names={"id": "Pembayaran Tagihan", "en": "Bill payments"}, prefix="D"),
    Service(id="forex", name="Foreign exchange", names={"id": "Valuta Asing", "en": "Foreign exchange"}, prefix="E"),
    Service(id="cards", name="Cards & ATM", names={"id": "Kartu & ATM", "en": "Cards & ATM"}, prefix="F"),
]


@pytest.fixture(scope="module")
def screen_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KioskRig]:
    """A kiosk with six services and no printer configured (a screen-only kiosk), shared by the module."""
    data = tmp_path_factory.mktemp("kiosk-layout") / "data"
    config = kiosk_config(0, printer=None, ticket_seconds=120, idle_seconds=600)
    counters = [*config.counters, Counter(id="7", name="Loket Valas 7", services=["forex"])]
    config = msgspec.structs.replace(config, services=[*config.services, *EXTRA_SERVICES], counters=counters)
    seed_demo(data, config, USERS)
    with RunningAppliance(data) as running, PrinterSink() as unused:
        yield KioskRig(running, data, mint_token(data, "kiosk-1", users=USERS), unused)


def shot(page: Page, name: str, tmp_path: Path) -> None:
    """A picture of the screen: into docs/screenshots with QMS_SCREENSHOTS=1, else the test's temp dir."""
    folder = SHOTS if os.environ.get("QMS_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(folder / f"{name}.png"))


def assert_on_screen(page: Page, selector: str) -> int:
    """Every element matching `selector` lies inside the viewport and is the element a finger on it would hit."""
    size = page.viewport_size
    assert size is not None
    count = page.locator(selector).count()
    assert count > 0, selector
    for i in range(count):
        element = page.locator(selector).nth(i)
        box = element.bounding_box()
        assert box is not None, (selector, i)
        inside = (box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size["width"]
                  and box["y"] + box["height"] <= size["height"])  # fmt: skip
        assert inside, (selector, i, box, size)
        hit = element.evaluate(
            """(el) => {
                 const r = el.getBoundingClientRect();
                 const [cx, cy] = [r.left + r.width / 2, r.top + r.height / 2];
                 const points = [[cx, cy], [cx, r.top + 4], [cx, r.bottom - 4], [r.left + 4, cy], [r.right - 4, cy]];
                 return points.every(([x, y]) => el.contains(document.elementFromPoint(x, y)));
               }"""
        )
        assert hit, (selector, i, "covered or clipped by a scrolling box")
    return count


def assert_fits_the_width(page: Page, width: int) -> None:
    """No horizontal overflow: the document is no wider than the window, and no box pokes out on either side."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == width, widths
    outside = page.evaluate(
        """() => [...document.body.querySelectorAll('*')].filter((el) => {
                   const r = el.getBoundingClientRect();
                   return r.left < 0 || r.right > window.innerWidth;
                 }).map((el) => `${el.tagName}.${el.className}`)"""
    )
    assert outside == []


def assert_no_scrolling(page: Page) -> None:
    """Nothing on the visible screen needs a swipe: no scroll box holds more than it shows."""
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('.screen:not([hidden]), .screen:not([hidden]) *')]
               .filter((el) => el.scrollHeight > el.clientHeight + 1 && getComputedStyle(el).overflowY !== 'visible')
               .map((el) => el.id || el.className)"""
    )
    assert overflowing == []


@pytest.mark.parametrize("large", [False, True], ids=["normal", "large"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_service_and_done_are_on_screen_in_both_text_sizes(
    browser: Browser, screen_only: KioskRig, tmp_path: Path, screen: str, large: bool
) -> None:
    width, height = SCREENS[screen]
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True)
    try:
        page = context.new_page()
        open_kiosk(page, screen_only)
        if large:
            page.click("#btn-large")
            expect(page.locator("body")).to_have_class(re.compile("large"))
        page.click("#lang-en")
        expect(page.locator("#screen-service")).to_be_visible()
        name = f"{screen}-{'large' if large else 'normal'}"
        shot(page, f"kiosk-{name}-services", tmp_path)
        assert assert_on_screen(page, "#services .service") == 6
        assert_on_screen(page, "#screen-service [data-go='lang']")
        assert_no_scrolling(page)
        page.click("#services [data-service='cards']")
        page.click("#btn-skip")
        expect(page.locator("#screen-ticket")).to_be_visible()
        shot(page, f"kiosk-{name}-ticket", tmp_path)
        for selector in ("#btn-done", "#t-number", "#t-qr"):
            assert_on_screen(page, selector)
        assert_no_scrolling(page)
        page.click("#btn-done")
        expect(page.locator("#screen-lang")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize(("lang", "words"), [("id", "Pindai QR"), ("en", "Scan the QR code")])
def test_a_screen_only_kiosk_says_nothing_about_printers(
    page: Page, screen_only: KioskRig, lang: str, words: str
) -> None:
    open_kiosk(page, screen_only)
    page.click(f"#lang-{lang}")
    page.click("#services [data-service='teller']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    expect(page.locator("#t-qr svg")).to_be_visible()
    expect(page.locator("#screen-ticket .scan")).to_contain_text(words)  # the QR is the normal path
    text = page.locator("#screen-ticket").inner_text().lower()
    assert "printer" not in text
    assert "tiket anda" not in text  # nor "please take your ticket": there is no paper
    assert "take your ticket" not in text
    expect(page.locator("#t-print")).to_be_hidden()
    expect(page.locator(".ticket")).not_to_have_class(re.compile("fallback"))


def test_waits_read_next_and_about_n_minutes_on_the_kiosk_and_the_status_page(
    page: Page, screen_only: KioskRig
) -> None:
    agent = {"Authorization": f"Bearer {mint_token(screen_only.data_dir, 'agent7', users=USERS)}"}
    r = httpx.put(f"{screen_only.appliance.api}/counters/7/presence", json={"status": "available"}, headers=agent,
                  timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    open_kiosk(page, screen_only)
    page.click("#lang-en")
    expect(page.locator("#services [data-service='forex'] .sinfo")).to_have_text("0 waiting · Next")  # no "~0 min"
    page.click("[data-go='lang']")
    waits = []
    for _ in range(2):
        page.click("#lang-en")
        page.click("#services [data-service='forex']")  # nobody else queues for it in this module
        page.click("#btn-skip")
        expect(page.locator("#screen-ticket")).to_be_visible()
        waits.append(page.locator("#t-eta").inner_text())
        page.click("#btn-done")
    assert waits[0] == "Next"
    assert re.fullmatch(r"about \d+ min", waits[1]), waits
    assert "~0" not in "".join(waits)
    auth = {"Authorization": f"Bearer {screen_only.token}"}
    issued = httpx.post(f"{screen_only.appliance.base_url}/kiosk/api/tickets", headers=auth, timeout=10,
                        json={"service_id": "forex", "request_id": "wait-id", "lang": "id"})  # fmt: skip
    assert issued.status_code == 201, issued.text
    assert re.fullmatch(r"sekitar \d+ menit", issued.json()["eta_text"])
    page.goto(issued.json()["status_url"])
    expect(page.locator("#eta")).to_have_text(issued.json()["eta_text"])


def test_the_status_page_fits_a_390_px_phone(browser: Browser, screen_only: KioskRig, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {screen_only.token}"}
    r = httpx.post(f"{screen_only.appliance.base_url}/kiosk/api/tickets", headers=auth, timeout=10,
                   json={"service_id": "bills", "request_id": "phone-1", "lang": "id"})  # fmt: skip
    assert r.status_code == 201, r.text
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    try:
        page = context.new_page()
        page.goto(r.json()["status_url"])
        expect(page.locator("#number")).to_have_text(r.json()["ticket"]["ticket_number"])
        shot(page, "status-phone-390", tmp_path)
        assert_fits_the_width(page, 390)
    finally:
        context.close()


def test_the_hubs_copy_of_the_status_page_fits_a_390_px_phone(browser: Browser, tmp_path: Path) -> None:
    # The hub renders its own copy of the page (cloud never imports edge): the template with the hub's words.
    templates = Path(__file__).resolve().parents[3] / "cloud" / "web" / "templates"
    page_html = Environment(loader=FileSystemLoader(templates), autoescape=True).get_template("status.html").render(
        missing=False, lang="id", words=hub_words("id"), branch="Bank Demo - KCP Sudirman Jakarta Selatan",
        ticket={"ticket_number": "B012", "status": "waiting", "ahead": 3}, service="Layanan Nasabah Prioritas",
        updated="09:05",
    )  # fmt: skip
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    try:
        page = context.new_page()
        page.set_content(page_html)
        expect(page.locator("#number")).to_have_text("B012")
        shot(page, "status-hub-phone-390", tmp_path)
        assert_fits_the_width(page, 390)
    finally:
        context.close()
