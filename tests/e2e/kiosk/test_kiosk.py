"""The kiosk end to end: issue in each language (and over HTTPS with the test CA), phone validation and masking, idle
reset, printing, fallback QR."""

from __future__ import annotations

import re
import time

import httpx
import jwt
import pytest
from playwright.sync_api import Page, expect

from edge.auth import TokenIssuer, User, load_secret
from tests.e2e.conftest import screenshot
from tests.e2e.kiosk.conftest import LANDSCAPE, KioskRig, open_kiosk
from tests.support.appliance import event_rows

pytestmark = pytest.mark.slow
QR_COMMAND = b"\x1d(k"  # GS ( k: the printer draws the QR code itself


def take_ticket(page: Page, lang: str, service: str = "teller") -> str:
    """Language -> service -> (skip details) -> the number on screen."""
    page.click(f"#lang-{lang}")
    page.click(f"#services [data-service='{service}']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    return page.locator("#t-number").inner_text()


ID_WORDS = ("id", "Layanan Nasabah", "Silakan ambil tiket Anda")
EN_WORDS = ("en", "Customer Service", "Please take your ticket")


@pytest.mark.parametrize(
    ("lang", "service_name", "printed_word", "scheme"),
    [(*ID_WORDS, "http"), (*EN_WORDS, "http"), (*ID_WORDS, "https")],  # over HTTPS once: the flow, not the words
)
def test_issue_and_print_a_ticket_in_each_language(
    page: Page, rig: KioskRig, lang: str, service_name: str, printed_word: str, scheme: str
) -> None:
    open_kiosk(page, rig)
    assert page.evaluate("[location.protocol, isSecureContext]") == [f"{scheme}:", True]
    number = take_ticket(page, lang, "cs")
    assert re.fullmatch(r"B\d{3}", number)
    expect(page.locator("#t-service")).to_have_text(service_name)
    expect(page.locator("#t-print")).to_have_text(printed_word)
    expect(page.locator("#t-qr svg")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == lang
    (job,) = rig.sink.wait_for_jobs(1)
    assert number.encode() in job
    assert QR_COMMAND in job
    assert b"/t/" in job  # the QR carries the status link
    ticket = next(t for t in rig.tickets() if t["ticket_number"] == number)
    assert (ticket["channel"], ticket["lang"], ticket["status"]) == ("kiosk", lang, "waiting")
    if scheme == "https":
        screenshot(page, "kiosk-https-ticket")


def test_closed_service_is_explained_and_cannot_be_chosen(page: Page, rig: KioskRig) -> None:
    open_kiosk(page, rig)
    page.click("#lang-en")
    loan = page.locator("#services [data-service='loan']")
    expect(loan).to_have_class(re.compile("closed"))
    expect(loan.locator(".sinfo")).to_contain_text("Opens tomorrow at 08:00")
    loan.click(force=True)
    expect(page.locator("#screen-service")).to_be_visible()


def test_phone_is_validated_stored_and_shown_masked(page: Page, rig: KioskRig) -> None:
    open_kiosk(page, rig)
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    for key in "0812":
        page.click(f".key[data-key='{key}']")
    page.click("#btn-issue")
    expect(page.locator("#phone-error")).to_have_text("A mobile number has 8-15 digits")
    expect(page.locator("#screen-details")).to_be_visible()
    for key in "34567890":
        page.click(f".key[data-key='{key}']")
    page.click("#btn-issue")
    expect(page.locator("#screen-ticket")).to_be_visible()
    expect(page.locator("#t-phone")).to_have_text("0812*****890")
    number = page.locator("#t-number").inner_text()
    ticket = next(t for t in rig.tickets() if t["ticket_number"] == number)
    assert ticket["phone"] == "0812*****890"  # shown masked to staff too
    created = "SELECT body FROM events WHERE type = 'ticket.created'"
    bodies = [bytes(row[0]) for row in event_rows(rig.data_dir, created)]
    # sealed in the append-only log (crypto-shredding, edge/pii.py): never in clear, its key kept outside the chain
    assert not any(b"081234567890" in body for body in bodies)
    assert any(b'"contact_sealed":"v1.' in body for body in bodies)
    assert event_rows(rig.data_dir, "SELECT count(*) FROM contact_keys")[0][0] == 1
    (job,) = rig.sink.wait_for_jobs(1)
    assert b"0812*****890" in job
    assert b"081234567890" not in job


def test_idle_kiosk_returns_home_and_resets_accessibility(page: Page, rig: KioskRig) -> None:
    open_kiosk(page, rig)
    page.click("#btn-large")
    page.click("#btn-contrast")
    assert page.evaluate("document.body.className") == "kiosk large contrast"
    page.click("#lang-en")
    expect(page.locator("#screen-service")).to_be_visible()
    expect(page.locator("#screen-lang")).to_be_visible(timeout=9000)  # idle_seconds = 5
    assert page.evaluate("document.body.className") == "kiosk"


def test_printer_down_shows_fallback_qr_and_logs_the_error(page: Page, rig_printer_down: KioskRig) -> None:
    rig = rig_printer_down
    open_kiosk(page, rig)
    number = take_ticket(page, "en")
    expect(page.locator("#t-print")).to_contain_text("The printer has a problem")
    expect(page.locator(".ticket.fallback #t-qr svg")).to_be_visible()
    assert page.locator("#t-print").get_attribute("data-print") == "offline"
    logged = rf'"level": "error", "logger": "qms.printer", "message": "printer .* failed for ticket {number}: offline'
    assert re.search(logged, rig.appliance.log())  # the appliance logs JSON lines (issue 16)
    status = httpx.get(f"{rig.appliance.base_url}/kiosk/api/printers", headers=rig.admin(), timeout=10).json()
    (printer,) = status["printers"]
    assert (printer["device_id"], printer["ok"], printer["error"], printer["failed"]) == (
        "kiosk-1",
        False,
        "offline",
        1,
    )
    metrics = httpx.get(f"{rig.appliance.base_url}/metrics", timeout=10).text
    assert 'qms_kiosk_printer_up{device="kiosk-1"} 0.0' in metrics
    assert 'qms_kiosk_print_jobs_total{device="kiosk-1",result="failed"} 1.0' in metrics
    assert any(t["ticket_number"] == number for t in rig.tickets())  # the ticket itself is never lost


def test_status_link_opens_the_live_status_page(page: Page, rig: KioskRig) -> None:
    r = httpx.post(f"{rig.appliance.base_url}/kiosk/api/tickets", json={"service_id": "teller", "request_id": "s-1"},
                   headers={"Authorization": f"Bearer {rig.token}"}, timeout=10)  # fmt: skip
    assert r.status_code == 201, r.text
    page.goto(r.json()["status_url"])
    expect(page.locator("#number")).to_have_text(r.json()["ticket"]["ticket_number"])
    expect(page.locator("#state")).to_have_text("Menunggu")
    forged = r.json()["status_url"][:-3] + "AAA"
    assert httpx.get(forged, timeout=10).status_code == 404


def test_offline_status_link_shows_the_number_before_and_after_sync(rig: KioskRig) -> None:
    auth = {"Authorization": f"Bearer {rig.token}"}
    base = rig.appliance.base_url
    lease = httpx.post(f"{base}/kiosk/api/leases", json={"service_id": "cs"}, headers=auth, timeout=10).json()
    first = lease["numbers"][0]
    pending = httpx.get(first["status_url"], timeout=10).text
    assert first["ticket_number"] in pending
    assert "akan muncul setelah tersinkron" in pending
    item = {"temp_id": first["temp_id"], "lease_id": lease["lease_id"], "seq_no": first["seq_no"],
            "issued_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    for _ in range(2):  # the retry after a lost response changes nothing
        r = httpx.post(f"{base}/kiosk/api/offline", json={"tickets": [item]}, headers=auth, timeout=10)
        (result,) = r.json()["results"]
        assert result["ok"], result
        assert result["ticket_number"] == first["ticket_number"]
    assert event_rows(rig.data_dir, "SELECT count(*) FROM events WHERE request_id = ?", (first["temp_id"],)) == [(1,)]
    synced = httpx.get(first["status_url"], timeout=10).text
    assert "Menunggu" in synced
    assert first["ticket_number"] in synced


def test_remote_config_is_picked_up_whole_and_only_between_customers(page: Page, rig_patient: KioskRig) -> None:
    rig = rig_patient
    open_kiosk(page, rig)
    page.click("#lang-en")  # a customer is choosing
    config = httpx.get(f"{rig.appliance.api}/config", headers=rig.admin(), timeout=10).json()
    config = config.get("config", config)
    for service in config["services"]:
        if service["id"] == "teller":
            service["names"] = {"id": "Kasir", "en": "Cashier"}
        if service["id"] == "cs":
            service["active"] = False
    config["kiosk"]["accent_color"] = "#7A1FA2"
    r = httpx.put(f"{rig.appliance.api}/config", json=config, headers=rig.admin(), timeout=10)
    assert r.status_code == 200, r.text
    teller = page.locator("#services [data-service='teller'] .sname")
    cs = page.locator("#services [data-service='cs']")
    page.wait_for_selector("#app[data-pending='true']", state="attached", timeout=15000)  # fetched, held back
    expect(teller).to_have_text("Teller")  # not swapped under the customer's finger
    page.click("[data-go='lang']")
    page.click("#lang-en")
    expect(teller).to_have_text("Cashier")
    expect(cs).to_have_class(re.compile("closed"))
    expect(cs.locator(".sinfo")).to_have_text("Not available today")
    accent = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent')")
    assert accent.strip().upper() == "#7A1FA2"
    # The start screen and header follow too, without a reload: languages, welcome line, logo text.
    config = httpx.get(f"{rig.appliance.api}/config", headers=rig.admin(), timeout=10).json()
    config = config.get("config", config)
    config["languages"] = ["en"]
    config["kiosk"]["title"] = {"en": "Welcome to the new branch"}
    config["kiosk"]["logo_text"] = "NEW BANK"
    assert httpx.put(f"{rig.appliance.api}/config", json=config, headers=rig.admin(), timeout=10).status_code == 200
    page.click("[data-go='lang']")  # back on the start screen: the next document is applied there
    expect(page.locator("#lang-title")).to_have_text("Welcome to the new branch", timeout=15000)
    expect(page.locator("#screen-lang .lang")).to_have_count(1)
    expect(page.locator(".brand .logo")).to_have_text("NEW BANK")


def test_a_kiosk_renews_its_token_before_it_expires(page: Page, rig: KioskRig) -> None:
    # A token issued five days ago: two days left of its seven.
    user = User(username="kiosk-1", role="device")
    aging, _ = TokenIssuer(load_secret(rig.data_dir)).issue(user, "jkt-sudirman", now=time.time() - 5 * 24 * 3600)
    page.goto(f"{rig.appliance.base_url}/kiosk#token={aging}")
    page.wait_for_function(f"localStorage.getItem('qms.kiosk.token') !== {aging!r}", timeout=15000)
    fresh = page.evaluate("localStorage.getItem('qms.kiosk.token')")
    left = jwt.decode(fresh, options={"verify_signature": False})["exp"] - time.time()
    assert left > 6.9 * 24 * 3600  # a full week again
    r = httpx.get(f"{rig.appliance.api}/snapshot", headers={"Authorization": f"Bearer {fresh}"}, timeout=10)
    assert r.status_code == 200


def test_large_text_on_a_landscape_screen_keeps_every_button_reachable(page: Page, rig: KioskRig) -> None:
    open_kiosk(page, rig)  # 1920 x 1080 landscape
    page.click("#btn-large")
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    box = page.locator("#btn-done").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= LANDSCAPE["height"]  # on screen without a swipe (more sizes: test_layout.py)
    expect(page.locator("#btn-done")).to_be_in_viewport(ratio=1)
    page.click("#btn-done")
    expect(page.locator("#screen-lang")).to_be_visible()


def test_with_both_details_missing_the_keypad_goes_to_the_first_one(page: Page, rig: KioskRig) -> None:
    config = httpx.get(f"{rig.appliance.api}/config", headers=rig.admin(), timeout=10).json()
    config = config.get("config", config)
    config["kiosk"] |= {"phone_input": "required", "customer_ref_input": "required"}
    assert httpx.put(f"{rig.appliance.api}/config", json=config, headers=rig.admin(), timeout=10).status_code == 200
    open_kiosk(page, rig)
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    page.click("#btn-issue")  # both empty
    expect(page.locator("#phone-error")).not_to_be_empty()
    expect(page.locator("#ref-error")).not_to_be_empty()
    expect(page.locator("#field-phone")).to_have_class(re.compile("active"))  # typing goes to the phone first
    expect(page.locator("#field-ref")).not_to_have_class(re.compile("active"))


def test_a_code_longer_than_any_qr_gets_the_check_in_words_not_the_generic_error(page: Page, rig: KioskRig) -> None:
    """The most a QR holds (7089 digits) is refused 422 checkin_invalid; one digit more is a 400 from the appliance,
    which the kiosk says in the same words ("cannot be read here"), not "something went wrong"."""
    open_kiosk(page, rig)
    for digits in (7089, 7090):
        page.click("#btn-checkin")
        expect(page.locator("#screen-checkin")).to_be_visible()
        page.fill("#checkin-code", "1" * digits)
        page.eval_on_selector("#message", "m => { m.textContent = ''; }")  # the previous answer's words go first
        page.press("#checkin-code", "Enter")
        expect(page.locator("#screen-message")).to_be_visible()
        expect(page.locator("#message")).to_contain_text("tidak dapat dibaca")
        assert "kesalahan" not in page.locator("#message").inner_text()  # not the generic error
        page.click("#screen-message [data-go='lang']")
