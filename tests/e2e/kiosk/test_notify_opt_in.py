"""The kiosk's "notify me" question (US-NOTIF-002, UU PDP consent): shown with the phone number, ticked by default,
and the customer's answer recorded with the ticket (`notify_opt_in` on `ticket.created`), which the hub obeys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.kiosk.conftest import KioskRig, open_kiosk
from tests.support.appliance import event_rows

pytestmark = pytest.mark.slow
SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def created_events(rig: KioskRig) -> list[dict[str, object]]:
    bodies = event_rows(rig.data_dir, "SELECT body FROM events WHERE type = 'ticket.created' ORDER BY seq")
    return [json.loads(bytes(row[0])) for row in bodies]


@pytest.mark.parametrize(("lang", "label", "keep"), [("id", "Kirimi saya pemberitahuan", True),
                                                     ("en", "Notify me", False)])  # fmt: skip
def test_the_notify_me_answer_is_recorded_with_the_ticket(
    page: Page, rig: KioskRig, lang: str, label: str, keep: bool
) -> None:
    open_kiosk(page, rig)
    page.click(f"#lang-{lang}")
    page.click("#services [data-service='teller']")
    question = page.locator("#field-notify")
    expect(question).to_be_visible()
    expect(question).to_contain_text(label)
    expect(page.locator("#notify")).to_be_checked()  # asked, ticked by default; the customer may untick it
    box, text = page.locator("#notify").bounding_box(), page.locator("#field-notify span").bounding_box()
    assert box is not None
    assert text is not None
    assert 40 <= box["height"] <= 64, box  # touch-sized, not a giant box
    assert 40 <= box["width"] <= 64, box
    assert box["x"] + box["width"] <= text["x"], (box, text)  # beside its label, not above it
    assert abs((box["y"] + box["height"] / 2) - (text["y"] + text["height"] / 2)) < box["height"] / 2, (box, text)
    for key in "081234567890":
        page.click(f".key[data-key='{key}']")
    if not keep:
        page.click("#notify")
        expect(page.locator("#notify")).not_to_be_checked()
    page.wait_for_timeout(250)  # CSS transitions settle for the picture (not a synchronisation)
    page.screenshot(path=str(SHOTS / f"kiosk-notify-opt-in-{lang}.png"))
    page.click("#btn-issue")
    expect(page.locator("#screen-ticket")).to_be_visible()
    [event] = created_events(rig)
    assert event["notify_opt_in"] is keep


def test_no_phone_no_question_recorded(page: Page, rig: KioskRig) -> None:
    """Skipping the details gives no contact, so no answer is recorded (the hub has nobody to notify)."""
    open_kiosk(page, rig)
    page.click("#lang-en")
    page.click("#services [data-service='teller']")
    page.click("#btn-skip")
    expect(page.locator("#screen-ticket")).to_be_visible()
    [event] = created_events(rig)
    assert event.get("notify_opt_in") is None
