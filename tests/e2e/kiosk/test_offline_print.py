"""Offline tickets printed on the kiosk's ESC/POS printer through the kiosk computer's print relay.

The appliance is stopped; the page fills the issue time into the leased number's ready print job and posts it to the
relay (firmware-configs/launcher, a real process), which hands the bytes to a recording printer. The browser runs
with the launcher's flags and is told that the appliance's address is a public one, the strictest case of Chromium's
Local Network Access checks for a page reaching 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from edge.engine import commands as c
from edge.service import QueueService
from tests.e2e.kiosk.conftest import KIOSK_USERS, LANDSCAPE, KioskRig, kiosk_config, open_kiosk
from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import RunningAppliance, free_port, mint_token
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.print_relay import load_launcher, running_relay

pytestmark = pytest.mark.slow
QR_COMMAND = b"\x1d(k"  # GS ( k: the printer draws the QR code itself
APPLIANCE_PORT = free_port()  # fixed for the module: the browser's address-space override names it
RELAY_PORT = free_port()
RELAY_URL = f"http://127.0.0.1:{RELAY_PORT}/print"
APPLIANCE_ORIGIN = f"http://127.0.0.1:{APPLIANCE_PORT}"
PENDING = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("qms-kiosk", 1);
  req.onsuccess = () => { const all = req.result.transaction("pending").objectStore("pending").getAll();
    all.onsuccess = () => { resolve(all.result.map((t) => t.temp_id)); req.result.close(); }; };
  req.onerror = () => reject(req.error);
})"""


@dataclass
class Relay:
    """The relay's URL and the printer behind it."""

    url: str
    printer: PrinterSink


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for this module's two browsers."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    with sync_playwright() as p:
        yield p


def launch(playwright: Playwright, *extra: str) -> Browser:
    """Chromium that takes the appliance for a public address (so 127.0.0.1 is a more private one)."""
    override = f"--ip-address-space-overrides=127.0.0.1:{APPLIANCE_PORT}=public"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, override, *extra])


@pytest.fixture(scope="module")
def kiosk_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with the flags the launcher adds when it runs the print relay."""
    browser = launch(playwright, *load_launcher().LOCAL_NETWORK_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def plain_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium without them."""
    browser = launch(playwright)
    yield browser
    browser.close()


def new_page(browser: Browser) -> Iterator[Page]:
    """A fresh 1080p kiosk page (empty IndexedDB and localStorage)."""
    context = browser.new_context(viewport=LANDSCAPE, has_touch=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def page(kiosk_browser: Browser) -> Iterator[Page]:
    """A page of the kiosk's browser."""
    yield from new_page(kiosk_browser)


@pytest.fixture
def rig(tmp_path: Path, kiosk_template: Path, sink: PrinterSink) -> Iterator[KioskRig]:
    """A kiosk branch whose offline tickets go to the relay, on the port the browser knows."""
    data = tmp_path / "data"
    shutil.copytree(kiosk_template, data)
    service = QueueService(data)
    try:
        config = kiosk_config(sink.port, offline_print_url=RELAY_URL)
        service.execute(c.ApplyConfig(actor="test", config=config, base_version=1, source="test"))
    finally:
        service.stop()
    sink.jobs.clear()
    with RunningAppliance(data, port=APPLIANCE_PORT) as running:
        yield KioskRig(running, data, mint_token(data, "kiosk-1", users=KIOSK_USERS), sink)


@pytest.fixture
def relay() -> Iterator[Relay]:
    """The launcher's relay, allowing the appliance's origin, in front of its own recording printer."""
    with PrinterSink() as printer, running_relay(f"tcp://127.0.0.1:{printer.port}", APPLIANCE_ORIGIN,
                                                 port=RELAY_PORT) as url:  # fmt: skip
        yield Relay(url, printer)


def go_offline(page: Page, rig: KioskRig) -> None:
    """Load the kiosk (leases with their print jobs), then stop the appliance."""
    open_kiosk(page, rig)
    jobs = page.evaluate("Object.values(JSON.parse(localStorage['qms.kiosk.leases'])).flat()"
                         ".flatMap((l) => l.numbers).filter((n) => n.print_jobs).length")  # fmt: skip
    assert jobs > 0, "the leases carry ready print jobs"
    rig.appliance.stop()
    expect(page.locator("#offline")).to_be_visible()


def issue_offline(page: Page) -> tuple[str, str]:
    """An English teller ticket while offline: (number, issue time) as the screen shows them."""
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    return page.locator("#t-number").inner_text(), page.locator("#t-time").inner_text()


def test_an_offline_ticket_is_printed_through_the_relay(page: Page, rig: KioskRig, relay: Relay) -> None:
    go_offline(page, rig)
    number, issued = issue_offline(page)
    expect(page.locator("#t-print")).to_have_attribute("data-print", "offline-printed")
    expect(page.locator("#t-print")).to_have_text(
        "Please take your ticket. Offline ticket: your number is valid and will sync."
    )
    (job,) = relay.printer.wait_for_jobs(1)
    assert number.encode() in job
    assert QR_COMMAND in job
    assert len(issued) == 16
    assert issued.encode() in job  # the time the kiosk filled in, byte for byte
    assert b"<<" not in job  # no placeholder left
    assert b"OFFLINE TICKET" in job  # in the customer's language (English), not the branch's first
    assert b"TIKET OFFLINE" not in job
    assert len(page.evaluate(PENDING)) == 1  # kept for the sync, printed or not
    assert rig.sink.jobs == []  # the appliance's own printing was not involved


def test_relay_down_the_ticket_is_still_shown_with_the_fallback(page: Page, rig: KioskRig) -> None:
    go_offline(page, rig)
    number, _ = issue_offline(page)
    expect(page.locator("#t-print")).to_have_attribute("data-print", "offline")
    expect(page.locator("#t-print")).to_have_text("Offline ticket: your number is valid and will sync automatically.")
    expect(page.locator(".ticket.fallback #t-qr svg")).to_be_visible()
    assert number
    assert len(page.evaluate(PENDING)) == 1


def test_without_the_launchers_flags_chromium_keeps_the_page_from_the_relay(
    plain_browser: Browser, rig: KioskRig, relay: Relay
) -> None:
    for plain_page in new_page(plain_browser):
        go_offline(plain_page, rig)
        issue_offline(plain_page)
        expect(plain_page.locator("#t-print")).to_have_attribute("data-print", "offline")
        assert len(plain_page.evaluate(PENDING)) == 1
    assert relay.printer.jobs == []  # blocked by Local Network Access: the launcher's flags are what let it through
