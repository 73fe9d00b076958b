"""Booking confirmations and reminders through their outbox (issue 15): against a real SMTP relay (aiosmtpd, STARTTLS)
and the WhatsApp and Twilio stand-ins, with the clock injected.

* A confirmation the relay refuses for now (451) is retried and sent once, however many senders run; the reminder
  the day before is sent once; each with the QR attached; the attempt log shows every try.
* A permanent refusal (550) is a dead letter; replayed, it is sent.
* A cancelled booking's owed message is superseded, never sent.
* With WhatsApp, the booking code and its link go as the template's parameters; a number not on WhatsApp (131026)
  gets the tenant's fallback, an SMS with the link, once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.appointments import booking, outbox
from cloud.appointments.tables import appt_message_attempts
from cloud.store import transaction
from sync.appointments import verify
from tests.cloud.appointments.support import NOW, SLOT, Clock, book, message_rows, use_provider, use_whatsapp
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn


def _attempts(engine: Engine, message_id: int) -> list[str | None]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(appt_message_attempts.c.outcome)
                .where(appt_message_attempts.c.message_id == message_id)
                .order_by(appt_message_attempts.c.attempt)
            ).scalars()
        )


async def _passes(senders: list[outbox.Sender], times: int = 1) -> None:
    for _ in range(times):
        await asyncio.gather(*(s.run_once() for s in senders))


async def test_confirmation_is_retried_then_sent_once_and_the_reminder_once(engine: Engine, tmp_path: Path) -> None:
    smtp = SmtpServer(tmp_path / "smtp").start()
    clock = Clock()
    senders = [outbox.Sender(engine, clock=clock) for _ in range(2)]  # two hub replicas
    try:
        use_provider(engine, "email", "email", smtp.settings)
        booking_id = book(engine, email="siti@example.com")
        smtp.fail_with("451 4.3.0 try again later")
        await _passes(senders)
        (row,) = message_rows(engine, booking_id)
        assert (row.kind, row.channel, row.status) == ("confirm", "email", "failed")
        smtp.fail_with(None)
        clock.now += timedelta(minutes=1)  # past the first back-off (≤ 2 s)
        await _passes(senders, times=3)
        smtp.wait_for(1)
        (row,) = message_rows(engine, booking_id)
        assert row.status == "sent"
        assert _attempts(engine, row.id) == ["retry", "sent"]
        clock.now = SLOT - timedelta(hours=20)  # the day before: the reminder is owed
        await _passes(senders, times=3)
        smtp.wait_for(2)
        await _passes(senders, times=2)
    finally:
        for sender in senders:
            await sender.stop()
        smtp.stop()
    confirm, remind = smtp.messages
    assert [m.recipients for m in smtp.messages] == [["siti@example.com"], ["siti@example.com"]]
    assert "03/03/2027 09:00" in confirm.text
    assert "Pengingat" in remind.text
    for mail in (confirm, remind):
        (png,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/png"]
        assert png.get_content()[:4] == b"\x89PNG"
    assert [(r.kind, r.status) for r in message_rows(engine, booking_id)] == [("confirm", "sent"), ("remind", "sent")]


async def test_a_dead_confirmation_is_replayed_and_a_cancelled_booking_is_not_sent(
    engine: Engine, tmp_path: Path
) -> None:
    smtp = SmtpServer(tmp_path / "smtp").start()
    clock = Clock()
    sender = outbox.Sender(engine, clock=clock)
    try:
        use_provider(engine, "email", "email", smtp.settings)
        refused = book(engine, email="siti@example.com")
        smtp.fail_with("550 5.1.1 mailbox unavailable")
        await sender.run_once()
        (dead,) = message_rows(engine, refused)
        assert dead.status == "dead"
        smtp.fail_with(None)
        with transaction(engine) as conn:
            assert outbox.replay(conn, "acme", dead.id, clock.now)
            assert not outbox.replay(conn, "other", dead.id, clock.now)  # another tenant's row: untouched
        await sender.run_once()
        smtp.wait_for(1)
        assert message_rows(engine, refused)[0].status == "sent"
        assert _attempts(engine, dead.id) == ["permanent", "sent"]
        cancelled = book(engine, email="budi@example.com")
        await asyncio.to_thread(outbox.owe, engine, clock.now)  # owed, then the customer cancels before it goes
        with transaction(engine) as conn:
            booking.cancel(conn, "acme", cancelled, clock.now)
        await sender.run_once()
    finally:
        await sender.stop()
        smtp.stop()
    row, cancellation = message_rows(engine, cancelled)
    assert (row.kind, row.status, row.reason) == ("confirm", "superseded", "booking is cancelled")
    assert (cancellation.kind, cancellation.status) == ("cancelled", "sent")  # the customer is told it is cancelled
    assert len(smtp.messages) == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_whatsapp_carries_the_booking_code_and_a_number_not_on_whatsapp_gets_an_sms(engine: Engine) -> None:
    clock = Clock()
    sender = outbox.Sender(engine, clock=clock)
    with WhatsAppStandIn() as wa, TwilioStandIn() as twilio:
        use_whatsapp(engine, wa)
        use_provider(engine, "sms", "twilio", {
            "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
            "base_url": twilio.base_url})  # fmt: skip
        try:
            on_wa = book(engine, phone="0812-3456-7890", lang="en")
            await sender.run_once()
            wa.then("permanent")  # the next number is not on WhatsApp (131026)
            not_on_wa = book(engine, phone="081298765432")
            await sender.run_once()
            await sender.run_once()
        finally:
            await sender.stop()
        (sent,) = wa.sent
        template = sent["template"]
        assert sent["to"] in ("+6281234567890", "6281234567890")
        assert (template["name"], template["language"]["code"]) == ("janji_temu_dikonfirmasi", "en")
        params = [p["text"] for p in template["components"][0]["parameters"]]
        code = params[4]
        with engine.connect() as conn:
            public = bytes.fromhex(booking.public_key_hex(conn, "acme", NOW))
        assert verify(code, public).branch_id == "jkt-01"
        assert f"https://hq.example/book/acme/v/{code}" in params
        assert [(r.channel, r.status) for r in message_rows(engine, on_wa)] == [("whatsapp", "sent")]
        dead, sms = message_rows(engine, not_on_wa)
        assert (dead.channel, dead.status, dead.code) == ("whatsapp", "dead", "131026")
        assert (sms.channel, sms.status, sms.fallback_of) == ("sms", "sent", dead.id)
        (text,) = twilio.sent
        assert text["To"] == "+6281298765432"
        assert "https://hq.example/book/acme/v/" in text["Body"]
