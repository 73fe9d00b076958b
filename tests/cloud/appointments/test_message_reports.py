"""Booking messages as first-class notifications (issues 15 and 12), through the real hub app and its booking sender,
with the WhatsApp and Twilio stand-ins:

* the providers' signed delivery reports (WhatsApp status webhook, Twilio status callback) reach booking messages: a
  `delivered` report marks the row delivered; a `failed` one makes it dead and owes the message on the tenant's
  fallback (WhatsApp → SMS), which the webhook's wake-up sends;
* the notify console's message log and DLQ list booking messages (kind named in id/en, contact masked, filters), and
  a dead one is replayed from the DLQ (another tenant's admin sees none and replays none);
* `/metrics` counts booking messages by channel and status beside the notifications'.
* On SQLite and PostgreSQL: reports never move a row backwards nor touch another tenant's rows; a failed SMS (itself
  a WhatsApp fallback) falls back to e-mail, skipped for a booking without one; the log's filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.appointments import outbox
from cloud.hq_users import upsert_user
from cloud.notify import console, policy
from cloud.notify.metrics import registry_for
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import DeliveryUpdate
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.support import NOW, add_branch, book, message_rows, use_whatsapp
from tests.cloud.identity.conftest import csrf_of, sign_in
from tests.support.cloud_hub import wait_until
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn

PASSWORD = "correct horse battery"
HUB = "http://hub.test"
PHONES = ("081234567890", "081298765432")
WA_HOOK = "/api/v1/notify/webhooks/whatsapp/acme"


def _twilio_report(client: TestClient, twilio: TwilioStandIn, sid: str, status: str) -> Any:
    """Twilio's status callback for an SMS it accepted, signed as Twilio signs (the stand-in's own signature)."""
    form = next(f for f in twilio.sent if f["sid"] == sid)
    params = {"AccountSid": twilio.account_sid, "MessageSid": sid, "MessageStatus": status, "SmsSid": sid,
              "SmsStatus": status, "To": form["To"]}  # fmt: skip
    headers = {"X-Twilio-Signature": twilio.sign(form["StatusCallback"], params),
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    return client.post("/api/v1/notify/webhooks/twilio/acme", content=urlencode(params), headers=headers)


@pytest.fixture
def stand_ins() -> Iterator[tuple[WhatsAppStandIn, TwilioStandIn]]:
    with WhatsAppStandIn() as wa, TwilioStandIn() as twilio:
        yield wa, twilio


def _samples(engine: sa.Engine) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry_for(engine).collect()
            for s in m.samples}  # fmt: skip


def _configure(engine: sa.Engine, wa: WhatsAppStandIn, twilio: TwilioStandIn) -> None:
    """The branch, two admins (acme's and another tenant's), WhatsApp and Twilio SMS for acme."""
    add_branch(engine)
    upsert_user(engine, "acme-admin", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "other-admin", PASSWORD, "tenant_admin", ["other"])
    use_whatsapp(engine, wa)
    with transaction(engine) as conn:
        policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example"))
        policy.save_provider(conn, "acme", "sms", "twilio", {
            "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
            "base_url": twilio.base_url, "webhook_url": f"{HUB}/api/v1/notify/webhooks/twilio/acme"},
            REGISTRY["twilio"].SECRETS)  # fmt: skip


def _check_console(client: TestClient, reached: str, failed: str, dead_id: int, sms_id: int) -> None:
    """The log and the DLQ list the booking messages (id/en, contacts masked); another tenant's admin sees none."""
    # the console's log and DLQ list them, contacts masked
    assert sign_in(client, "acme-admin", PASSWORD).status_code == 303
    client.headers["X-CSRFToken"] = csrf_of(client)
    log = client.get("/api/v1/notify/messages?tenant=acme")
    assert log.status_code == 200
    listed = [m for m in log.json()["messages"] if m["source"] == "booking"]
    assert sorted((m["booking_id"], m["channel"], m["status"], m["trigger"]) for m in listed) == sorted([
        (reached, "whatsapp", "delivered", "booking.confirm"), (failed, "whatsapp", "dead", "booking.confirm"),
        (failed, "sms", "delivered", "booking.confirm")])  # fmt: skip
    assert all(m["recipient"] and "****" in m["recipient"] for m in listed)
    assert not any(p[1:] in log.text or p in log.text for p in PHONES)
    only_sms = client.get("/api/v1/notify/messages?trigger=booking.confirm&channel=sms").json()["messages"]
    assert [m["id"] for m in only_sms] == [sms_id]
    assert client.get("/api/v1/notify/messages?trigger=ticket.called").json()["messages"] == []
    (in_dlq,) = client.get("/api/v1/notify/dlq").json()["messages"]
    assert (in_dlq["source"], in_dlq["id"]) == ("booking", dead_id)
    for lang, kind in (("id", "konfirmasi janji temu"), ("en", "booking confirmation")):
        page = client.get(f"/notify/messages?lang={lang}")
        assert page.status_code == 200
        assert page.text.count(kind) >= 3
        assert not any(p[1:] in page.text for p in PHONES)
        dlq = client.get(f"/notify/dlq?lang={lang}")
        assert f'action="/notify/booking-messages/{dead_id}/replay?lang={lang}"' in dlq.text

    # another tenant's admin sees none of them and replays none
    other = TestClient(app=client.app, base_url=HUB)
    assert sign_in(other, "other-admin", PASSWORD).status_code == 303
    other.headers["X-CSRFToken"] = csrf_of(other)
    assert other.get("/api/v1/notify/messages").json()["messages"] == []
    assert other.post(f"/api/v1/notify/booking-messages/{dead_id}/replay").status_code == 404
    assert other.get(f"/api/v1/notify/booking-messages/{dead_id}/attempts").status_code == 404


def test_reports_log_dlq_replay_and_metrics(tmp_path: Path, stand_ins: tuple[WhatsAppStandIn, TwilioStandIn]) -> None:
    wa, twilio = stand_ins
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    _configure(engine, wa, twilio)
    reached, failed = book(engine, phone=PHONES[0]), book(engine, phone=PHONES[1])
    try:
        with TestClient(app=create_app(CloudSettings(db_url=url)), base_url=HUB) as client:
            # the booking sender's first pass sends both confirmations on WhatsApp
            wait_until(lambda: len(wa.sent) == 2, timeout=60, what="both confirmations sent")
            wait_until(
                lambda: all(message_rows(engine, b)[0].status == "sent" for b in (reached, failed)), what="recorded"
            )
            first, second = (message_rows(engine, b)[0] for b in (reached, failed))

            # delivery reports: delivered; failed → dead, and the SMS fallback is owed and sent
            answer = wa.report(WA_HOOK, first.provider_message_id, "delivered", via=client)
            assert (answer.status_code, answer.json()) == (200, {"updates": 1, "applied": 1})
            assert message_rows(engine, reached)[0].status == "delivered"
            read = wa.report(WA_HOOK, first.provider_message_id, "read", via=client)
            assert read.json()["applied"] == 0  # never back
            assert wa.report(WA_HOOK, second.provider_message_id, "failed", 131049, via=client).json()["applied"] == 1
            (dead,) = message_rows(engine, failed, "whatsapp")
            assert (dead.status, dead.code) == ("dead", "131049")
            assert dead.reason.endswith("; fallback: sms")
            wait_until(lambda: [r.status for r in message_rows(engine, failed, "sms")] == ["sent"], timeout=60,
                       what="the SMS fallback sent")  # fmt: skip
            (sms,) = message_rows(engine, failed, "sms")
            assert sms.fallback_of == dead.id
            assert _twilio_report(client, twilio, sms.provider_message_id, "delivered").json()["applied"] == 1
            assert message_rows(engine, failed, "sms")[0].status == "delivered"

            _check_console(client, reached, failed, dead.id, sms.id)

            # replayed from the DLQ: sent again on WhatsApp
            replayed = client.post(f"/notify/booking-messages/{dead.id}/replay?lang=en", follow_redirects=False)
            assert replayed.status_code == 303
            wait_until(
                lambda: message_rows(engine, failed, "whatsapp")[0].status == "sent", timeout=60, what="replayed"
            )
            assert len(wa.sent) == 3
            not_dead = client.post(f"/api/v1/notify/booking-messages/{dead.id}/replay")
            assert not_dead.status_code == 409, not_dead.text
            assert not_dead.headers["content-type"].startswith("application/problem+json")
            assert (not_dead.json()["code"], not_dead.json()["type"]) == ("not_dead", "urn:qms:problem:not_dead")
            attempts = client.get(f"/api/v1/notify/booking-messages/{dead.id}/attempts").json()["attempts"]
            assert [a["outcome"] for a in attempts] == ["sent", "sent"]  # the first, then the replay
            assert client.get("/api/v1/notify/booking-messages/999999/attempts").status_code == 404
            assert client.post("/api/v1/notify/booking-messages/999999/replay").status_code == 404
            assert client.get("/api/v1/notify/dlq").json()["messages"] == []
        samples = _samples(engine)
        assert samples[("qms_booking_messages", (("channel", "whatsapp"), ("status", "delivered")))] == 1
        assert samples[("qms_booking_messages", (("channel", "whatsapp"), ("status", "sent")))] == 1
        assert samples[("qms_booking_messages", (("channel", "sms"), ("status", "delivered")))] == 1
        assert not any(name == "qms_booking_messages_backlog" for name, _ in samples)  # nothing left to send
    finally:
        engine.dispose()


async def test_reports_fallbacks_and_log_on_both_stores(
    store_url: str, stand_ins: tuple[WhatsAppStandIn, TwilioStandIn]
) -> None:
    wa, twilio = stand_ins
    engine = create_store_engine(store_url)
    sender = outbox.Sender(engine, clock=lambda: NOW)
    try:
        _configure(engine, wa, twilio)
        visit = book(engine, phone=PHONES[0])
        await sender.run_once()
        (sent,) = message_rows(engine, visit)

        def report(tenant: str, provider: str, update: DeliveryUpdate) -> int:
            with transaction(engine) as conn:
                return outbox.apply_deliveries(conn, tenant, provider, [update], NOW)

        assert report("acme", "whatsapp", DeliveryUpdate(sent.provider_message_id, "sent")) == 0
        assert report("other", "whatsapp", DeliveryUpdate(sent.provider_message_id, "failed", code="131049")) == 0
        assert report("acme", "twilio", DeliveryUpdate(sent.provider_message_id, "failed", code="131049")) == 0
        assert message_rows(engine, visit)[0].status == "sent"
        assert report("acme", "whatsapp", DeliveryUpdate(sent.provider_message_id, "failed", code="131049",
                                                          reason="undeliverable")) == 1  # fmt: skip
        assert message_rows(engine, visit, "whatsapp")[0].reason == "delivery failed: undeliverable; fallback: sms"
        await sender.run_once()
        (sms,) = message_rows(engine, visit, "sms")
        assert sms.status == "sent"
        assert report("acme", "twilio", DeliveryUpdate(sms.provider_message_id, "failed", code="30003")) == 1
        await sender.run_once()
        assert [(r.channel, r.status, r.reason) for r in message_rows(engine, visit)] == [
            ("whatsapp", "dead", "delivery failed: undeliverable; fallback: sms"),
            ("sms", "dead", "delivery failed: 30003; fallback: email"),
            ("email", "skipped", "no_contact"),  # the booking has no e-mail
        ]  # fmt: skip
        with engine.connect() as conn:
            every = console.messages(conn, None, lambda _t, _b: True, console.Filters(trigger="booking.confirm"))
            dead = console.messages(conn, frozenset({"acme"}), lambda _t, _b: True, console.Filters(status="dead"))
            hidden = console.messages(conn, None, lambda _t, b: b != "jkt-01", console.Filters())
        assert [m["channel"] for m in every] == ["email", "sms", "whatsapp"]  # newest first
        assert {m["channel"] for m in dead} == {"whatsapp", "sms"}
        assert hidden == []
        samples = _samples(engine)
        assert samples[("qms_booking_messages", (("channel", "sms"), ("status", "dead")))] == 1
    finally:
        await sender.stop()
        engine.dispose()
