"""Booking e-mails: the confirmation (with the check-in QR attached as PNG and a link to the booking page) and the
reminder the day before.

The notifications outbox is keyed by ticket (a booking has none yet), so these go straight through
`cloud.notify.mail.send_email` with the tenant's e-mail provider settings. Each message is claimed in the database
first (`UPDATE … SET confirmed_at = now WHERE confirmed_at IS NULL`, rowcount checked), so several hub replicas
never send it twice; a failed send is logged and not retried (at most once)."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import segno
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.tables import appt_bookings
from cloud.appointments.words import WORDS
from cloud.notify import policy
from cloud.notify.mail import send_email
from cloud.notify.providers.base import Attachment

log = logging.getLogger("qms.cloud.appointments")
REMIND_BEFORE = timedelta(hours=24)


def qr_png(text: str, scale: int = 6) -> bytes:
    """The check-in QR as PNG (alphanumeric mode: the text is upper-case base32)."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(text: str, scale: int = 5) -> str:
    """The check-in QR as inline SVG for the confirmation page."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    return out.getvalue().decode()


@dataclass(frozen=True)
class Mail:
    """One e-mail to send."""

    to: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...]


def compose(kind: str, visit: booking.Booking, branch: booking.Branch, service_name: str,
            link: str) -> tuple[str, str]:  # fmt: skip
    """(subject, text) of a confirmation or reminder in the booking's language."""
    w = WORDS.get(visit.lang, WORDS["id"])
    local = visit.starts_at.astimezone(ZoneInfo(branch.zone))
    when = local.strftime("%d/%m/%Y %H:%M")
    subject = w[f"mail_{kind}_subject"].format(branch=branch.name, when=when)
    text = w[f"mail_{kind}_text"].format(
        name=visit.name, branch=branch.name, service=service_name, when=when, booking=visit.booking_id, link=link,
        before=branch.checkin_before, after=branch.checkin_after,
    )  # fmt: skip
    return subject, text


def _owed(engine: Engine, now: datetime) -> list[tuple[str, str, str]]:
    """(tenant, booking id, kind) of the e-mails owed now."""
    soon = (now + REMIND_BEFORE).isoformat()
    live = sa.and_(appt_bookings.c.status == "booked", appt_bookings.c.email.is_not(None))
    with engine.connect() as conn:
        confirm = conn.execute(
            sa.select(appt_bookings.c.tenant_id, appt_bookings.c.booking_id)
            .where(live, appt_bookings.c.confirmed_at.is_(None))
            .limit(100)
        ).all()
        remind = conn.execute(
            sa.select(appt_bookings.c.tenant_id, appt_bookings.c.booking_id)
            .where(
                live,
                appt_bookings.c.confirmed_at.is_not(None),
                appt_bookings.c.reminded_at.is_(None),
                appt_bookings.c.starts_at <= soon,
                appt_bookings.c.starts_at > now.isoformat(),
                appt_bookings.c.created_at < (now - timedelta(hours=2)).isoformat(),  # just booked: no reminder
            )
            .limit(100)
        ).all()
    return [(r.tenant_id, r.booking_id, "confirm") for r in confirm] + [
        (r.tenant_id, r.booking_id, "remind") for r in remind
    ]


def claim(engine: Engine, booking_id: str, kind: str, now: datetime) -> Mail | None:
    """Claim one owed e-mail (None: another replica did, or nothing can be sent) and build it."""
    column = appt_bookings.c.confirmed_at if kind == "confirm" else appt_bookings.c.reminded_at
    with engine.begin() as conn:
        taken = conn.execute(
            appt_bookings.update()
            .where(appt_bookings.c.booking_id == booking_id, column.is_(None))
            .values({column.name: now.astimezone(UTC).isoformat()})
        )
        if taken.rowcount != 1:
            return None
        tenant = conn.execute(
            sa.select(appt_bookings.c.tenant_id).where(appt_bookings.c.booking_id == booking_id)
        ).scalar_one()
        visit = booking.get(conn, tenant, booking_id)
        to = booking.contact_email(conn, tenant, booking_id)
        branch = booking.load_branch(conn, tenant, visit.branch_id) if visit else None
        if visit is None or to is None or branch is None:
            return None
        names = {s.service_id: s.name for s in booking.services(conn, tenant, branch.branch_id)}
        code = booking.qr_text(conn, visit, now)
        base = policy.load(conn, tenant).public_url.rstrip("/")  # the hub's public address (notifications policy)
    link = f"{base}/book/{tenant}/v/{code}"
    subject, text = compose(kind, visit, branch, names.get(visit.service_id, visit.service_id), link)
    png = Attachment(filename=f"checkin-{visit.booking_id}.png", content_type="image/png", data=qr_png(code))
    return Mail(to, subject, text, (png,))


def smtp_settings(engine: Engine, tenant: str) -> dict[str, object] | None:
    """The tenant's e-mail provider settings (from the notifications console), or None when it has none."""
    with engine.connect() as conn:
        email = policy.provider_settings(conn, tenant).get("email")
    return None if email is None else dict(email["settings"])


async def send_owed(engine: Engine, now: datetime) -> int:
    """Send every owed confirmation and reminder once; returns how many were sent."""
    sent = 0
    for tenant, booking_id, kind in await asyncio.to_thread(_owed, engine, now):
        settings = await asyncio.to_thread(smtp_settings, engine, tenant)
        if settings is None:
            continue  # the tenant sends no e-mail: owed until it configures a provider
        mail = await asyncio.to_thread(claim, engine, booking_id, kind, now)
        if mail is None:
            continue
        try:
            await send_email(settings, mail.to, mail.subject, mail.text, attachments=mail.attachments,
                             message_id=f"appt-{kind}-{booking_id}")  # fmt: skip
            sent += 1
        except Exception as exc:  # SMTP down or refused: logged (without the address), not retried
            log.warning("booking %s: %s e-mail not sent: %s", booking_id, kind, type(exc).__name__)
    return sent
