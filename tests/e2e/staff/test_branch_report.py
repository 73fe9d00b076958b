"""The branch report page in Debian's Chromium against a real `qms-edge serve` with a week of history.

Filters narrow the figures, a figure drills down to its tickets (contacts masked), the charts are drawn by the
vendored Chart.js (no CDN), the CSV downloads; screenshots in both languages (docs/screenshots/branch-report-*.png).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.staff.conftest import sign_in
from tests.edge.analytics.history import seed_history
from tests.support.appliance import RunningAppliance

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.fixture
def history_appliance(tmp_path: Path, staff_template: Path) -> Iterator[RunningAppliance]:
    """A running appliance whose log holds a week of served tickets."""
    target = tmp_path / "data"
    shutil.copytree(staff_template, target)
    seed_history(target)
    with RunningAppliance(target) as running:
        yield running


def _week() -> tuple[str, str]:
    today = datetime.now(JAKARTA).date()
    return (today - timedelta(days=6)).isoformat(), today.isoformat()


def _open_report(page: Page, base: str) -> None:
    first, last = _week()
    page.goto(f"{base}/staff/reports/")
    page.locator("input[name=from]").fill(first)
    page.locator("input[name=to]").fill(last)
    page.get_by_role("button", name=re.compile("^(Tampilkan|Show)$")).click()
    expect(page.locator("body")).to_have_attribute("data-charts", "drawn")


def test_report_filters_drill_down_and_screenshots(history_appliance: RunningAppliance, new_context: Any) -> None:
    base = history_appliance.base_url
    api = httpx.get(
        f"{history_appliance.api}/kpis",
        params=dict(zip(("from", "to"), _week(), strict=True)),
        headers=history_appliance.headers("admin"),
        timeout=10,
    ).json()["totals"]
    history_appliance_phone = httpx.post(
        f"{history_appliance.api}/tickets",
        json={"service_id": "cs", "phone": "081298765432"},
        headers=history_appliance.headers("admin"),
        timeout=10,
    )
    assert history_appliance_phone.status_code == 201

    page: Page = new_context().new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in(page, base, "supervisor")
    _open_report(page, base)
    expect(page.locator('[data-figure="done"]')).to_have_text(str(api["done"]))
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]  # no CDN
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "branch-report-id.png"), full_page=True)

    # filter: one service
    page.locator("select[name=service_id]").select_option("loan")
    page.get_by_role("button", name="Tampilkan").click()
    loan = httpx.get(
        f"{history_appliance.api}/kpis",
        params={**dict(zip(("from", "to"), _week(), strict=True)), "service_id": "loan"},
        headers=history_appliance.headers("admin"),
        timeout=10,
    ).json()["totals"]
    expect(page.locator('[data-figure="tickets"]')).to_have_text(str(loan["tickets"]))

    # drill down: the loan tickets that were served
    page.locator('[data-figure="done"]').click()
    expect(page.locator("tr[data-ticket]")).to_have_count(loan["done"])
    expect(page.get_by_role("heading", name="Tiket di balik angka")).to_be_visible()

    # contacts masked in a drill-down of today's tickets
    page.goto(f"{base}/staff/reports/tickets")
    expect(page.get_by_text("0812*****432")).to_be_visible()
    assert "081298765432" not in page.content()

    # the same page in English
    page.goto(f"{base}/staff/lang/en?next=/staff/reports/")
    _open_report(page, base)
    expect(page.get_by_role("heading", name="Branch report")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "branch-report-en.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    path = download.value.path()
    header = Path(path).read_text(encoding="utf-8").split("\r\n", 1)[0]
    assert header.startswith("ticket_id,ticket_number,branch_id,")
