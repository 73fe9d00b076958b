"""Booking messages' content: the check-in QR (PNG for e-mail, SVG for the pages) and the wording of the
confirmation, the reminder the day before and the "moved" message after a reschedule, in the booking's language.
Sending them is `cloud.appointments.outbox`."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import segno

from cloud.appointments import booking
from cloud.appointments.words import WORDS

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


def compose(kind: str, visit: booking.Booking, branch: booking.Branch, service_name: str,
            link: str) -> tuple[str, str]:  # fmt: skip
    """(subject, text) of a confirmation, reminder or "moved" message (`rescheduled`) in the booking's language."""
    w = WORDS.get(visit.lang, WORDS["id"])
    when = local_when(visit, branch)
    subject = w[f"mail_{kind}_subject"].format(branch=branch.name, when=when)
    text = w[f"mail_{kind}_text"].format(
        name=visit.name, branch=branch.name, service=service_name, when=when, booking=visit.booking_id, link=link,
        before=branch.checkin_before, after=branch.checkin_after,
    )  # fmt: skip
    return subject, text


def local_when(visit: booking.Booking, branch: booking.Branch) -> str:
    """The visit's time as the branch's customers read it (`03/03/2027 09:00`)."""
    return visit.starts_at.astimezone(ZoneInfo(branch.zone)).strftime("%d/%m/%Y %H:%M")


def short_text(kind: str, visit: booking.Booking, branch: booking.Branch, service_name: str, link: str) -> str:
    """The SMS of a confirmation, reminder or "moved" message (a WhatsApp fallback): time, place and the link to
    the QR."""
    w = WORDS.get(visit.lang, WORDS["id"])
    return w[f"sms_{kind}"].format(service=service_name, branch=branch.name, when=local_when(visit, branch),
                                   link=link)  # fmt: skip


def visit_ical(visit: booking.Booking, branch: booking.Branch, service_name: str, minutes: int, address: str,
               link: str, lang: str) -> bytes:  # fmt: skip
    """The visit as an iCalendar file: one VEVENT (UID the booking number and SEQUENCE its count of moves, so a
    re-import after a move updates the same event), start and end in UTC, the branch's zone named in
    `X-WR-TIMEZONE` and the local time in the text."""
    w = WORDS.get(lang, WORDS["id"])
    cal = icalendar.Calendar()
    cal.add("prodid", "-//QMS//booking//ID")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-timezone", branch.zone)
    event = icalendar.Event()
    start = visit.starts_at.astimezone(UTC)
    event.add("uid", f"{visit.booking_id}@{visit.tenant}.qms")
    event.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    event.add("sequence", visit.round)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=minutes))
    event.add("summary", w["ics_summary"].format(service=service_name, branch=branch.name))
    event.add("location", ", ".join(x for x in (branch.name, address.strip()) if x))
    event.add("description", w["ics_text"].format(
        booking=visit.booking_id, when=local_when(visit, branch), zone=branch.zone, link=link,
        before=branch.checkin_before, after=branch.checkin_after))  # fmt: skip
    event.add("url", link)
    event.add("status", "CANCELLED" if visit.status == "cancelled" else "CONFIRMED")
    cal.add_component(event)
    return cal.to_ical()
