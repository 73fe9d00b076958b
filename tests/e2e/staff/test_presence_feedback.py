"""What staff see (issue 11): a counter is Available only while its agent is signed in, the kiosk ETA follows, and
every action confirms what happened by number and name, with no stray Retry button."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.staff.conftest import Kiosk
from tests.e2e.staff.test_desk import LIVE_MS, now_serving


def test_sign_in_opens_the_counter_and_sign_out_closes_it_on_the_floor_and_in_the_eta(
    signed_in: Any, kiosk: Kiosk
) -> None:
    assert kiosk.enqueue("teller")["eta_seconds"] is None  # nobody at a teller counter: no promise
    supervisor: Page = signed_in("supervisor")
    expect(supervisor.locator('tr[data-counter="1"] .presence-closed')).to_be_visible()
    agent: Page = signed_in("agent1")  # opens the desk of counter 1
    expect(supervisor.locator('tr[data-counter="1"] .presence-available')).to_be_visible(timeout=LIVE_MS)
    with_agent = kiosk.enqueue("teller")["eta_seconds"]
    assert with_agent is not None
    assert with_agent > 0
    agent.get_by_role("button", name="Keluar").click()
    agent.wait_for_url("**/staff/login")
    expect(supervisor.locator('tr[data-counter="1"] .presence-closed')).to_be_visible(timeout=LIVE_MS)
    assert kiosk.enqueue("teller")["eta_seconds"] is None


def test_actions_confirm_with_the_ticket_number_and_retry_stays_hidden(signed_in: Any, kiosk: Kiosk) -> None:
    ticket = kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    page.get_by_role("button", name="Panggil berikutnya").click()
    toast = page.locator("#toast")
    expect(toast).to_contain_text(f"{ticket['ticket_number']} dipanggil ke Loket 1")
    expect(toast.locator(".toast-retry")).to_be_hidden()  # success: nothing to retry
    now_serving(page).get_by_role("button", name="Tahan").click()
    expect(toast).to_contain_text(f"{ticket['ticket_number']} ditahan")
    expect(toast.locator(".toast-retry")).to_be_hidden()
