"""Booking messages (confirmation, reminder, and "your visit was moved") through an outbox, as notifications are
(US-NOTIF-004): retries with back-off, dead letters with replay, an attempt log, and WhatsApp delivery of the booking
code where the tenant has WhatsApp. The notifications outbox is keyed by ticket, and a booking has no ticket, so these
rows live in `appt_messages` (key: tenant, booking, kind, channel, round) and are sent through the same provider
adapters (`cloud.notify.providers`) with the tenant's own provider settings, policy (switches, attempts, WhatsApp
fallback) and back-off (`cloud.notify.outbox.backoff`).

* Owed once: a pass finds bookings whose confirmation (or, within 24 h of the visit, reminder) is not yet owed,
  and in one transaction marks the booking (`confirmed_at` / `reminded_at`, a conditional update) and writes one row
  per usable channel — e-mail (with the QR as PNG) when the booking has an address and the tenant an e-mail provider;
  WhatsApp (template `janji_temu_dikonfirmasi` / `janji_temu_pengingat`, the booking code and link as parameters)
  when it has a phone and the tenant WhatsApp. A booking whose tenant has no provider for its contacts stays owed
  until it has one.
* Rounds: a move (`booking.reschedule`, from the staff page, the customer's page or the JSON API) starts the
  booking's next round. Unsent messages of an older round are `superseded` when claimed; the round's `rescheduled`
  message (template `janji_temu_dijadwalkan_ulang`; the e-mail with the new QR, which a move to another day changes,
  and the .ics) is owed, unless the confirmation still is (it tells the new time); and the reminder is owed again
  for the new time by the first reminder's rule, "just booked" counted from the move. The round is in the key and in
  the e-mail's Message-ID (round 0 keeps the key it always had), so every move's messages are new messages.
* Sent at most once per row: claimed under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL) before the provider is
  called; the result recorded only by the claim that holds the row. As with tickets, SMTP takes no idempotency key:
  a hub killed between the relay's answer and the record sends that e-mail again, with the same Message-ID.
* Re-checked before each attempt: a cancelled booking, or a reminder for a visit already begun, is `superseded`.
* WhatsApp refusing for good (not on WhatsApp, template missing) owes the message on the tenant's fallback channel
  (`whatsapp_fallback`: SMS with the link, or the e-mail), once.
* Delivery reports (the provider webhooks of `cloud.notify.web`) reach these rows too, matched by provider and
  provider message id (`apply_deliveries`): `delivered`, or a `failed` report makes the row `dead` and owes the
  message on the channel's fallback (WhatsApp → `whatsapp_fallback`, SMS → `sms_fallback`), as notifications do.
  A report that came before its send was recorded waits in `notify_parked_reports` (`cloud.notify.reports`) and is
  applied by the transaction that records the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.tables import branch_profiles
from cloud.appointments import booking, messages
from cloud.appointments.tables import appt_bookings, appt_message_attempts, appt_messages
from cloud.background import Background
from cloud.notify import contacts, policy, reports
from cloud.notify.outbox import FALLBACK_CODES, LEASE, backoff
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import (
    Attachment,
    DeliveryUpdate,
    OutgoingMessage,
    Provider,
    SendResult,
    WhatsAppTemplate,
)
from cloud.notify.tables import providers
from cloud.store import insert_ignore, writer_turn

log = logging.getLogger("qms.cloud.appointments")
KINDS = ("confirm", "remind", "rescheduled", "cancelled")
REMIND_BEFORE = messages.REMIND_BEFORE
JUST_BOOKED = timedelta(hours=2)  # booked this close to the reminder time: the confirmation is enough
WA_TEMPLATES = {
    "confirm": "janji_temu_dikonfirmasi",
    "remind": "janji_temu_pengingat",
    "rescheduled": "janji_temu_dijadwalkan_ulang",
    "cancelled": "janji_temu_dibatalkan",
}
DUE = ("pending", "failed")
BATCH = 20
PROVIDER_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat()


# --- owing ---------------------------------------------------------------------------------------------------------


def _has_provider(channel: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(providers.c.tenant_id == appt_bookings.c.tenant_id, providers.c.channel == channel)


def _candidates(conn: Connection, now: datetime) -> list[tuple[Any, str]]:
    """Bookings owed a message now whose tenant has a provider for one of their contacts (the others wait for one
    without taking the places of later bookings in the batch)."""
    reachable = sa.or_(sa.and_(appt_bookings.c.email.is_not(None), _has_provider("email")),
                       sa.and_(appt_bookings.c.phone.is_not(None), _has_provider("whatsapp")))  # fmt: skip
    live = sa.and_(appt_bookings.c.status == "booked", reachable)
    confirm = conn.execute(
        sa.select(appt_bookings).where(live, appt_bookings.c.confirmed_at.is_(None))
        .order_by(appt_bookings.c.created_at).limit(200)
    ).all()  # fmt: skip
    remind = conn.execute(
        sa.select(appt_bookings)
        .where(
            live,
            appt_bookings.c.confirmed_at.is_not(None),
            appt_bookings.c.reminded_at.is_(None),
            appt_bookings.c.starts_at <= _iso(now + REMIND_BEFORE),
            appt_bookings.c.starts_at > _iso(now),
            # booked (or moved) this close to the reminder time: not yet, the confirmation (or "moved") is enough
            sa.func.coalesce(appt_bookings.c.moved_at, appt_bookings.c.created_at) < _iso(now - JUST_BOOKED),
        )
        .order_by(appt_bookings.c.starts_at)
        .limit(200)
    ).all()
    moved = conn.execute(
        sa.select(appt_bookings)
        .where(live, appt_bookings.c.round > 0, appt_bookings.c.rescheduled_at.is_(None))
        .order_by(appt_bookings.c.moved_at).limit(200)
    ).all()  # fmt: skip
    return [(r, "confirm") for r in confirm] + [(r, "rescheduled") for r in moved] + [(r, "remind") for r in remind]


def usable_channels(conn: Connection, row: Any) -> list[str]:
    """The channels a booking's message can go on now: the tenant has the provider and the channel switched on, and
    the booking the contact."""
    rules = policy.load(conn, row.tenant_id)
    if not rules.enabled:
        return []
    configured = policy.provider_settings(conn, row.tenant_id)
    found = []
    if contacts.normalise_email(row.email) and "email" in configured and rules.channels.get("email", False):
        found.append("email")
    if contacts.normalise_phone(row.phone) and "whatsapp" in configured and rules.channels.get("whatsapp", False):
        found.append("whatsapp")
    return found


def _insert(conn: Connection, row: Any, kind: str, channel: str, now: datetime, fallback_of: int | None = None) -> None:
    """Owe one message (`row`: the booking, or the message it falls back from; either carries the round)."""
    stamp = _iso(now)
    conn.execute(
        insert_ignore(conn, appt_messages).values(
            tenant_id=row.tenant_id, branch_id=row.branch_id, booking_id=row.booking_id, kind=kind, channel=channel,
            round=row.round, status="pending", attempts=0, next_attempt_at=stamp, fallback_of=fallback_of,
            created_at=stamp, updated_at=stamp,
        )
    )  # fmt: skip


def owe_cancelled(conn: Connection, tenant: str, booking_id: str, now: datetime) -> int:
    """A cancellation (by staff, the JSON API or the customer on their own page) owes the customer a `cancelled`
    message in the booking's round, in the caller's transaction, on every usable channel — when the customer was
    told of the booking (its confirmation was owed); returns how many rows were owed."""
    row = conn.execute(
        sa.select(appt_bookings).where(appt_bookings.c.tenant_id == tenant, appt_bookings.c.booking_id == booking_id)
    ).one_or_none()
    if row is None or row.status != "cancelled" or row.confirmed_at is None:
        return 0
    channels = usable_channels(conn, row)
    for channel in channels:
        _insert(conn, row, "cancelled", channel, now)
    return len(channels)


def owe(engine: Engine, now: datetime) -> int:
    """Write the rows owed now (each booking, kind and round once: the booking is marked in the same transaction,
    only if it is still in the round it was found in); returns how many bookings got rows."""
    with writer_turn(engine), engine.connect() as conn:  # on SQLite every transaction takes the write lock
        found = _candidates(conn, now)
    owed = 0
    for candidate, kind in found:
        column = {"confirm": appt_bookings.c.confirmed_at, "remind": appt_bookings.c.reminded_at,
                  "rescheduled": appt_bookings.c.rescheduled_at}[kind]  # fmt: skip
        with writer_turn(engine), engine.begin() as conn:
            # none: the contact does not parse or the tenant switched the channel off; marked all the same, so it
            # does not come back every pass
            channels = usable_channels(conn, candidate)
            marked = conn.execute(
                appt_bookings.update()
                .where(
                    appt_bookings.c.booking_id == candidate.booking_id,
                    column.is_(None),
                    appt_bookings.c.round == candidate.round,
                )  # moved since it was read: the next pass
                .values({column.name: _iso(now)})
            ).rowcount
            if marked != 1:
                continue  # another replica owed it, or the booking moved meanwhile
            for channel in channels:
                _insert(conn, candidate, kind, channel, now)
            owed += bool(channels)
    return owed


# --- claiming ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A claimed row, ready for its provider."""

    message_id: int
    attempt: int
    log_no: int
    tenant: str
    channel: str
    provider: str
    settings: dict[str, Any]
    message: OutgoingMessage
    max_attempts: int
    fallback: str


def _due(stamp: str) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(appt_messages.c.status.in_(DUE), appt_messages.c.next_attempt_at <= stamp),
        sa.and_(appt_messages.c.status == "sending", appt_messages.c.lease_until <= stamp),
    )


def next_due(engine: Engine) -> datetime | None:
    """When the next row falls due (a retry, an expired lease), for the sender's sleep."""
    with writer_turn(engine), engine.connect() as conn:
        first = conn.execute(
            sa.select(sa.func.min(appt_messages.c.next_attempt_at)).where(appt_messages.c.status.in_(DUE))
        ).scalar_one_or_none()
        lease = conn.execute(
            sa.select(sa.func.min(appt_messages.c.lease_until)).where(appt_messages.c.status == "sending")
        ).scalar_one_or_none()
    stamps = [datetime.fromisoformat(s) for s in (first, lease) if s]
    return min(stamps, default=None)


def superseded_reason(kind: str, visit: booking.Booking | None, now: datetime, round_: int = 0) -> str | None:
    """Why the message (of the booking's round `round_`) no longer makes sense (None: send it)."""
    if visit is None:
        return "booking is gone"
    if kind == "cancelled":  # the one message of a cancelled booking
        return None if visit.status == "cancelled" else f"booking is {visit.status}"
    if visit.status != "booked":
        return f"booking is {visit.status}"
    if round_ < visit.round:
        return "the booking was moved"
    if kind == "remind" and visit.starts_at <= now:
        return "the visit has begun"
    return None


def _finish(conn: Connection, message_id: int, status: str, now: datetime, **values: Any) -> None:
    conn.execute(
        appt_messages.update()
        .where(appt_messages.c.id == message_id)
        .values(status=status, updated_at=_iso(now), lease_until=None, next_attempt_at=None, **values)
    )


def _contact(conn: Connection, tenant: str, booking_id: str) -> tuple[str | None, str | None]:
    row = conn.execute(
        sa.select(appt_bookings.c.email, appt_bookings.c.phone).where(
            appt_bookings.c.tenant_id == tenant, appt_bookings.c.booking_id == booking_id
        )
    ).one()
    return contacts.normalise_email(row.email), contacts.normalise_phone(row.phone)


def link_base(conn: Connection, tenant: str, hub_url: str) -> str:
    """Where booking messages' links point: the tenant's public address (notification policy `public_url`), else the
    hub's own (`app.state["public_url"]`, QMS_PUBLIC_URL); "" when neither is set — customers' links cannot be made
    absolute, which the staff page should say."""
    return (policy.load(conn, tenant).public_url or hub_url).rstrip("/")


def build_message(conn: Connection, row: Any, visit: booking.Booking, to: str, now: datetime,
                  hub_url: str = "") -> OutgoingMessage:  # fmt: skip
    """The row's message: the e-mail with the QR attached, the WhatsApp template with the code, or the SMS. Its link
    to the booking's page is absolute: the tenant's public address (notification policy `public_url`), else the
    hub's own (`qms-cloud serve --public-url`, QMS_PUBLIC_URL)."""
    branch = booking.load_branch(conn, row.tenant_id, visit.branch_id)
    assert branch is not None
    offered = {s.service_id: s for s in booking.services(conn, row.tenant_id, branch.branch_id)}
    service = offered[visit.service_id].name if visit.service_id in offered else visit.service_id
    code = booking.qr_text(conn, visit, now)
    base = link_base(conn, row.tenant_id, hub_url)
    link = f"{base}/book/{row.tenant_id}/v/{code}"
    subject, text = messages.compose(row.kind, visit, branch, service, link)
    # the idempotency key the e-mail's Message-ID is made from; round 0 keeps the key of before rounds
    key = f"{row.tenant_id}/{row.branch_id}/booking:{row.booking_id}/{row.kind}/{row.channel}"
    if row.round:
        key += f"/r{row.round}"
    if row.channel == "email":
        minutes = offered[visit.service_id].slot_minutes if visit.service_id in offered else 30
        address = conn.execute(
            sa.select(branch_profiles.c.address).where(branch_profiles.c.tenant_id == row.tenant_id,
                                                       branch_profiles.c.branch_id == visit.branch_id)
        ).scalar_one_or_none() or ""  # fmt: skip
        ical = messages.visit_ical(visit, branch, service, minutes, address, link, visit.lang)
        ics = Attachment(filename=f"booking-{visit.booking_id}.ics", content_type="text/calendar", data=ical)
        if row.kind == "cancelled":  # no QR: only the .ics, its event CANCELLED
            attachments: tuple[Attachment, ...] = (ics,)
        else:
            attachments = (Attachment(filename=f"checkin-{visit.booking_id}.png", content_type="image/png",
                                      data=messages.qr_png(code)), ics)  # fmt: skip
        return OutgoingMessage(key=key, channel="email", to=to, text=text, subject=subject, attachments=attachments)
    when = messages.local_when(visit, branch)
    if row.channel == "whatsapp":
        template = WhatsAppTemplate(WA_TEMPLATES[row.kind], visit.lang,
                                    (visit.name, service, branch.name, when, code, link))  # fmt: skip
        return OutgoingMessage(key=key, channel="whatsapp", to=to, text=text, template=template)
    return OutgoingMessage(
        key=key, channel="sms", to=to, text=messages.short_text(row.kind, visit, branch, service, link)
    )


def claim(engine: Engine, now: datetime, limit: int = BATCH, hub_url: str = "") -> list[Job]:
    """Claim due rows under a lease, re-check their bookings (superseded rows stop here) and build their messages
    (links on the tenant's public address, else `hub_url`)."""
    stamp = _iso(now)
    jobs: list[Job] = []
    with writer_turn(engine), engine.begin() as conn:
        query = sa.select(appt_messages).where(_due(stamp)).order_by(appt_messages.c.next_attempt_at).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for row in conn.execute(query).all():
            visit = booking.get(conn, row.tenant_id, row.booking_id)
            if (why := superseded_reason(row.kind, visit, now, row.round)) is not None:
                _finish(conn, row.id, "superseded", now, reason=why)
                continue
            assert visit is not None
            email, phone = _contact(conn, row.tenant_id, row.booking_id)
            to = email if row.channel == "email" else phone
            found = policy.provider_settings(conn, row.tenant_id).get(row.channel)
            if to is None or found is None:
                _finish(conn, row.id, "skipped", now, reason="no_contact" if to is None else "no_provider")
                continue
            rules = policy.load(conn, row.tenant_id)
            logged = conn.execute(
                sa.select(sa.func.max(appt_message_attempts.c.attempt)).where(
                    appt_message_attempts.c.message_id == row.id
                )
            ).scalar_one_or_none()
            attempt = row.attempts + 1
            job = Job(row.id, attempt, (logged or 0) + 1, row.tenant_id, row.channel, found["provider"],
                      found["settings"], build_message(conn, row, visit, to, now, hub_url), rules.max_attempts,
                      rules.whatsapp_fallback)  # fmt: skip
            conn.execute(
                appt_messages.update()
                .where(appt_messages.c.id == row.id)
                .values(status="sending", attempts=attempt, lease_until=_iso(now + LEASE), provider=job.provider,
                        updated_at=stamp)
            )  # fmt: skip
            conn.execute(appt_message_attempts.insert().values(message_id=row.id, attempt=job.log_no,
                                                               started_at=stamp, provider=job.provider))  # fmt: skip
            jobs.append(job)
    return jobs


# --- recording -----------------------------------------------------------------------------------------------------


def record(engine: Engine, job: Job, result: SendResult, now: datetime,
           rand: Callable[[], float] = random.random) -> str:  # fmt: skip
    """Record one attempt; the row's new status (`lost_lease`: another claim holds the row now). Delivery reports
    parked for the message sent (the provider called back before this commit) are applied in the same transaction."""
    stamp = _iso(now)
    values: dict[str, Any] = {"updated_at": stamp, "code": result.code, "reason": result.reason}
    if result.outcome == "sent":
        status = "sent"
        values |= {"provider_message_id": result.provider_message_id, "sent_at": stamp, "lease_until": None,
                   "next_attempt_at": None, "reason": None}  # fmt: skip
    elif result.outcome == "retry" and job.attempt < job.max_attempts:
        status = "failed"
        due = now + timedelta(seconds=backoff(job.attempt, result.retry_after, rand))
        values |= {"next_attempt_at": _iso(due), "lease_until": None}
    else:
        status = "dead"
        values |= {"lease_until": None, "next_attempt_at": None}
        if result.outcome == "retry":
            values["reason"] = f"gave up after {job.attempt} attempts: {result.reason or result.code}"
    accepted: list[reports.Key] = []
    if status == "sent" and result.provider_message_id:
        accepted.append((job.tenant, job.provider, result.provider_message_id))
    with writer_turn(engine), engine.begin() as conn:
        reports.lock(conn, accepted)  # before the row's lock, as the webhook takes them
        conn.execute(
            appt_message_attempts.update()
            .where(appt_message_attempts.c.message_id == job.message_id,
                   appt_message_attempts.c.attempt == job.log_no)
            .values(finished_at=stamp, outcome=result.outcome, code=result.code, reason=result.reason)
        )  # fmt: skip
        changed = conn.execute(
            appt_messages.update()
            .where(appt_messages.c.id == job.message_id, appt_messages.c.status == "sending",
                   appt_messages.c.attempts == job.attempt)
            .values(status=status, **values)
        ).rowcount  # fmt: skip
        if not changed:
            return "lost_lease"
        if status == "dead" and job.channel == "whatsapp" and result.code in FALLBACK_CODES:
            fall_back(conn, job.message_id, job.fallback, now)
        for (tenant, provider), early in reports.take(conn, accepted).items():
            apply_deliveries(conn, tenant, provider, early, now)
    return status


def fall_back(conn: Connection, message_id: int, channel: str, now: datetime) -> None:
    """Owe a WhatsApp message refused for good on the fallback channel (once: the key is unique)."""
    if channel not in ("sms", "email"):
        return
    row = conn.execute(sa.select(appt_messages).where(appt_messages.c.id == message_id)).one()
    _insert(conn, row, row.kind, channel, now, fallback_of=message_id)


def _fallback_note(conn: Connection, message_id: int, channel: str) -> str:
    """What a dead row's reason says its fallback did (`; fallback: sms`), or nothing when it has none."""
    if channel not in ("sms", "email"):
        return ""
    row = conn.execute(sa.select(appt_messages).where(appt_messages.c.id == message_id)).one()
    owed = conn.execute(
        sa.select(appt_messages.c.id).where(appt_messages.c.tenant_id == row.tenant_id,
                                            appt_messages.c.booking_id == row.booking_id,
                                            appt_messages.c.kind == row.kind, appt_messages.c.channel == channel,
                                            appt_messages.c.round == row.round)
    ).first()  # fmt: skip
    return f"; fallback: {channel}" + (" (already owed)" if owed is not None else "")


FINAL = ("delivered", "dead", "superseded", "skipped")


def apply_deliveries(
    conn: Connection, tenant: str, provider: str, updates: Sequence[DeliveryUpdate], now: datetime
) -> int:
    """Apply a provider's delivery reports to the tenant's booking messages sent through it (matched by provider
    message id); returns how many rows changed. A report never moves a row backwards (a late `sent` after
    `delivered` is ignored); `failed` makes the row `dead` and owes the message on the channel's fallback."""
    changed = 0
    rules: policy.TenantPolicy | None = None
    for update in updates:
        row = conn.execute(
            sa.select(appt_messages.c.id, appt_messages.c.status, appt_messages.c.channel).where(
                appt_messages.c.tenant_id == tenant, appt_messages.c.provider == provider,
                appt_messages.c.provider_message_id == update.provider_message_id,
            )
        ).first()  # fmt: skip
        if row is None or row.status in FINAL:
            continue
        if update.status == "delivered":
            _finish(conn, row.id, "delivered", now, delivered_at=_iso(now))
        elif update.status == "failed":
            rules = rules or policy.load(conn, tenant)
            fallback = rules.fallback(row.channel)
            reason = f"delivery failed: {update.reason or update.code or 'unknown'}"
            _finish(conn, row.id, "dead", now, code=update.code,
                    reason=reason + _fallback_note(conn, row.id, fallback))  # fmt: skip
            fall_back(conn, row.id, fallback, now)
        else:
            continue  # `sent`: it already is
        changed += 1
    return changed


def replay(conn: Connection, tenant: str, message_id: int, now: datetime) -> bool:
    """Send a `dead` row again: pending, due now, attempts counted afresh (the log keeps counting)."""
    return bool(
        conn.execute(
            appt_messages.update()
            .where(appt_messages.c.id == message_id, appt_messages.c.tenant_id == tenant,
                   appt_messages.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=_iso(now), updated_at=_iso(now), reason=None,
                    code=None)
        ).rowcount
    )  # fmt: skip


def message_status(conn: Connection, tenant: str, message_id: int) -> str | None:
    """The status of the tenant's booking message `message_id`, or None when the tenant has no such message."""
    return conn.execute(
        sa.select(appt_messages.c.status).where(appt_messages.c.id == message_id, appt_messages.c.tenant_id == tenant)
    ).scalar_one_or_none()


def message_log(conn: Connection, tenant: str, booking_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each booking's messages (kind, round, channel, status, attempts, reason, when sent and delivered: never the
    contact), for the staff page and the bookings JSON."""
    if not booking_ids:
        return {}
    rows = conn.execute(
        sa.select(appt_messages)
        .where(appt_messages.c.tenant_id == tenant, appt_messages.c.booking_id.in_(list(booking_ids)))
        .order_by(appt_messages.c.id)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for r in rows.all():
        found.setdefault(r.booking_id, []).append(
            {"id": r.id, "kind": r.kind, "round": r.round, "channel": r.channel, "status": r.status,
             "attempts": r.attempts, "code": r.code, "reason": r.reason, "sent_at": r.sent_at,
             "delivered_at": r.delivered_at, "updated_at": r.updated_at}
        )  # fmt: skip
    silent = [b for b in booking_ids if b not in found]
    if silent:
        for visit in conn.execute(sa.select(appt_bookings).where(appt_bookings.c.tenant_id == tenant,
                                                                 appt_bookings.c.booking_id.in_(silent))):  # fmt: skip
            if (reason := unreachable(conn, visit)) is not None:
                found[visit.booking_id] = [
                    {"id": None, "kind": "confirm", "round": visit.round, "channel": "none", "status": "skipped",
                     "attempts": 0, "code": reason, "reason": reason, "sent_at": None, "delivered_at": None,
                     "updated_at": visit.updated_at}
                ]  # fmt: skip
    return found


def unreachable(conn: Connection, row: Any) -> str | None:
    """Why no message can reach a booking's customer (a computed `skipped`, as notify records one): `no_contact`
    (neither e-mail nor phone), `no_channel` (the tenant has no provider, or the channel switched off, for the
    contacts it has: a phone-only booking without WhatsApp); None when a channel is usable."""
    if usable_channels(conn, row):
        return None
    if contacts.normalise_email(row.email) is None and contacts.normalise_phone(row.phone) is None:
        return "no_contact"
    return "no_channel"


# --- the sender ----------------------------------------------------------------------------------------------------


class Sender(Background):
    """Owes, claims, sends and records booking messages: `run_once()` is one pass; `start()` loops until `stop()`,
    waking on `wake()` (a booking changed), when a retry falls due, or every `interval` seconds."""

    task_name = "qms-booking-messages"

    def __init__(self, engine: Engine, *, interval: float = 60.0, clock: Callable[[], datetime] | None = None,
                 hub_url: str = "") -> None:  # fmt: skip
        self.engine = engine
        self.hub_url = hub_url  # the hub's public address: the links of tenants without their own
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.client = httpx.AsyncClient(timeout=PROVIDER_TIMEOUT)
        self._providers: dict[tuple[str, str, str], Provider] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for owed messages now."""
        self._wake.set()

    def _provider(self, job: Job) -> Provider | None:
        key = (job.tenant, job.channel, msgspec.json.encode(job.settings).decode() + job.provider)
        if key not in self._providers:
            module = REGISTRY.get(job.provider)
            if module is None:
                return None
            self._providers[key] = module.build(job.settings, self.client)
        return self._providers[key]

    async def _send(self, job: Job) -> SendResult:
        try:
            provider = self._provider(job)
            if provider is None:
                return SendResult("permanent", code="unknown_provider", reason=f"no provider {job.provider!r}")
            return await provider.send(job.message)
        except Exception as exc:  # a provider's bug: retried, never logged with the contact
            log.warning("booking message: provider %s failed: %s", job.provider, type(exc).__name__)
            return SendResult("retry", code="provider_error", reason=type(exc).__name__)

    async def run_once(self) -> int:
        """Owe what is owed, then send every due row once; returns how many attempts were made."""
        await asyncio.to_thread(owe, self.engine, self.clock())
        attempted = 0
        while jobs := await asyncio.to_thread(claim, self.engine, self.clock(), BATCH, self.hub_url):
            results = await asyncio.gather(*(self._send(job) for job in jobs))
            for job, result in zip(jobs, results, strict=True):
                status = await asyncio.to_thread(record, self.engine, job, result, self.clock())
                if status in ("failed", "dead"):
                    log.warning("booking message %d (%s %s): %s, %s", job.message_id, job.channel,
                                job.provider, status, result.code)  # fmt: skip
            attempted += len(jobs)
        return attempted

    async def _sleep_seconds(self) -> float:
        due = await asyncio.to_thread(next_due, self.engine)
        if due is None:
            return self.interval
        return min(self.interval, max(0.05, (due - self.clock()).total_seconds()))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                wait = await self._sleep_seconds()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store away for a moment: the next pass tries again
                log.warning("booking messages: pass failed: %s", type(exc).__name__)
                wait = min(self.interval, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self) -> None:
        """Stop (a row being sent keeps its lease and is sent again by the next sender) and close connections."""
        await super().stop()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        self._providers.clear()
        await self.client.aclose()
