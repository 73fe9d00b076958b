"""Appliance stopped -> the kiosk issues from its lease -> appliance back -> tickets reconciled once, no duplicates;
over HTTP and over HTTPS with the test CA (the offline buffer in a secure context by the appliance's mDNS name)."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.kiosk.conftest import KioskRig, open_kiosk
from tests.support.appliance import RunningAppliance, event_rows

pytestmark = pytest.mark.slow
PENDING = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("qms-kiosk", 1);
  req.onsuccess = () => { const all = req.result.transaction("pending").objectStore("pending").getAll();
    all.onsuccess = () => { resolve(all.result.length); req.result.close(); }; };
  req.onerror = () => reject(req.error);
})"""


def issue_offline(page: Page, lang: str) -> str:
    """Take a teller ticket while the kiosk is offline; the number shown."""
    page.click(f"#lang-{lang}")
    page.click("#services [data-service='teller']")
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
        page.wait_for_function(f"({PENDING})().then(n => n === 0)", timeout=15000)
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
