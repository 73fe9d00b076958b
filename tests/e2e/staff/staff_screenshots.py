"""Screenshots of the fixed staff pages (issue 11) at 1366x768 in Indonesian and English: docs/screenshots/staff-*.png.

Run: `.venv/bin/python -m tests.e2e.staff.staff_screenshots`. The desk is shown with the toast of a call, the floor
with a supervisor's confirmation, the audit log with a configuration diff, the users form with its default role.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.staff.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Kiosk
from tests.e2e.staff.screenshots import OUT, stage
from tests.support.appliance import RunningAppliance, seed_demo

LABELS = {
    "id": {"user": "Nama pengguna", "password": "Kata sandi", "sign_in": "Masuk", "call": "Panggil berikutnya",
           "break5": "Istirahat Meja CS 5", "sla": "Target SLA (menit)", "save": "Simpan dan terapkan"},
    "en": {"user": "Username", "password": "Password", "sign_in": "Sign in", "call": "Call next",
           "break5": "Break Meja CS 5", "sla": "SLA target (minutes)", "save": "Save and apply"},
}  # fmt: skip


def _page(browser: Browser, appliance: RunningAppliance, lang: str, username: str) -> Page:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{appliance.base_url}/staff/lang/{lang}?next=/staff/login")
    page.get_by_label(LABELS[lang]["user"]).fill(username)
    page.get_by_label(LABELS[lang]["password"]).fill("demo")
    page.get_by_role("button", name=LABELS[lang]["sign_in"]).click()
    page.wait_for_url(lambda url: "/staff/login" not in url)
    return page


def _shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(OUT / f"staff-{name}.png"))


def main() -> int:
    """Stage a morning, then shoot each page in both languages."""
    OUT.mkdir(parents=True, exist_ok=True)
    for lang in ("id", "en"):  # each language on its own freshly staged branch
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            seed_demo(data)
            with RunningAppliance(data) as appliance, sync_playwright() as p:
                stage(appliance)
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                words = LABELS[lang]
                desk = _page(browser, appliance, lang, "agent3")  # counter 4: cs and loan
                for _ in range(3):  # a queue to show beside the toast
                    Kiosk(appliance).enqueue("cs")
                desk.goto(f"{appliance.base_url}/staff/counter/5")  # counter 4 already has a ticket
                desk.get_by_role("button", name=words["call"]).click()
                desk.locator("#toast:not([hidden])").wait_for()
                _shoot(desk, f"desk-toast-{lang}")
                admin = _page(browser, appliance, lang, "admin")
                admin.goto(f"{appliance.base_url}/staff/supervisor/")
                admin.get_by_role("button", name=words["break5"]).click()
                admin.locator("#toast:not([hidden])").wait_for()
                _shoot(admin, f"floor-{lang}")
                admin.goto(f"{appliance.base_url}/staff/admin/services/loan")
                admin.get_by_label(words["sla"]).fill("25" if lang == "id" else "35")
                admin.get_by_role("button", name=words["save"]).click()
                admin.wait_for_url("**/staff/admin/?msg=*")
                admin.goto(f"{appliance.base_url}/staff/admin/audit")
                _shoot(admin, f"audit-{lang}")
                admin.goto(f"{appliance.base_url}/staff/admin/users")
                _shoot(admin, f"admin-users-{lang}")
                admin.goto(f"{appliance.base_url}/staff/admin/")
                _shoot(admin, f"admin-config-{lang}")
                desk.context.close()
                admin.context.close()
                browser.close()
    print(f"staff screenshots written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
