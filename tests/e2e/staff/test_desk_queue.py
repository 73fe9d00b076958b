"""The desk's waiting list (US-AGENT-003): the service filter, the SLA column and the per-ticket ETA column."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Page, expect

from edge.engine import commands as c
from edge.service import QueueService
from tests.e2e.staff.conftest import Kiosk
from tests.support.appliance import RunningAppliance

AGED = timedelta(seconds=150)  # the customer-service ticket has waited this long; its SLA is set to 1 minute


@pytest.fixture
def aged(tmp_path: Path, staff_template: Path) -> dict[str, Any]:
    """The demo branch with `cs` at a 1-minute SLA and one cs ticket issued 150 s ago (before the appliance starts)."""
    target = tmp_path / "data"
    shutil.copytree(staff_template, target)
    issued = datetime.now(UTC) - AGED
    service = QueueService(target, clock=lambda: issued)
    service.start()
    try:
        config = service.view.state.config
        assert config is not None
        services = [msgspec.structs.replace(s, sla_minutes=1) if s.id == "cs" else s for s in config.services]
        changed = msgspec.structs.replace(config, services=services)
        service.execute(c.ApplyConfig(actor="admin", config=changed, base_version=config.version))
        old = service.execute(c.Enqueue(actor="kiosk-1", service_id="cs")).response
    finally:
        service.stop()
    return {"dir": target, "old": old}


@pytest.fixture
def appliance(aged: dict[str, Any]) -> Iterator[RunningAppliance]:
    """The running appliance over the aged branch (this module's `signed_in` pages use it)."""
    with RunningAppliance(aged["dir"]) as running:
        yield running


def _rows(page: Page) -> Any:
    return page.locator('[data-region="queue"] tbody tr')


def test_the_service_filter_shows_only_that_services_tickets(signed_in: Any, kiosk: Kiosk, aged: dict) -> None:
    cs = kiosk.enqueue("cs")
    loan = kiosk.enqueue("loan")
    page: Page = signed_in("agent3")  # counter 4 serves cs and loan
    expect(_rows(page)).to_have_count(3)
    page.get_by_label("Layanan").select_option("loan")
    expect(_rows(page)).to_have_count(1)
    expect(_rows(page).first).to_have_attribute("data-ticket", loan["ticket_number"])
    assert "service=loan" in page.url  # the filter survives a reload
    page.reload()
    expect(_rows(page)).to_have_count(1)
    page.get_by_label("Layanan").select_option("cs")
    expect(_rows(page)).to_have_count(2)
    numbers = _rows(page).evaluate_all("rows => rows.map(r => r.dataset.ticket)")
    assert numbers == [aged["old"]["ticket_number"], cs["ticket_number"]]


def test_the_sla_column_flags_a_ticket_past_its_services_sla(signed_in: Any, kiosk: Kiosk, aged: dict) -> None:
    fresh = kiosk.enqueue("cs")
    page: Page = signed_in("agent3")
    old_row = page.locator(f'tr[data-ticket="{aged["old"]["ticket_number"]}"]')
    expect(old_row.locator(".sla .sla-breach")).to_have_text("Melewati SLA")
    expect(page.locator(f'tr[data-ticket="{fresh["ticket_number"]}"] .sla .sla-ok')).to_be_visible()


def test_the_eta_column_shows_each_tickets_eta(signed_in: Any, kiosk: Kiosk, aged: dict) -> None:
    tickets = [aged["old"], kiosk.enqueue("cs"), kiosk.enqueue("cs")]
    page: Page = signed_in("agent3")  # opening the desk opens counter 4: ETAs now count it
    expect(_rows(page)).to_have_count(3)
    etas = [kiosk.ticket(t["ticket_id"])["eta_seconds"] for t in tickets]
    assert etas == sorted(etas)
    assert len(set(etas)) == 3  # each ticket its own ETA
    for ticket, eta in zip(tickets, etas, strict=True):
        cell = page.locator(f'tr[data-ticket="{ticket["ticket_number"]}"] .eta')
        expect(cell).to_have_text(f"~{math.ceil(eta / 60)} mnt")
