"""A moved booking tells the customer (issue 15): each move starts the booking's next message round, which owes the
"moved" message (`rescheduled`) with the new time and QR, supersedes the old round's unsent messages, and owes the
reminder again for the new time; `delivered_at` is stamped by the provider's delivery report. On SQLite and
PostgreSQL, against a real SMTP relay (aiosmtpd) and the WhatsApp stand-in, with the clock injected.

* One move after the reminder went: one "moved" mail (new time, a QR that decodes to the new day, the .ics with
  SEQUENCE 1), then the reminder again for the new day; a move into the reminder window reminds two hours later,
  as a fresh booking would be. Every mail has its own Message-ID.
* A confirmation still being retried when the booking moves is superseded; two moves make two "moved" mails; a
  cancel after a third move supersedes its "moved" message; a move before the confirmation was owed sends the
  confirmation with the new time and no "moved" message.
* Through the hub app: the JSON API, the staff form and the customer's page each move the booking; the WhatsApp
  template `janji_temu_dijadwalkan_ulang` carries the new code; the delivery report stamps `delivered_at`, shown on
  the staff page, in the bookings JSON and in the notify log; a dead "moved" message is replayed from the notify API.
* The provider reporting a "moved" message before answering its send: the reports wait and are applied by the record.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import sqlalchemy as sa
import zxingcpp
from litestar.testing import TestClient
from PIL import Image
from sqlalchemy.engine import Engine

from cloud.appointments import booking, outbox
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.notify.tables import parked_reports
from cloud.store import transaction
from cloud.web.app import CloudSettings, create_app
from sync.appointments import verify
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import (
    JKT,
    NOW,
    SLOT,
    Clock,
    EagerWhatsApp,
    book,
    message_rows,
    use_provider,
    use_whatsapp,
)
from tests.cloud.notify.smtp_server import Received, SmtpServer
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
from tests.support.providers.whatsapp import WhatsAppStandIn

THURSDAY = datetime(2027, 3, 4, 10, 0, tzinfo=JKT)


def _move(engine: Engine, booking_id: str, at: datetime, now: datetime) -> booking.Booking:
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        return booking.reschedule(conn, branch, booking_id, at, now)


def _public(engine: Engine) -> bytes:
    with engine.connect() as conn:
        return bytes.fromhex(booking.public_key_hex(conn, "acme", NOW))


def _qr_day(mail: Received, tmp_path: Path, public: bytes) -> date:
    """The day the mail's attached QR names (decoded from the PNG, signature checked)."""
    (png,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/png"]
    path = tmp_path / f"qr-{hashlib.sha256(png.get_content()).hexdigest()[:8]}.png"
    path.write_bytes(png.get_content())
    (decoded,) = zxingcpp.read_barcodes(Image.open(path))
    return verify(decoded.text, public).day


def _event(mail: Received) -> Any:
    (ics,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "text/calendar"]
    (event,) = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")
    return event


async def _passes(sender: outbox.Sender, times: int = 2) -> None:
    for _ in range(times):
        await sender.run_once()


async def test_a_move_sends_one_moved_mail_with_the_new_qr_then_the_reminder_for_the_new_day(
    engine: Engine, tmp_path: Path
) -> None:
    smtp = SmtpServer(tmp_path / "smtp").start()
    clock = Clock()
    sender = outbox.Sender(engine, clock=clock)
    try:
        use_provider(engine, "email", "email", smtp.settings)
        booking_id = book(engine, email="siti@example.com")
        await _passes(sender)
        clock.now = SLOT - timedelta(hours=20)  # Tuesday 13:00: the reminder of Wednesday's visit goes
        await _passes(sender)
        smtp.wait_for(2)
        _move(engine, booking_id, THURSDAY, clock.now)
        await _passes(sender)
        smtp.wait_for(3)
        clock.now += timedelta(hours=12)  # Wednesday 01:00: Thursday's reminder point (Wed 10:00) is still ahead
        await _passes(sender)
        assert len(smtp.messages) == 3
        clock.now = THURSDAY - timedelta(hours=20)  # Wednesday 14:00: the reminder for Thursday goes
        await _passes(sender)
        smtp.wait_for(4)
        later = datetime(2027, 3, 4, 11, 0, tzinfo=JKT)  # moved again, into the reminder window: 21 h ahead
        _move(engine, booking_id, later, clock.now)
        await _passes(sender)
        smtp.wait_for(5)
        clock.now += timedelta(hours=1)  # an hour after the move: the "moved" mail is enough for now
        await _passes(sender)
        assert len(smtp.messages) == 5
        clock.now += timedelta(hours=1, minutes=1)  # as a fresh booking: reminded two hours after the move
        await _passes(sender)
        smtp.wait_for(6)
    finally:
        await sender.stop()
        smtp.stop()
    _check_moved_mails(smtp.messages, tmp_path, _public(engine))
    assert [(r.kind, r.round, r.status) for r in message_rows(engine, booking_id)] == [
        ("confirm", 0, "sent"), ("remind", 0, "sent"), ("rescheduled", 1, "sent"), ("remind", 1, "sent"),
        ("rescheduled", 2, "sent"), ("remind", 2, "sent")]  # fmt: skip


def _check_moved_mails(mails: list[Received], tmp_path: Path, public: bytes) -> None:
    """Confirmation and reminder for Wednesday, "moved" to Thursday 10:00 and its reminder, "moved" to 11:00 and its
    reminder: the new time, the new day's QR, the same calendar event updated, six Message-IDs."""
    confirm, remind, moved, remind_again, moved_again, last_remind = mails
    assert moved.message["Subject"] == "Janji temu di KCP Kuningan dipindah ke 04/03/2027 10:00"
    assert "telah dipindah ke 04/03/2027 10:00" in moved.text
    assert (_qr_day(confirm, tmp_path, public), _qr_day(remind, tmp_path, public)) == (SLOT.date(), SLOT.date())
    assert _qr_day(moved, tmp_path, public) == THURSDAY.date()  # the new day's code: the old one no longer checks in
    event = _event(moved)
    assert (event.decoded("dtstart"), int(event["sequence"])) == (THURSDAY.astimezone(UTC), 1)
    assert (int(_event(confirm)["sequence"]), event["uid"]) == (0, _event(confirm)["uid"])  # the same event, updated
    assert "Pengingat" in remind_again.text
    assert "04/03/2027 10:00" in remind_again.text
    assert _qr_day(remind_again, tmp_path, public) == THURSDAY.date()
    assert "04/03/2027 11:00" in moved_again.text
    assert int(_event(moved_again)["sequence"]) == 2
    assert "Pengingat" in last_remind.text
    assert "04/03/2027 11:00" in last_remind.text
    assert len({m.message["Message-ID"] for m in mails}) == 6


async def test_moves_supersede_the_old_round_and_a_cancel_the_last(engine: Engine, tmp_path: Path) -> None:
    smtp = SmtpServer(tmp_path / "smtp").start()
    clock = Clock()
    sender = outbox.Sender(engine, clock=clock)
    try:
        early = book(engine, email="budi@example.com")  # booked before the tenant had e-mail: not yet confirmed
        _move(engine, early, SLOT + timedelta(hours=1), clock.now)
        use_provider(engine, "email", "email", smtp.settings)
        smtp.fail_with("451 4.3.0 try again later")
        booking_id = book(engine, email="siti@example.com")
        await sender.run_once()
        assert {(r.kind, r.status) for r in message_rows(engine, booking_id)} == {("confirm", "failed")}
        _move(engine, booking_id, SLOT + timedelta(minutes=30), clock.now)  # same day: the code stays
        smtp.fail_with(None)
        clock.now += timedelta(minutes=1)  # past the confirmation's back-off
        await _passes(sender)
        smtp.wait_for(2)
        _move(engine, booking_id, SLOT + timedelta(minutes=90), clock.now)
        await _passes(sender)
        smtp.wait_for(3)
        _move(engine, booking_id, SLOT + timedelta(minutes=120), clock.now)
        await asyncio.to_thread(outbox.owe, engine, clock.now)  # owed, then the customer cancels before it goes
        with transaction(engine) as conn:
            booking.cancel(conn, "acme", booking_id, clock.now)
        await _passes(sender)
    finally:
        await sender.stop()
        smtp.stop()
    assert len(smtp.messages) == 4
    by_address: dict[str, list[Received]] = {m.recipients[0]: [] for m in smtp.messages}
    for mail in smtp.messages:
        by_address[mail.recipients[0]].append(mail)
    (confirmation,) = by_address["budi@example.com"]  # the move came first: the confirmation tells the new time
    assert "10:00" in confirmation.message["Subject"]
    assert [(r.kind, r.round, r.status) for r in message_rows(engine, early)] == [("confirm", 1, "sent")]
    first, second, cancelled = by_address["siti@example.com"]
    assert "03/03/2027 09:30" in first.text
    assert "03/03/2027 10:30" in second.text
    assert "03/03/2027 11:00" in cancelled.message["Subject"]  # the cancellation names the time it had last
    assert len({first.message["Message-ID"], second.message["Message-ID"], cancelled.message["Message-ID"]}) == 3
    assert [(r.kind, r.round, r.status, r.reason) for r in message_rows(engine, booking_id)] == [
        ("confirm", 0, "superseded", "the booking was moved"), ("rescheduled", 1, "sent", None),
        ("rescheduled", 2, "sent", None), ("rescheduled", 3, "superseded", "booking is cancelled"),
        ("cancelled", 3, "sent", None)]  # fmt: skip


def _delivery_is_stamped_and_shown(client: TestClient[Any], wa: WhatsAppStandIn, booking_id: str) -> None:
    """The "moved" message's delivery report stamps `delivered_at` (the webhook's time), shown on the staff page (id
    and en), in the bookings JSON and in the notify log."""
    before = datetime.now(UTC)
    report = wa.report("/api/v1/notify/webhooks/whatsapp/acme", wa.sent[1]["id"], "delivered", via=client)
    assert (report.status_code, report.json()) == (200, {"updates": 1, "applied": 1})
    after = datetime.now(UTC)
    listed = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-04").json()["bookings"]
    (_confirm, told) = listed[0]["messages"]
    assert (told["kind"], told["round"], told["status"]) == ("rescheduled", 1, "delivered")
    delivered_at = datetime.fromisoformat(told["delivered_at"])
    assert before <= delivered_at <= after
    page = client.get("/appointments?tenant=acme&branch=jkt-01&day=2027-03-04&lang=en").text
    assert "Moved (move 1) · whatsapp: delivered" in page
    assert f"delivered {delivered_at.astimezone(JKT):%d/%m %H:%M}" in page
    page_id = client.get("/appointments?tenant=acme&branch=jkt-01&day=2027-03-04&lang=id").text
    assert "Jadwal diganti (pindah ke-1) · whatsapp: diterima" in page_id
    log = client.get("/api/v1/notify/messages?trigger=booking.rescheduled").json()["messages"]
    assert [(m["booking_id"], m["round"], m["status"]) for m in log] == [(booking_id, 1, "delivered")]
    assert datetime.fromisoformat(log[0]["delivered_at"]) == delivered_at


def test_every_move_path_tells_the_customer_on_whatsapp_and_delivery_is_stamped(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", ["acme"])
    with WhatsAppStandIn() as wa:
        use_whatsapp(engine, wa)
        with transaction(engine) as conn:
            policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example", whatsapp_fallback="none"))
        booking_id = book(engine, email=None, phone="081234567890")
        app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
        app.state["appt_clock"] = clock
        app.state["appt_mail_seconds"] = 3600  # one pass at start and one per booking change
        with TestClient(app=app) as client:
            wait_until(
                lambda: [r.status for r in message_rows(engine, booking_id)] == ["sent"], what="confirmation sent"
            )
            sign_in(client, "ana")

            # the JSON API moves it to Thursday: the template carries the new code
            moved = client.post(f"/api/v1/appointments/acme/jkt-01/bookings/{booking_id}/reschedule",
                                json={"starts_at": THURSDAY.isoformat()})  # fmt: skip
            assert moved.status_code == 200, moved.text
            new_code = moved.json()["qr_text"]
            wait_until(lambda: [r.status for r in message_rows(engine, booking_id)] == ["sent", "sent"],
                       what="the moved message sent")  # fmt: skip
            template = wa.sent[1]["template"]
            assert template["name"] == "janji_temu_dijadwalkan_ulang"
            params = [p["text"] for p in template["components"][0]["parameters"]]
            assert params[3] == "04/03/2027 10:00"
            assert params[4] == new_code
            assert verify(new_code, _public(engine)).day == THURSDAY.date()
            assert wa.sent[0]["template"]["components"][0]["parameters"][4]["text"] != new_code

            _delivery_is_stamped_and_shown(client, wa, booking_id)

            # the staff form moves it again; WhatsApp refuses for good: a dead letter, replayed from the notify API
            wa.then("template")
            form = client.post(f"/appointments/acme/jkt-01/bookings/{booking_id}/reschedule?lang=en",
                               data={"day": "2027-03-04", "starts_at": THURSDAY.replace(hour=11).isoformat()},
                               follow_redirects=False)  # fmt: skip
            assert form.status_code == 303, form.text
            assert "saved=1" in form.headers["location"]
            dead = wait_until(lambda: next((r for r in message_rows(engine, booking_id) if r.status == "dead"), None),
                              what="the second moved message dead")  # fmt: skip
            assert (dead.kind, dead.round, dead.code) == ("rescheduled", 2, "132001")
            (in_dlq,) = client.get("/api/v1/notify/dlq").json()["messages"]
            assert (in_dlq["id"], in_dlq["trigger"], in_dlq["round"]) == (dead.id, "booking.rescheduled", 2)
            assert client.post(f"/api/v1/notify/booking-messages/{dead.id}/replay").json() == {"replayed": True}
            wait_until(lambda: next(r for r in message_rows(engine, booking_id) if r.id == dead.id).status == "sent",
                       what="the replay sent")  # fmt: skip
            assert wa.sent[-1]["template"]["components"][0]["parameters"][3]["text"] == "04/03/2027 11:00"
            attempts = client.get(f"/api/v1/notify/booking-messages/{dead.id}/attempts").json()["attempts"]
            assert [a["outcome"] for a in attempts] == ["permanent", "sent"]

            # the customer's own page moves it to Friday: a third moved message, with Friday's code
            page_move = client.post(f"/book/acme/v/{new_code}/reschedule?lang=id",
                                    data={"starts_at": datetime(2027, 3, 5, 9, 0, tzinfo=JKT).isoformat()},
                                    follow_redirects=False)  # fmt: skip
            assert page_move.status_code == 303, page_move.text
            friday_code = page_move.headers["location"].split("/v/")[1].split("?")[0]
            wait_until(lambda: len(wa.sent) == 4, what="the third moved message sent")
            params = [p["text"] for p in wa.sent[3]["template"]["components"][0]["parameters"]]
            assert (params[3], params[4]) == ("05/03/2027 09:00", friday_code)
    assert [(r.kind, r.round, r.channel, r.status) for r in message_rows(engine, booking_id)] == [
        ("confirm", 0, "whatsapp", "sent"), ("rescheduled", 1, "whatsapp", "delivered"),
        ("rescheduled", 2, "whatsapp", "sent"), ("rescheduled", 3, "whatsapp", "sent")]  # fmt: skip


def test_an_early_report_of_a_moved_message_is_applied_when_its_send_is_recorded(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The provider reports `sent` and `delivered` of the round-1 message before answering its send: parked, then
    applied by the record, with `delivered_at` stamped (as for the confirmation)."""
    with EagerWhatsApp() as wa:
        use_whatsapp(engine, wa)
        booking_id = book(engine, email=None, phone="081234567890")
        app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
        app.state["appt_mail_seconds"] = 0.5  # the move below is made in the store: the sender finds it by itself

        def delivered(kind: str) -> Any:
            return next(
                (r for r in message_rows(engine, booking_id) if r.kind == kind and r.status == "delivered"), None
            )

        with served(app) as base:
            wa.webhook_url = f"{base}/api/v1/notify/webhooks/whatsapp/acme"
            wa.hub_up.set()
            wait_until(lambda: delivered("confirm"), timeout=60, what="the confirmation delivered")
            _move(engine, booking_id, THURSDAY, NOW)
            moved = wait_until(lambda: delivered("rescheduled"), timeout=60, what="the moved message delivered")
    assert [(r.status_code, r.json()) for r in wa.callbacks] == [(200, {"updates": 1, "applied": 0})] * 4
    assert (moved.round, moved.provider_message_id) == (1, wa.sent[1]["id"])
    assert moved.delivered_at is not None
    assert wa.sent[1]["template"]["name"] == "janji_temu_dijadwalkan_ulang"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(parked_reports)).scalar_one() == 0
