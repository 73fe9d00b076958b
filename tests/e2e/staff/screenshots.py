"""Screenshots of the staff pages at 1366x768 in Indonesian and English, for the README.

Run: `.venv/bin/python -m tests.e2e.staff.screenshots` (writes docs/screenshots/*.png). A realistic morning is
staged through the API first: queues in every service, tickets being served, a counter on break, one on hold.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from tests.e2e.staff.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Kiosk
from tests.support.appliance import RunningAppliance, seed_demo

TABLET = {"width": 820, "height": 1180}
OUT = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def stage(appliance: RunningAppliance) -> None:
    """Queues, calls, a break and a held ticket."""
    kiosk = Kiosk(appliance)
    for service, priority in [
        ("teller", None),
        ("teller", 2),
        ("teller", None),
        ("teller", None),
        ("teller", None),
        ("cs", None),
        ("cs", None),
        ("cs", None),
        ("loan", None),
        ("loan", None),
        ("teller", None),
    ]:
        kiosk.enqueue(service, **({"priority": priority} if priority else {}))
    api = appliance.api

    def as_(user: str) -> httpx.Client:
        return httpx.Client(timeout=10, headers=appliance.headers(user))

    with as_("agent1") as agent1, as_("agent2") as agent2, as_("agent3") as agent3, as_("agent4") as agent4:
        first = agent1.post(f"{api}/counters/1/call-next").json()["ticket"]
        agent1.post(f"{api}/tickets/{first['ticket_id']}/start", json={"counter_id": "1"})
        agent1.put(f"{api}/counters/2/presence", json={"status": "break"})
        agent2.post(f"{api}/counters/3/call-next")
        agent3.post(f"{api}/counters/4/call-next")
        agent4.put(f"{api}/counters/6/presence", json={"status": "closed"})
        waiting = agent3.get(f"{api}/tickets", params={"status": "waiting", "service_id": "cs"}).json()["tickets"]
        agent3.post(f"{api}/tickets/{waiting[-1]['ticket_id']}/hold", json={"counter_id": "4"}).raise_for_status()


def shoot(page: Page, name: str) -> None:
    """A full-viewport screenshot."""
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"))


def main() -> int:
    """Stage, then take every screenshot in both languages."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        seed_demo(data)
        with RunningAppliance(data) as appliance, sync_playwright() as p:
            stage(appliance)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for lang in ("id", "en"):
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.goto(f"{appliance.base_url}/staff/lang/{lang}?next=/staff/login")
                shoot(page, f"login-{lang}")
                label = {"id": ("Nama pengguna", "Kata sandi", "Masuk"), "en": ("Username", "Password", "Sign in")}
                page.get_by_label(label[lang][0]).fill("agent1")
                page.get_by_label(label[lang][1]).fill("demo")
                page.get_by_role("button", name=label[lang][2]).click()
                page.wait_for_url("**/staff/counter/1")
                shoot(page, f"agent-{lang}")
                if lang == "id":  # the same desk on a tablet held upright
                    page.set_viewport_size(TABLET)
                    shoot(page, "agent-tablet-id")
                    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
                page.goto(f"{appliance.base_url}/staff/counter/2")
                shoot(page, f"agent-break-{lang}")
                context.close()
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.goto(f"{appliance.base_url}/staff/lang/{lang}?next=/staff/login")
                page.get_by_label(label[lang][0]).fill("admin")
                page.get_by_label(label[lang][1]).fill("demo")
                page.get_by_role("button", name=label[lang][2]).click()
                page.wait_for_url("**/staff/supervisor/")
                if lang == "id":  # a few audited actions for the audit log's screenshot
                    page.get_by_role("button", name="Istirahat Meja CS 5").click()
                    page.locator('tr[data-counter="5"] .presence-break').wait_for()
                    page.goto(f"{appliance.base_url}/staff/admin/services/loan")
                    page.get_by_label("Target SLA (menit)").fill("25")
                    page.get_by_role("button", name="Simpan dan terapkan").click()
                    page.wait_for_url("**/staff/admin/?msg=*")
                    page.goto(f"{appliance.base_url}/staff/supervisor/")
                shoot(page, f"supervisor-{lang}")
                page.goto(f"{appliance.base_url}/staff/admin/")
                shoot(page, f"admin-{lang}")
                page.goto(f"{appliance.base_url}/staff/admin/services/teller")
                shoot(page, f"admin-service-{lang}")
                page.goto(f"{appliance.base_url}/staff/admin/audit")
                shoot(page, f"audit-{lang}")
                context.close()
            browser.close()
    print(f"screenshots written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
