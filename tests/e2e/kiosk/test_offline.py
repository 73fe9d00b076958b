"""Appliance stopped -> the kiosk issues from its lease -> appliance back -> tickets reconciled once, no duplicates;
over HTTP and over HTTPS with the test CA (the offline buffer in a secure context by the appliance's mDNS name).
A ticket the appliance refuses on its return is recorded for the supervisor before the kiosk lets it go."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from edge.engine import commands as c
from edge.service import QueueService
from tests.e2e.kiosk.conftest import KioskRig, open_kiosk
from tests.e2e.staff.test_accessibility import axe_violations
from tests.support.appliance import RunningAppliance, event_rows

pytestmark = pytest.mark.slow
PENDING = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("qms-kiosk", 1);
  req.onsuccess = () => { const all = req.result.transaction("pending").objectStore("pending").getAll();
    all.onsuccess = () => { resolve(all.result.length); req.result.close(); }; };
  req.onerror = () => reject(req.error);
})"""
# `page.wait_for_function` does not await a promise: a predicate returning one is truthy at once, so it "waits" for a
# single look (this let the test read the queue while the kiosk was still reconciling: A902 "lost" under load).
# The predicate below starts a count when none is running and is true once a finished count saw `n`.
PENDING_IS = """n => { const probe = window.__pendingProbe ||= { busy: false, seen: null };
  if (!probe.busy) { probe.busy = true; (COUNT)().then(c => { probe.seen = c; probe.busy = false; },
                                                     () => { probe.busy = false; }); }
  return probe.seen === n; }""".replace("COUNT", PENDING)


def wait_pending(page: Page, n: int, timeout: float = 15000) -> None:
    """Until the kiosk's IndexedDB holds `n` pending offline tickets."""
    page.evaluate("() => { delete window.__pendingProbe; }")
    page.wait_for_function(PENDING_IS, arg=n, timeout=timeout)


def issue_offline(page: Page, lang: str, service_id: str = "teller") -> str:
    """Take a ticket while the kiosk is offline; the number shown."""
    page.click(f"#lang-{lang}")
    page.click(f"#services [data-service='{service_id}']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    assert page.locator("#t-print").get_attribute("data-print") == "offline"
    expect(page.locator("#t-qr svg")).to_be_visible()
    number = page.locator("#t-number").inner_text()
    page.click("#btn-done")
    return number


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_offline_tickets_are_reconciled_exactly_once(page: Page, rig: KioskRig, scheme: str) -> None:
    open_kiosk(page, rig)
    assert page.evaluate("[location.protocol, isSecureContext]") == [f"{scheme}:", True]
    online_before = rig.tickets()
    leases = event_rows(rig.data_dir, "SELECT body FROM events WHERE type = 'numbers.leased'")
    assert leases, "the kiosk leased numbers while online"
    teller_lease = next(json.loads(b) for (b,) in leases if json.loads(b)["service_id"] == "teller")

    rig.appliance.stop()
    expect(page.locator("#offline")).to_be_visible(timeout=15000)
    offline_numbers = [issue_offline(page, "id"), issue_offline(page, "en")]
    first_seq = teller_lease["first_seq"]
    assert offline_numbers == [f"A{first_seq}", f"A{first_seq + 1}"] == ["A901", "A902"]  # the offline block
    assert page.evaluate(PENDING) == 2

    with RunningAppliance(rig.data_dir, port=rig.appliance.port) as back:
        expect(page.locator("#offline")).to_be_hidden(timeout=15000)
        wait_pending(page, 0)
        tickets = rig.tickets()
        # The first ticket issued online afterwards is the day's first ordinary number: leases left no gap.
        r = httpx.post(f"{rig.appliance.base_url}/kiosk/api/tickets", timeout=10,
                       json={"service_id": "teller", "request_id": "after-1"},
                       headers={"Authorization": f"Bearer {rig.token}"})  # fmt: skip
        assert r.status_code == 201, r.text
        after = r.json()["ticket"]["ticket_number"]
        positions = {t["ticket_number"]: t["position"] for t in rig.tickets()}
        said = [line for line in back.log().splitlines() if "offline" in line.lower()][-10:]

    assert online_before == []
    by_number = {t["ticket_number"]: t for t in tickets}
    for number in offline_numbers:
        assert number in by_number, f"{number} was dropped in the reconciliation; the appliance said: {said}"
        assert by_number[number]["status"] == "waiting"
        assert by_number[number]["channel"] == "kiosk"
    assert after == "A001"
    assert [positions[n] for n in [*offline_numbers, after]] == [1, 2, 3]  # by issue time: the offline ones first
    created = event_rows(rig.data_dir, "SELECT request_id, body FROM events WHERE type = 'ticket.created'")
    numbers = Counter(json.loads(body)["ticket_number"] for _, body in created)
    assert all(n == 1 for n in numbers.values()), numbers  # never a duplicate number
    offline_ids = [rid for rid, _ in created if rid and rid.startswith(f"off-{teller_lease['lease_id']}-")]
    assert len(offline_ids) == len(set(offline_ids)) == 2  # each offline ticket exactly once, keyed by its temp id
    first = json.loads(next(body for rid, body in created if rid == offline_ids[0]))
    assert first["occurred_at"] < json.loads(created[-1][1])["occurred_at"]  # kept its original time


def remove_service(data_dir: Path, service_id: str) -> None:
    """HQ removes a service while the appliance is down (applied by a writer of its own, as `make_rig` does)."""
    service = QueueService(data_dir)
    try:
        config = service.state.config
        assert config is not None
        counters = [msgspec.structs.replace(k, services=[s for s in k.services if s != service_id])
                    for k in config.counters]  # fmt: skip
        changed = msgspec.structs.replace(config, services=[s for s in config.services if s.id != service_id],
                                          counters=[k for k in counters if k.services])  # fmt: skip
        service.execute(c.ApplyConfig(actor="test", config=changed, base_version=config.version, source="test"))
    finally:
        service.stop()


SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


@pytest.mark.parametrize("scheme", ["http"])
def test_a_refused_offline_ticket_is_recorded_for_staff_before_the_kiosk_drops_it(
    page: Page, browser: Browser, rig: KioskRig, scheme: str
) -> None:
    open_kiosk(page, rig)
    rig.appliance.stop()
    expect(page.locator("#offline")).to_be_visible(timeout=15000)
    kept, refused = issue_offline(page, "id"), issue_offline(page, "en", "cs")
    assert (kept, refused) == ("A901", "B901")
    assert page.evaluate(PENDING) == 2
    remove_service(rig.data_dir, "cs")  # the customer holds B901 of a service that no longer exists

    with RunningAppliance(rig.data_dir, port=rig.appliance.port) as back:
        wait_pending(page, 0)
        headers = rig.admin()
        listed = httpx.get(f"{back.api}/kiosk/offline-refused", headers=headers, timeout=10).json()
        numbers = [t["ticket_number"] for t in rig.tickets()]
        # the staff screenshots' size; axe is injected by the test, which the app's CSP forbids
        staff = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
        floor = staff.new_page()
        floor.goto(f"{back.base_url}/staff/login")
        floor.fill("input[name=username]", "supervisor")
        floor.fill("input[name=password]", "demo")
        floor.press("input[name=password]", "Enter")
        floor.wait_for_url("**/staff/supervisor/")
        for lang, title in (("id", "Tiket offline ditolak"), ("en", "Offline tickets refused")):
            floor.goto(f"{back.base_url}/staff/lang/{lang}?next=/staff/supervisor/")
            region = floor.locator("[data-region='offline-refused']")
            expect(region.locator("h2")).to_contain_text(title)
            expect(region.locator("tr[data-refused='B901']")).to_be_visible()
            expect(region.locator("button", has_text="Issue")).to_have_count(0)  # its service is gone: dismiss only
            floor.screenshot(path=str(SHOTS / f"staff-offline-refused-{lang}.png"))
            assert axe_violations(floor) == []  # WCAG 2.1 A/AA with the list on the page
        floor.once("dialog", lambda dialog: dialog.accept())
        region.locator("tr[data-refused='B901'] button", has_text="Dismiss").click()
        expect(region).to_be_hidden(timeout=10000)  # the live refresh empties it
        staff.close()
        after = httpx.get(f"{back.api}/kiosk/offline-refused", headers=headers, params={"state": "all"}, timeout=10)

    assert "A901" in numbers, (listed, numbers)
    assert "B901" not in numbers
    (row,) = listed["tickets"]
    assert (row["ticket_number"], row["code"], row["service_name"], row["state"]) == (
        "B901", "unknown_service", "Customer Service", "open")  # fmt: skip
    assert [(t["ticket_number"], t["state"], t["resolved_by"]) for t in after.json()["tickets"]] == [
        ("B901", "dismissed", "supervisor")]  # fmt: skip


@pytest.mark.parametrize("scheme", ["http"])
def test_a_lease_arriving_while_a_customer_takes_a_number_does_not_give_that_number_again(
    page: Page, rig: KioskRig, scheme: str
) -> None:
    """The kiosk tops up its leases while online; a customer may take an offline number meanwhile (the issue request
    failed at the network level). Saving the new lease must not put back a number already handed out: two customers
    with the same paper number would share one temporary id, and the second would overwrite the first."""
    open_kiosk(page, rig)
    page.route("**/kiosk/api/tickets", lambda route: route.abort())  # issuing fails at the network level
    held: list[Route] = []
    assert [issue_offline(page, "id"), issue_offline(page, "id")] == ["A901", "A902"]
    page.route("**/kiosk/api/leases", lambda route: held.append(route))  # noqa: PLW0108 - playwright needs a function, not a builtin method
    assert issue_offline(page, "id") == "A903"  # 2 left of 5: the next poll asks for another lease
    page.wait_for_event("request", lambda r: r.url.endswith("/kiosk/api/leases"), timeout=15000)
    assert issue_offline(page, "id") == "A904"  # taken while the lease request is out
    held[0].continue_()
    page.wait_for_function("JSON.parse(localStorage.getItem('qms.kiosk.leases')).teller.length === 2", timeout=15000)
    assert issue_offline(page, "id") == "A905"  # not A904 again


@pytest.mark.parametrize("scheme", ["http"])
def test_the_notify_me_answer_of_an_offline_ticket_reaches_the_queue(page: Page, rig: KioskRig, scheme: str) -> None:
    """The customer untick "notify me" at a kiosk that is offline: the reconciled ticket carries the answer (it was
    stored with the ticket but left out when the kiosk handed it in, so the hub saw no answer at all)."""
    open_kiosk(page, rig)
    page.route("**/kiosk/api/tickets", lambda route: route.abort())
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    for key in "081234567890":
        page.click(f".key[data-key='{key}']")
    page.click("#notify")
    page.click("#btn-issue")
    expect(page.locator("#screen-ticket")).to_be_visible()
    assert page.locator("#t-print").get_attribute("data-print") == "offline"
    wait_pending(page, 0)  # handed in at the next poll (the appliance is reachable)
    created = event_rows(rig.data_dir, "SELECT request_id, body FROM events WHERE type = 'ticket.created'")
    [(temp_id, body)] = created
    assert temp_id.startswith("off-")
    assert json.loads(body)["notify_opt_in"] is False
