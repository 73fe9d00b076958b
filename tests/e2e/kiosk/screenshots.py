"""Kiosk screenshots for the README: `python -m tests.e2e.kiosk.screenshots` writes docs/screenshots/kiosk-*."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from edge.devices.printer.layout import TicketPrint, ticket_layout
from edge.devices.printer.preview import render_png
from sync.contract_config import KioskPrinter
from tests.e2e.kiosk.conftest import CHROMIUM, CHROMIUM_ARGS, KIOSK_USERS, LANDSCAPE, PORTRAIT, kiosk_config
from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import RunningAppliance, free_port, mint_token, seed_demo

OUT = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def shot(page: Page, name: str) -> None:
    """Save the page (animations settled) as docs/screenshots/kiosk-NAME.png."""
    page.wait_for_timeout(250)  # let CSS transitions settle for the picture (not a synchronisation)
    page.screenshot(path=str(OUT / f"kiosk-{name}.png"))
    print("wrote", OUT / f"kiosk-{name}.png")


def start(page: Page, url: str) -> None:
    """Open the kiosk and wait for its first sync."""
    page.goto(url)
    page.wait_for_selector("#app[data-synced='true']", state="attached", timeout=15000)


def normal_flow() -> None:
    """Run a demo branch with a few waiting tickets and photograph every kiosk screen."""
    with tempfile.TemporaryDirectory() as tmp, PrinterSink() as sink:
        data = Path(tmp) / "data"
        seed_demo(data, kiosk_config(sink.port, ticket_seconds=120, idle_seconds=600), KIOSK_USERS)
        token = mint_token(data, "kiosk-1", users=KIOSK_USERS)
        with RunningAppliance(data) as app, sync_playwright() as p:
            admin = {"Authorization": f"Bearer {mint_token(data, 'admin', users=KIOSK_USERS)}"}
            for service, count in (("teller", 4), ("cs", 2)):
                for _ in range(count):
                    httpx.post(f"{app.api}/tickets", json={"service_id": service}, headers=admin).raise_for_status()
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            url = f"{app.base_url}/kiosk#token={token}"
            page = browser.new_page(viewport=LANDSCAPE)
            start(page, url)
            shot(page, "home")
            page.click("#lang-id")
            shot(page, "services-id")
            page.click("#btn-done") if page.is_visible("#btn-done") else None
            page.click("[data-go='lang']")
            page.click("#lang-en")
            page.click("#services [data-service='cs']")
            for key in "081234567890":
                page.click(f".key[data-key='{key}']")
            shot(page, "details-en")
            page.click("#btn-issue")
            page.wait_for_selector("#screen-ticket:not([hidden])")
            shot(page, "ticket-en")
            page.click("#btn-done")
            page.click("#btn-contrast")
            page.click("#btn-large")
            page.click("#lang-en")
            shot(page, "services-contrast")
            page.close()

            portrait = browser.new_page(viewport=PORTRAIT)
            start(portrait, url)
            portrait.click("#lang-id")
            shot(portrait, "portrait-services")
            portrait.click("#services [data-service='teller']")
            portrait.click("#btn-skip")
            portrait.wait_for_selector("#screen-ticket:not([hidden])")
            shot(portrait, "portrait-ticket")
            portrait.close()
            browser.close()


def printer_down_flow() -> None:
    """A kiosk whose printer is down (fallback QR), then an offline ticket."""
    with tempfile.TemporaryDirectory() as tmp, PrinterSink() as sink:
        data = Path(tmp) / "data"
        down = KioskPrinter(host="127.0.0.1", port=free_port())
        seed_demo(data, kiosk_config(sink.port, printer=down, ticket_seconds=120, idle_seconds=600), KIOSK_USERS)
        token = mint_token(data, "kiosk-1", users=KIOSK_USERS)
        with RunningAppliance(data) as app, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LANDSCAPE)
            start(page, f"{app.base_url}/kiosk#token={token}")
            page.click("#btn-contrast")
            page.click("#lang-id")
            page.click("#services [data-service='teller']")
            page.click("#btn-skip")
            page.wait_for_selector(".ticket.fallback")
            shot(page, "ticket-fallback-contrast")
            app.stop()
            page.click("#btn-done")
            page.wait_for_selector("#offline:not([hidden])", timeout=15000)
            page.click("#btn-contrast")
            page.click("#lang-en")
            page.click("#services [data-service='teller']")
            page.click("#btn-skip")
            page.wait_for_selector("#screen-ticket:not([hidden])")
            shot(page, "offline-ticket-en")
            browser.close()


def printed_ticket() -> None:
    """The printed ticket, drawn from the layout the printer receives."""
    ticket = TicketPrint(branch_name="Bank Demo - KCP Sudirman", ticket_number="B012", service_name="Layanan Nasabah",
                         issued_at="24/11/2026 09:05", status_url="http://192.168.10.2:8080/t/dDowMWEyMGJlZi00Njg1.Mh",
                         position=3, eta_seconds=1200, logo_text="BANK DEMO", phone="0812*****890")  # fmt: skip
    (OUT / "kiosk-printed-ticket.png").write_bytes(render_png(ticket_layout(ticket, 80), 80))
    (OUT / "kiosk-printed-ticket-58mm.png").write_bytes(render_png(ticket_layout(ticket, 58), 58))
    offline = TicketPrint(branch_name="Bank Demo - KCP Sudirman", ticket_number="A901", service_name="Teller",
                          issued_at="24/11/2026 09:07", status_url="http://192.168.10.2:8080/t/b2ZmLTAxOWEyMC05MDE.Qx",
                          lang="en", logo_text="BANK DEMO", offline=True)  # fmt: skip
    (OUT / "kiosk-printed-ticket-offline.png").write_bytes(render_png(ticket_layout(offline, 80), 80))
    print("wrote printed tickets")


def main() -> None:
    """Every kiosk screenshot."""
    OUT.mkdir(parents=True, exist_ok=True)
    normal_flow()
    printer_down_flow()
    printed_ticket()


if __name__ == "__main__":
    main()
