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
    # checked at once, while the toast shows (a waiting assertion would pass once the toast itself hides)
    assert not toast.locator(".toast-retry").is_visible()  # success: nothing to retry
    now_serving(page).get_by_role("button", name="Tahan").click()
    expect(toast).to_contain_text(f"{ticket['ticket_number']} ditahan")
    assert not toast.locator(".toast-retry").is_visible()


def test_retry_resends_a_failed_action_once_without_acting_twice(signed_in: Any, kiosk: Kiosk) -> None:
    first, second = kiosk.enqueue("teller"), kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    failures = []

    def lost_answer(route: Any) -> None:  # the appliance acts, but a proxy in between answers 502
        route.fetch()
        failures.append(route.request.post_data)
        route.fulfill(status=502, body="bad gateway")

    page.route("**/staff/counter/1/act", lost_answer)
    page.get_by_role("button", name="Panggil berikutnya").click()
    toast = page.locator("#toast")
    retry = toast.get_by_role("button", name="Coba lagi")
    expect(retry).to_be_visible()
    page.unroute("**/staff/counter/1/act")
    retry.click()
    expect(toast).to_contain_text(f"{first['ticket_number']} dipanggil ke Loket 1")  # the first answer, replayed
    assert len(failures) == 1
    assert "request_id=web-" in (failures[0] or "")
    assert kiosk.ticket(first["ticket_id"])["status"] == "called"
    assert kiosk.ticket(second["ticket_id"])["status"] == "waiting"  # the retry did not call a second ticket
