"""Booking at the hub: the offered slots of a day, booking without overbooking, cancel, reschedule, the tenant key
and the check-in QR, and the bookings document the branch receives.

Overbooking is ruled out by the database, not by a read-then-write: the slot row is created if missing
(INSERT … ON CONFLICT DO NOTHING) and then `UPDATE … SET booked = booked + 1 WHERE … AND booked < capacity`; a
rowcount of 0 means full. The row lock of that UPDATE (PostgreSQL) or the write lock taken at BEGIN (SQLite)
serialises concurrent bookings of one slot, so N concurrent requests on capacity K leave exactly K bookings."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy.engine import Connection

from cloud.admin.tables import branch_profiles
from cloud.appointments import calendar
from cloud.appointments.tables import (
    appt_bookings,
    appt_calendar,
    appt_keys,
    appt_services,
    appt_settings,
    appt_slots,
)
from cloud.store import branches, insert_ignore
from cloud.ticket_status import branch_config
from sync.appointments import BookedVisit, BookingsDocument, CheckinCode, booking_id_text, sign

DEFAULT_HOURS = {d: [["08:00", "15:00"]] for d in calendar.WEEKDAYS[:5]}
BOOKING_HORIZON_DAYS = 60


class BookingRefused(Exception):
    """A booking that cannot be made or changed; `code` is stable: `slot_full`, `day_closed`, `past` (the time has
    begun), `no_slot` (no slot starts then, or beyond the horizon), `unknown_service`, `not_found`, `cancelled` and
    `checked_in` (the booking can no longer change)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


@dataclass(frozen=True)
class Branch:
    """What booking needs of a branch: its zone, hours, region and check-in policy."""

    tenant: str
    branch_id: str
    name: str
    zone: str
    hours: dict[str, list[list[str]]]
    region: str | None = None
    checkin_before: int = 30
    checkin_after: int = 15
    late_policy: str = "walk_in"


def load_branch(conn: Connection, tenant: str, branch_id: str) -> Branch | None:
    """The branch's profile (cloud/admin) and appointment settings; None when HQ does not know it."""
    row = conn.execute(
        sa.select(branch_profiles).where(
            branch_profiles.c.tenant_id == tenant,
            branch_profiles.c.branch_id == branch_id,
            branch_profiles.c.status == "active",
        )
    ).one_or_none()
    if row is None:
        return None
    s = conn.execute(
        sa.select(appt_settings).where(appt_settings.c.tenant_id == tenant, appt_settings.c.branch_id == branch_id)
    ).one_or_none()
    extra: dict[str, Any] = {}
    if s is not None:
        extra = {
            "region": s.region,
            "checkin_before": s.checkin_before_minutes,
            "checkin_after": s.checkin_after_minutes,
            "late_policy": s.late_policy,
        }
    return Branch(tenant, branch_id, row.name, row.timezone, json.loads(row.hours) or {}, **extra)


def save_settings(
    conn: Connection, tenant: str, branch_id: str, *, region: str | None, before: int, after: int, late: str, now: str
) -> None:
    """Upsert the branch's booking policy."""
    key = sa.and_(appt_settings.c.tenant_id == tenant, appt_settings.c.branch_id == branch_id)
    values = {
        "region": region or None,
        "checkin_before_minutes": before,
        "checkin_after_minutes": after,
        "late_policy": late,
        "updated_at": now,
    }
    if conn.execute(appt_settings.update().where(key).values(**values)).rowcount == 0:
        conn.execute(appt_settings.insert().values(tenant_id=tenant, branch_id=branch_id, **values))


def entries(conn: Connection, tenant: str) -> list[calendar.Entry]:
    """The tenant's calendar entries (all scopes)."""
    rows = conn.execute(sa.select(appt_calendar).where(appt_calendar.c.tenant_id == tenant)).all()
    return [calendar.Entry(r.scope, date.fromisoformat(r.day), r.kind, r.name) for r in rows]


def put_entry(conn: Connection, tenant: str, entry: calendar.Entry) -> None:
    """Add or replace one calendar entry."""
    conn.execute(
        appt_calendar.delete().where(
            appt_calendar.c.tenant_id == tenant,
            appt_calendar.c.scope == entry.scope,
            appt_calendar.c.day == entry.day.isoformat(),
        )
    )
    conn.execute(
        appt_calendar.insert().values(
            tenant_id=tenant, scope=entry.scope, day=entry.day.isoformat(), kind=entry.kind, name=entry.name
        )
    )


def delete_entry(conn: Connection, tenant: str, scope: str, day: str) -> None:
    """Remove one calendar entry."""
    conn.execute(
        appt_calendar.delete().where(
            appt_calendar.c.tenant_id == tenant, appt_calendar.c.scope == scope, appt_calendar.c.day == day
        )
    )


@dataclass(frozen=True)
class BookableService:
    """A service that takes bookings at a branch."""

    service_id: str
    name: str
    slot_minutes: int
    capacity: int
    priority: int


def save_service(
    conn: Connection,
    tenant: str,
    branch_id: str,
    service_id: str,
    *,
    name: str,
    slot_minutes: int,
    capacity: int | None = None,
    counters: int = 1,
    mean_service_minutes: float = 10.0,
    quota_pct: int = 50,
    priority: int = 0,
    active: bool = True,
) -> None:
    """Upsert a bookable service; `capacity` None = derived from counters, mean service time and the quota."""
    key = sa.and_(
        appt_services.c.tenant_id == tenant,
        appt_services.c.branch_id == branch_id,
        appt_services.c.service_id == service_id,
    )
    values = {
        "name": name,
        "slot_minutes": slot_minutes,
        "capacity": capacity,
        "counters": counters,
        "mean_service_minutes": mean_service_minutes,
        "quota_pct": quota_pct,
        "priority": priority,
        "active": active,
    }
    if conn.execute(appt_services.update().where(key).values(**values)).rowcount == 0:
        conn.execute(
            appt_services.insert().values(tenant_id=tenant, branch_id=branch_id, service_id=service_id, **values)
        )


# (tenant, branch, version, content hash) -> its active services: the public page asks for every day it shows, and
# a branch running a configuration HQ never distributed is read from its `config.applied` event
_CONFIGURED: dict[tuple[str, str, int | None, str], dict[str, str] | None] = {}
_CONFIGURED_MAX = 1024


def configured_services(conn: Connection, tenant: str, branch_id: str) -> dict[str, str] | None:
    """The active services of the configuration the branch runs (id -> name), None while the hub has none of it
    (before the branch's first `config.applied` or HQ's first distribution)."""
    row = conn.execute(
        sa.select(branches.c.config_version, branches.c.config_hash).where(
            branches.c.tenant_id == tenant, branches.c.branch_id == branch_id
        )
    ).first()
    version, digest = (row.config_version, row.config_hash) if row is not None else (None, None)
    key = (tenant, branch_id, version, digest or "")
    if digest and key in _CONFIGURED:
        return _CONFIGURED[key]
    config = branch_config(conn, _BranchRef(tenant, branch_id, version))
    found = None if config is None else {s.id: s.name for s in config.services if s.active}
    if digest:  # the content the branch reported running: the same key is always the same services
        if len(_CONFIGURED) >= _CONFIGURED_MAX:
            _CONFIGURED.clear()
        _CONFIGURED[key] = found
    return found


@dataclass(frozen=True)
class _BranchRef:
    """What `branch_config` reads of a `branches` row."""

    tenant_id: str
    branch_id: str
    config_version: int | None


def services(conn: Connection, tenant: str, branch_id: str) -> list[BookableService]:
    """The branch's active bookable services with their effective slot capacity: those of its configuration only,
    once the hub knows one (a service removed there is no longer offered)."""
    configured = configured_services(conn, tenant, branch_id)
    rows = conn.execute(
        sa.select(appt_services)
        .where(
            appt_services.c.tenant_id == tenant,
            appt_services.c.branch_id == branch_id,
            appt_services.c.active.is_(True),
        )
        .order_by(appt_services.c.service_id)
    ).all()
    return [
        BookableService(
            r.service_id,
            r.name,
            r.slot_minutes,
            r.capacity
            if r.capacity is not None
            else calendar.derived_capacity(r.counters, r.slot_minutes, r.mean_service_minutes, r.quota_pct),
            r.priority,
        )
        for r in rows
        if configured is None or r.service_id in configured
    ]


def _service(conn: Connection, branch: Branch, service_id: str) -> BookableService:
    for s in services(conn, branch.tenant, branch.branch_id):
        if s.service_id == service_id:
            return s
    raise BookingRefused("unknown_service")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class Slot:
    """One offered slot: its start (aware, branch zone) and how many places are left."""

    starts_at: datetime
    left: int


BEYOND_HORIZON = "beyond_horizon"


def beyond_horizon(branch: Branch, day: date, now: datetime) -> bool:
    """`day` (branch-local) is further ahead than bookings are taken (BOOKING_HORIZON_DAYS): offered as closed and
    refused alike."""
    return day > now.astimezone(ZoneInfo(branch.zone)).date() + timedelta(days=BOOKING_HORIZON_DAYS)


def closed_reason(conn: Connection, branch: Branch, day: date, now: datetime) -> str | None:
    """Why `day` takes no bookings: `beyond_horizon`, or the holiday's or blackout's name; None when it is open."""
    if beyond_horizon(branch, day, now):
        return BEYOND_HORIZON
    return calendar.closed_reason(day, entries(conn, branch.tenant), branch_id=branch.branch_id, region=branch.region)


def day_slots(conn: Connection, branch: Branch, service_id: str, day: date, now: datetime) -> list[Slot]:
    """The slots offered on `day` (none on a holiday, blackout or closed weekday, nor beyond the booking horizon;
    only future ones)."""
    service = _service(conn, branch, service_id)
    if closed_reason(conn, branch, day, now):
        return []
    starts = calendar.slot_starts(branch.hours, day, service.slot_minutes, branch.zone)
    booked = dict(
        conn.execute(
            sa.select(appt_slots.c.starts_at, appt_slots.c.booked).where(
                appt_slots.c.tenant_id == branch.tenant,
                appt_slots.c.branch_id == branch.branch_id,
                appt_slots.c.service_id == service_id,
                appt_slots.c.day == day.isoformat(),
            )
        ).all()
    )
    return [Slot(s, max(0, service.capacity - booked.get(_iso(s), 0))) for s in starts if s > now]


def _check_slot(conn: Connection, branch: Branch, service: BookableService, at: datetime, now: datetime) -> date:
    zone = ZoneInfo(branch.zone)
    local = at.astimezone(zone)
    day = local.date()
    if at <= now:
        raise BookingRefused("past", "that time has already begun")
    if beyond_horizon(branch, day, now):
        raise BookingRefused("no_slot", "that time is beyond the booking horizon")
    if calendar.closed_reason(day, entries(conn, branch.tenant), branch_id=branch.branch_id, region=branch.region):
        raise BookingRefused("day_closed", "the branch takes no bookings that day")
    if local not in calendar.slot_starts(branch.hours, day, service.slot_minutes, branch.zone):
        raise BookingRefused("no_slot", "no slot starts at that time")
    return day


def _take(conn: Connection, branch: Branch, service: BookableService, at: datetime, day: date) -> None:
    """Take one place in the slot or raise slot_full: the conditional UPDATE, rowcount checked."""
    starts = _iso(at)
    conn.execute(
        insert_ignore(conn, appt_slots).values(
            tenant_id=branch.tenant,
            branch_id=branch.branch_id,
            service_id=service.service_id,
            starts_at=starts,
            day=day.isoformat(),
            capacity=service.capacity,
            booked=0,
        )
    )
    key = sa.and_(
        appt_slots.c.tenant_id == branch.tenant,
        appt_slots.c.branch_id == branch.branch_id,
        appt_slots.c.service_id == service.service_id,
        appt_slots.c.starts_at == starts,
    )
    # The capacity set by hand may have changed since the row was made: the service's current one wins.
    taken = conn.execute(
        appt_slots.update()
        .where(key, appt_slots.c.booked < service.capacity)
        .values(booked=appt_slots.c.booked + 1, capacity=service.capacity)
    )
    if taken.rowcount != 1:
        raise BookingRefused("slot_full", "that slot is full")


def _release(conn: Connection, tenant: str, branch_id: str, service_id: str, starts_at: str) -> None:
    conn.execute(
        appt_slots.update()
        .where(
            appt_slots.c.tenant_id == tenant,
            appt_slots.c.branch_id == branch_id,
            appt_slots.c.service_id == service_id,
            appt_slots.c.starts_at == starts_at,
            appt_slots.c.booked > 0,
        )
        .values(booked=appt_slots.c.booked - 1)
    )


@dataclass(frozen=True)
class Booking:
    """A booking as pages and e-mails use it (contacts stay in the table)."""

    booking_id: str
    tenant: str
    branch_id: str
    service_id: str
    starts_at: datetime
    day: date
    status: str
    name: str
    lang: str
    checked_in_at: str | None = None
    round: int = 0  # how often it was moved (its messages of an older round are superseded)


def _booking(row: Any) -> Booking:
    return Booking(
        row.booking_id,
        row.tenant_id,
        row.branch_id,
        row.service_id,
        datetime.fromisoformat(row.starts_at),
        date.fromisoformat(row.day),
        row.status,
        row.name,
        row.lang,
        row.checked_in_at,
        row.round,
    )


def book(
    conn: Connection,
    branch: Branch,
    service_id: str,
    at: datetime,
    *,
    name: str,
    email: str | None,
    phone: str | None,
    lang: str,
    actor: str,
    now: datetime,
) -> Booking:
    """Book one place (inside the caller's transaction); raises BookingRefused."""
    service = _service(conn, branch, service_id)
    day = _check_slot(conn, branch, service, at, now)
    _take(conn, branch, service, at, day)
    booking_id = booking_id_text(secrets.token_bytes(10))
    stamp = now.astimezone(UTC).isoformat()
    conn.execute(
        appt_bookings.insert().values(
            booking_id=booking_id,
            tenant_id=branch.tenant,
            branch_id=branch.branch_id,
            service_id=service_id,
            starts_at=_iso(at),
            day=day.isoformat(),
            status="booked",
            name=name,
            email=email or None,
            phone=phone or None,
            lang=lang,
            created_by=actor,
            created_at=stamp,
            updated_at=stamp,
        )
    )
    return Booking(booking_id, branch.tenant, branch.branch_id, service_id, at, day, "booked", name, lang)


def get(conn: Connection, tenant: str, booking_id: str) -> Booking | None:
    """One booking of the tenant (None: unknown here, so another tenant's id is a 404)."""
    row = conn.execute(
        sa.select(appt_bookings).where(appt_bookings.c.tenant_id == tenant, appt_bookings.c.booking_id == booking_id)
    ).one_or_none()
    return None if row is None else _booking(row)


def find(conn: Connection, tenant: str, booking_id: str, contact: str) -> Booking | None:
    """The tenant's booking with that number whose e-mail or phone is `contact` (compared normalised: the domain's
    case, 0812… / +62812…); None for a wrong number and a wrong contact alike, so neither can be probed."""
    from cloud.notify.contacts import normalise_email, normalise_phone

    row = conn.execute(
        sa.select(appt_bookings).where(appt_bookings.c.tenant_id == tenant, appt_bookings.c.booking_id == booking_id)
    ).one_or_none()
    if row is None:
        return None
    email, phone = normalise_email(contact), normalise_phone(contact)
    by_email = email is not None and normalise_email(row.email) is not None and normalise_email(row.email) == email
    by_phone = phone is not None and normalise_phone(row.phone) == phone
    return _booking(row) if by_email or by_phone else None


def contact_email(conn: Connection, tenant: str, booking_id: str) -> str | None:
    """The booking's e-mail address, for sending only (never shown back)."""
    return conn.execute(
        sa.select(appt_bookings.c.email).where(
            appt_bookings.c.tenant_id == tenant, appt_bookings.c.booking_id == booking_id
        )
    ).scalar_one_or_none()


def _refuse_inactive(status: str) -> NoReturn:
    if status == "cancelled":
        raise BookingRefused("cancelled", "the booking was cancelled")
    raise BookingRefused("checked_in", "the visitor has already checked in")


def cancel(conn: Connection, tenant: str, booking_id: str, now: datetime) -> Booking:
    """Cancel a booked visit, free its place and owe the customer the cancellation message
    (`cloud.appointments.outbox.owe_cancelled`, in this transaction)."""
    from cloud.appointments import outbox  # the outbox builds on this module

    current = get(conn, tenant, booking_id)
    if current is None:
        raise BookingRefused("not_found")
    changed = conn.execute(
        appt_bookings.update()
        .where(appt_bookings.c.booking_id == booking_id, appt_bookings.c.status == "booked")
        .values(status="cancelled", updated_at=now.astimezone(UTC).isoformat())
    )
    if changed.rowcount != 1:  # read again: another request may have changed it since
        _refuse_inactive((get(conn, tenant, booking_id) or current).status)
    _release(conn, tenant, current.branch_id, current.service_id, _iso(current.starts_at))
    outbox.owe_cancelled(conn, tenant, booking_id, now)
    return get(conn, tenant, booking_id) or current


def reschedule(conn: Connection, branch: Branch, booking_id: str, at: datetime, now: datetime) -> Booking:
    """Move a booked visit to another slot of the same service and branch, by the booking's rules (calendar, not in
    the past, the conditional update on the new slot): the new place is taken before the old is freed, so a full new
    slot leaves the booking as it was (the caller's transaction rolls back). The booking keeps its id; its check-in
    code names the day, so a move to another day makes a new code and the old one no longer checks in (the kiosk
    refuses a code whose day is not today or not the pushed visit's day); a move within the day keeps the code, and
    the kiosk's check-in window follows the pushed new time. Moving to the time it already has changes nothing.

    A move starts the booking's next message round (`cloud.appointments.outbox`): unsent messages of the old round are
    superseded, the "moved" message is owed (unless the confirmation is still owed: it tells the new time), and the
    reminder is owed again for the new time."""
    current = get(conn, branch.tenant, booking_id)
    if current is None or current.branch_id != branch.branch_id:
        raise BookingRefused("not_found")
    if current.status != "booked":
        _refuse_inactive(current.status)
    service = _service(conn, branch, current.service_id)
    day = _check_slot(conn, branch, service, at, now)
    if _iso(at) == _iso(current.starts_at):
        return current
    _take(conn, branch, service, at, day)
    _release(conn, branch.tenant, branch.branch_id, current.service_id, _iso(current.starts_at))
    stamp = now.astimezone(UTC).isoformat()
    conn.execute(
        appt_bookings.update()
        .where(appt_bookings.c.booking_id == booking_id)
        .values(starts_at=_iso(at), day=day.isoformat(), updated_at=stamp, round=appt_bookings.c.round + 1,
                moved_at=stamp, reminded_at=None,
                rescheduled_at=sa.case((appt_bookings.c.confirmed_at.is_(None), stamp), else_=None))
    )  # fmt: skip
    return get(conn, branch.tenant, booking_id) or current


def tenant_key(conn: Connection, tenant: str, now: datetime) -> Ed25519PrivateKey:
    """The tenant's signing key, made on first use (two replicas racing: the first insert wins, both read it)."""
    row = conn.execute(sa.select(appt_keys.c.private_key).where(appt_keys.c.tenant_id == tenant)).scalar_one_or_none()
    if row is None:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        conn.execute(
            insert_ignore(conn, appt_keys).values(
                tenant_id=tenant, private_key=seed.hex(), public_key=public.hex(), created_at=now.isoformat()
            )
        )
        row = conn.execute(sa.select(appt_keys.c.private_key).where(appt_keys.c.tenant_id == tenant)).scalar_one()
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(row))


def public_key_hex(conn: Connection, tenant: str, now: datetime) -> str:
    """The tenant's public key (raw, hex) as appliances hold it."""
    key = tenant_key(conn, tenant, now)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def qr_text(conn: Connection, booking: Booking, now: datetime) -> str:
    """The signed check-in text of a booking."""
    code = CheckinCode(booking.booking_id, booking.branch_id, booking.day)
    return sign(code, tenant_key(conn, booking.tenant, now))


def day_bookings(conn: Connection, tenant: str, branch_id: str, days: list[str]) -> list[Any]:
    """The rows of a branch's bookings on the given local days, by start time."""
    return list(
        conn.execute(
            sa.select(appt_bookings)
            .where(
                appt_bookings.c.tenant_id == tenant,
                appt_bookings.c.branch_id == branch_id,
                appt_bookings.c.day.in_(days),
            )
            .order_by(appt_bookings.c.starts_at, appt_bookings.c.booking_id)
        ).all()
    )


def shown_status(row: Any, branch: Branch, now: datetime) -> str:
    """booked / checked_in / cancelled, or no_show once the check-in window has passed without a check-in."""
    if row.status == "booked" and now > datetime.fromisoformat(row.starts_at) + timedelta(minutes=branch.checkin_after):
        return "no_show"
    return str(row.status)


def bookings_document(conn: Connection, branch: Branch, now: datetime) -> BookingsDocument:
    """Today's and tomorrow's bookings (branch-local days) for the appliance, with the key and the policy."""
    today = now.astimezone(ZoneInfo(branch.zone)).date()
    days = [today.isoformat(), (today + timedelta(days=1)).isoformat()]
    priorities = {s.service_id: s.priority for s in services(conn, branch.tenant, branch.branch_id)}
    visits = [
        BookedVisit(
            booking_id=r.booking_id,
            service_id=r.service_id,
            starts_at=datetime.fromisoformat(r.starts_at),
            day=r.day,
            status="booked" if r.status in {"booked", "checked_in"} else "cancelled",
            priority=priorities.get(r.service_id, 0),
        )
        for r in day_bookings(conn, branch.tenant, branch.branch_id, days)
    ]
    return BookingsDocument(
        branch_id=branch.branch_id,
        generated_at=now,
        public_key=public_key_hex(conn, branch.tenant, now),
        checkin_before_minutes=branch.checkin_before,
        checkin_after_minutes=branch.checkin_after,
        late_policy=branch.late_policy,
        visits=visits,
    )


def mark_checked_in(conn: Connection, tenant: str, branch_id: str, booking_id: str, ticket_id: str, at: str) -> None:
    """A check-in the branch reported (its ticket.created of channel `appointment`)."""
    conn.execute(
        appt_bookings.update()
        .where(
            appt_bookings.c.tenant_id == tenant,
            appt_bookings.c.branch_id == branch_id,
            appt_bookings.c.booking_id == booking_id,
            appt_bookings.c.status != "cancelled",
        )
        .values(status="checked_in", checked_in_at=at, ticket_id=ticket_id, updated_at=at)
    )
