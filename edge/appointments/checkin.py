"""The check-in decision, pure: given the QR text a kiosk read, the bookings document the hub last pushed, the
branch, the clock and whether the booking was already used, either a ticket to create or a refusal with a code.

Every refusal says only what is wrong with *this* code (never whose booking another code is): `invalid` covers
garbage, forgeries and another tenant's codes; `wrong_branch` / `wrong_day` / `unknown` / `cancelled` / `too_early` /
`too_late` / `used` are each safe to show because they reveal nothing beyond what the holder's own QR says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sync.appointments import PREFIX, BookedVisit, BookingsDocument, QrInvalid, verify

OURS = re.compile(PREFIX + "[A-Z2-7]+")  # the shape of a check-in code (its signature is checked below)
REFUSALS = ("invalid", "no_bookings", "wrong_branch", "wrong_day", "unknown", "cancelled", "too_early", "too_late",
            "used")  # fmt: skip


@dataclass(frozen=True)
class Admit:
    """Create a ticket: as an appointment (`late` False: channel `appointment`, its time and priority) or, for a
    late arrival under the `walk_in` policy, as an ordinary walk-in (`late` True)."""

    visit: BookedVisit
    late: bool


@dataclass(frozen=True)
class Refuse:
    """No ticket; `code` is one of REFUSALS, and `opens_at` tells a too-early visitor when to come back."""

    code: str
    opens_at: datetime | None = None


def decide(
    text: str,
    document: BookingsDocument | None,
    *,
    branch_id: str,
    today: date,
    now: datetime,
    used: frozenset[str],
) -> Admit | Refuse:
    """Check one scanned code against the pushed bookings (works with the hub unreachable)."""
    if not OURS.fullmatch(text.strip().upper()):
        return Refuse("invalid")  # not a check-in code at all (a web address, another QR): whatever is loaded
    if document is None:
        return Refuse("no_bookings")
    try:
        code = verify(text, bytes.fromhex(document.public_key))
    except (QrInvalid, ValueError):
        return Refuse("invalid")
    if code.branch_id != branch_id:
        return Refuse("wrong_branch")
    if code.day != today:
        return Refuse("wrong_day")
    visit = next((v for v in document.visits if v.booking_id == code.booking_id), None)
    if visit is None:
        return Refuse("unknown")
    if visit.day != code.day.isoformat():
        return Refuse("wrong_day")  # a code from before the booking moved to another day
    if visit.status == "cancelled":
        return Refuse("cancelled")
    if code.booking_id in used:
        return Refuse("used")
    opens = visit.starts_at - timedelta(minutes=document.checkin_before_minutes)
    if now < opens:
        return Refuse("too_early", opens)
    if now > visit.starts_at + timedelta(minutes=document.checkin_after_minutes):
        return Admit(visit, late=True) if document.late_policy == "walk_in" else Refuse("too_late")
    return Admit(visit, late=False)


def customer_ref(booking_id: str) -> str:
    """The ticket's customer reference naming its booking: how the hub learns of the check-in."""
    return f"booking:{booking_id}"


def booking_of(ref: str | None) -> str | None:
    """The booking id a ticket's customer reference names, if any."""
    return ref[len("booking:") :] if ref and ref.startswith("booking:") else None
