"""The counter desk in Chromium against a running appliance: serve, transfer, hold, live updates, 409, empty queue."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.staff.conftest import Kiosk
from tests.support.appliance import RunningAppliance, event_rows

LIVE_MS = 1000  # another agent's screen must show a change within a second


def now_serving(page: Page) -> Any:
    return page.locator('[data-region="now"]')


def queue(page: Page) -> Any:
    return page.locator('[data-region="queue"]')


def test_agent_calls_starts_and_completes_a_ticket(signed_in: Any, kiosk: Kiosk) -> None:
    ticket = kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    expect(page).to_have_url(re.compile(r"/staff/counter/1$"))
    expect(queue(page).locator('tr[data-ticket="A001"]')).to_be_visible()
    page.get_by_role("button", name="Panggil berikutnya").click()
    hero = now_serving(page).locator(".ticket-hero")
    expect(hero).to_have_attribute("data-status", "called")
    expect(hero).to_have_attribute("data-ticket", "A001")
    expect(queue(page).get_by_text("Tidak ada antrean")).to_be_visible()
    page.keyboard.press("s")  # the keyboard shortcut for Start
    expect(hero).to_have_attribute("data-status", "serving")
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil ulang"))).to_have_count(0)
    now_serving(page).get_by_label("Hasil").select_option("withdrawal")
    now_serving(page).get_by_role("button", name=re.compile("^Selesai")).click()
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_be_visible()
    done = kiosk.ticket(ticket["ticket_id"])
    assert (done["status"], done["outcome"]) == ("done", "withdrawal")


def test_agent_transfers_the_called_ticket_and_holds_a_waiting_one(signed_in: Any, kiosk: Kiosk) -> None:
    first = kiosk.enqueue("teller")
    second = kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    page.get_by_role("button", name="Panggil berikutnya").click()
    expect(now_serving(page).locator(".ticket-hero")).to_have_attribute("data-ticket", "A001")
    now_serving(page).get_by_text("Transfer…").click()
    now_serving(page).get_by_role("button", name="Transfer", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("Pilih layanan atau loket tujuan")
    now_serving(page).get_by_label("Ke layanan").select_option("cs")
    now_serving(page).get_by_label("Alasan (opsional)").fill("pembukaan rekening")
    now_serving(page).get_by_role("button", name="Transfer", exact=True).click()
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_be_visible()
    moved = kiosk.ticket(first["ticket_id"])
    assert (moved["service_id"], moved["status"], moved["transfer_reason"]) == ("cs", "waiting", "pembukaan rekening")

    queue(page).get_by_role("button", name="Tahan A002").click()
    held = queue(page).locator(".held-list li[data-ticket='A002']")
    expect(held).to_be_visible()
    assert kiosk.ticket(second["ticket_id"])["status"] == "held"
    page.get_by_role("button", name="Panggil berikutnya").click()  # the only ticket left is on hold
    expect(page.locator("#toast")).to_contain_text("tidak ada yang boleh diambil loket ini")
    assert kiosk.ticket(second["ticket_id"])["status"] == "held"
    held.get_by_role("button", name="Lepas tahan A002").click()
    expect(queue(page).locator('tr[data-ticket="A002"]')).to_be_visible()


def test_another_agent_sees_the_queue_change_live(signed_in: Any, kiosk: Kiosk) -> None:
    first: Page = signed_in("agent1")  # counters 1, 2 (teller)
    other: Page = signed_in("agent2")  # counter 3 (teller)
    expect(other).to_have_url(re.compile(r"/staff/counter/3$"))
    expect(queue(other).get_by_text("Tidak ada antrean")).to_be_visible()
    first.wait_for_function("() => document.querySelector('#live') !== null")
    kiosk.enqueue("teller")
    expect(queue(other).locator('tr[data-ticket="A001"]')).to_be_visible(timeout=LIVE_MS)
    expect(queue(first).locator('tr[data-ticket="A001"]')).to_be_visible(timeout=LIVE_MS)
    first.get_by_role("button", name="Panggil berikutnya").click()
    expect(queue(other).locator('tr[data-ticket="A001"]')).to_have_count(0, timeout=LIVE_MS)
    expect(queue(other).get_by_text("Tidak ada antrean")).to_be_visible()


def test_agent_switches_between_their_counters(signed_in: Any, kiosk: Kiosk) -> None:
    kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    page.get_by_role("link", name="Loket 2").click()
    expect(page).to_have_url(re.compile(r"/staff/counter/2$"))
    page.get_by_role("button", name="Panggil berikutnya").click()
    expect(now_serving(page).locator(".ticket-hero")).to_have_attribute("data-ticket", "A001")
    page.get_by_role("link", name="Loket 1").click()
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_be_visible()


def test_empty_queue_is_a_calm_state(signed_in: Any) -> None:
    page: Page = signed_in("agent1")
    expect(queue(page).get_by_text("Tidak ada antrean")).to_be_visible()
    page.keyboard.press("n")
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Tidak ada antrean. Semua sudah terlayani.")
    expect(toast).not_to_have_class(re.compile("toast-error"))


def test_a_conflict_shows_a_clear_message_with_retry(signed_in: Any, kiosk: Kiosk, appliance: RunningAppliance) -> None:
    kiosk.enqueue("teller")
    fresh: Page = signed_in("agent1")
    stale: Page = signed_in("agent1")
    stale.route("**/staff/events", lambda route: route.abort())  # this tab misses the live updates
    fresh.get_by_role("button", name="Panggil berikutnya").click()
    expect(now_serving(fresh).locator(".ticket-hero")).to_have_attribute("data-status", "called")
    stale.reload()
    expect(now_serving(stale).locator(".ticket-hero")).to_have_attribute("data-status", "called")
    fresh.keyboard.press("s")
    expect(now_serving(fresh).locator(".ticket-hero")).to_have_attribute("data-status", "serving")
    now_serving(stale).get_by_role("button", name=re.compile("Mulai layani")).click()
    toast = stale.locator("#toast")
    expect(toast).to_contain_text("Tiket ini baru saja berubah (sekarang dilayani)")
    assert toast.is_visible()
    assert not toast.get_by_role("button", name="Coba lagi").is_visible()  # the same start cannot work: no Retry
    expect(now_serving(stale).locator(".ticket-hero")).to_have_attribute("data-status", "serving")


def test_presence_break_and_back(signed_in: Any, kiosk: Kiosk) -> None:
    kiosk.enqueue("teller")
    page: Page = signed_in("agent1")
    now_serving(page).get_by_role("button", name="Istirahat").click()
    expect(now_serving(page).get_by_role("button", name="Istirahat")).to_have_attribute("aria-pressed", "true")
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_have_count(0)
    now_serving(page).get_by_role("button", name="Tersedia").click()
    expect(now_serving(page).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_be_visible()


def test_a_supervisor_closes_a_counter_and_the_agent_sees_it_live(
    signed_in: Any, kiosk: Kiosk, appliance: RunningAppliance
) -> None:
    kiosk.enqueue("teller")
    agent: Page = signed_in("agent2")  # counter 3
    expect(now_serving(agent).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_be_visible()
    supervisor: Page = signed_in("supervisor")
    supervisor.get_by_role("button", name="Tutup Loket 3").click()
    expect(supervisor.locator('tr[data-counter="3"] .presence-closed')).to_be_visible()
    expect(now_serving(agent).locator(".presence-closed")).to_be_visible(timeout=LIVE_MS)
    expect(now_serving(agent).get_by_role("button", name=re.compile("Panggil berikutnya"))).to_have_count(0)
    audited = event_rows(appliance.data_dir, "SELECT actor, action, target FROM audit WHERE action = 'close_counter'")
    assert audited == [("supervisor", "close_counter", "counter:3")]
