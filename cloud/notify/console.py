"""Read model of the notifications console: the message log with its filters (status, channel, trigger, branch, date)
and the DLQ, limited to what the caller may see; contacts only ever masked; times in the branch's zone.

The log holds both outboxes: tickets' notifications (`notify_outbox`) and bookings' confirmations and reminders
(`appt_messages`, issue 15), the latter with the triggers `booking.confirm` / `booking.remind` /
`booking.rescheduled`, `source: "booking"`, the booking id in place of the ticket and the booking's `round` (its count
of moves when the message was owed); ids are per outbox, so a booking row is replayed by its own route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.appointments.tables import appt_bookings, appt_message_attempts, appt_messages
from cloud.notify import contacts
from cloud.notify.tables import STATUSES, attempts, outbox
from cloud.store import tickets

ZONE = ZoneInfo("Asia/Jakarta")  # the console's zone for dates and times (branches' default)
PAGE = 200

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Notifikasi", "messages": "Log pesan", "dlq": "Antrean gagal (DLQ)", "templates": "Templat",
        "settings": "Pengaturan", "status": "Status", "channel": "Kanal", "trigger": "Pemicu", "branch": "Cabang",
        "from": "Dari", "to": "Sampai", "filter": "Saring", "all": "Semua", "time": "Waktu", "ticket": "Tiket",
        "recipient": "Penerima", "attempts": "Percobaan", "reason": "Alasan", "replay": "Kirim ulang",
        "none": "Tidak ada pesan.", "tenant": "Tenant", "language": "Bahasa", "subject": "Subjek", "body": "Isi",
        "preview": "Pratinjau", "save": "Simpan", "reset": "Kembalikan bawaan", "segments": "Segmen SMS",
        "custom": "disesuaikan", "default": "bawaan", "wa_template": "Nama templat WhatsApp", "enabled": "Aktif",
        "provider": "Penyedia", "saved": "Tersimpan.", "replayed": "Dijadwalkan ulang.", "variables": "Variabel",
        "policy": "Kebijakan", "threshold": "Ambang \"N lagi\"", "fallback": "Cadangan WhatsApp",
        "sms_fallback": "Cadangan SMS",
        "retention": "Simpan kontak (hari)", "secret_kept": "rahasia tersimpan, kosongkan untuk mempertahankan",
        "dlq_none": "Tidak ada pesan gagal.", "chars": "karakter", "remove": "Berhenti memakai kanal ini",
        "max_attempts": "Percobaan maksimum", "public_url": "Alamat publik hub (tautan status)",
        "booking.confirm": "konfirmasi janji temu", "booking.remind": "pengingat janji temu",
        "booking.rescheduled": "janji temu dipindah",
        "booking": "Janji temu",
    },
    "en": {
        "title": "Notifications", "messages": "Message log", "dlq": "Dead letters (DLQ)", "templates": "Templates",
        "settings": "Settings", "status": "Status", "channel": "Channel", "trigger": "Trigger", "branch": "Branch",
        "from": "From", "to": "To", "filter": "Filter", "all": "All", "time": "Time", "ticket": "Ticket",
        "recipient": "Recipient", "attempts": "Attempts", "reason": "Reason", "replay": "Replay",
        "none": "No messages.", "tenant": "Tenant", "language": "Language", "subject": "Subject", "body": "Body",
        "preview": "Preview", "save": "Save", "reset": "Back to default", "segments": "SMS segments",
        "custom": "customised", "default": "default", "wa_template": "WhatsApp template name", "enabled": "Enabled",
        "provider": "Provider", "saved": "Saved.", "replayed": "Scheduled again.", "variables": "Variables",
        "policy": "Policy", "threshold": "\"N to go\" threshold", "fallback": "WhatsApp fallback",
        "sms_fallback": "SMS fallback",
        "retention": "Keep contacts (days)", "secret_kept": "secret stored, leave empty to keep it",
        "dlq_none": "No dead letters.", "chars": "characters", "remove": "Stop using this channel",
        "max_attempts": "Attempts at most", "public_url": "Hub's public address (status links)",
        "booking.confirm": "booking confirmation", "booking.remind": "booking reminder", "booking": "Booking",
        "booking.rescheduled": "booking moved",
    },
}  # fmt: skip


def words(lang: str) -> dict[str, str]:
    """The console's words in `lang` (Indonesian by default)."""
    return WORDS.get(lang, WORDS["id"])


@dataclass(frozen=True)
class Filters:
    """The message log's filters (all optional); dates are local dates in the console's zone, inclusive."""

    status: str | None = None
    channel: str | None = None
    trigger: str | None = None
    branch_id: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int = PAGE

    @classmethod
    def from_query(cls, query: Any, *, dead_only: bool = False) -> Filters:
        """From request query parameters (unknown values are ignored, dates that do not parse too)."""

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(query.get(name) or "")
            except ValueError:
                return None

        def text(name: str) -> str | None:  # a NUL matches nothing (and PostgreSQL refuses it in a query)
            value = query.get(name) or None
            return None if value is None else value if "\x00" not in value else "\ufffd"

        status = "dead" if dead_only else (query.get("status") if query.get("status") in STATUSES else None)
        try:
            limit = max(1, min(1000, int(query.get("limit") or PAGE)))
        except ValueError:
            limit = PAGE
        return cls(status=status, channel=text("channel"), trigger=text("trigger"),
                   branch_id=text("branch_id"), since=day("from"), until=day("to"),
                   limit=limit)  # fmt: skip


def _utc(day: date) -> str:
    """Local midnight of `day` as a UTC timestamp string (what `created_at` is compared with)."""
    return datetime.combine(day, time(), ZONE).astimezone(UTC).isoformat()


def local_time(stamp: str | None) -> str | None:
    """A stored UTC time as `YYYY-MM-DD HH:MM:SS` in the console's zone."""
    if not stamp:
        return None
    return datetime.fromisoformat(stamp).astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")


BOOKING_TRIGGERS = {
    "booking.confirm": "confirm",
    "booking.remind": "remind",
    "booking.rescheduled": "rescheduled",
}  # the log's trigger → appt kind


def _stamp(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["created_at"])


def messages(
    conn: Connection, tenants: frozenset[str] | None, sees: Callable[[str, str], bool], filters: Filters
) -> list[dict[str, Any]]:
    """The newest messages of both outboxes (tickets' and bookings') matching the filters, for tenants the caller
    sees (None: all), contacts masked."""
    found = ticket_messages(conn, tenants, sees, filters) + booking_messages(conn, tenants, sees, filters)
    return sorted(found, key=_stamp, reverse=True)[: filters.limit]


def booking_messages(
    conn: Connection, tenants: frozenset[str] | None, sees: Callable[[str, str], bool], filters: Filters
) -> list[dict[str, Any]]:
    """The newest booking messages matching the filters (a ticket trigger matches none), contacts masked."""
    if filters.trigger and filters.trigger not in BOOKING_TRIGGERS:
        return []
    query = (
        sa.select(appt_messages, appt_bookings.c.email, appt_bookings.c.phone, appt_bookings.c.lang)
        .select_from(
            appt_messages.outerjoin(
                appt_bookings,
                sa.and_(appt_bookings.c.tenant_id == appt_messages.c.tenant_id,
                        appt_bookings.c.booking_id == appt_messages.c.booking_id),
            )
        )
        .order_by(appt_messages.c.id.desc())
        .limit(filters.limit)
    )  # fmt: skip
    if tenants is not None:
        query = query.where(appt_messages.c.tenant_id.in_(sorted(tenants)))
    for column, value in (("status", filters.status), ("channel", filters.channel), ("branch_id", filters.branch_id),
                          ("kind", BOOKING_TRIGGERS.get(filters.trigger or ""))):  # fmt: skip
        if value:
            query = query.where(appt_messages.c[column] == value)
    if filters.since:
        query = query.where(appt_messages.c.created_at >= _utc(filters.since))
    if filters.until:
        query = query.where(appt_messages.c.created_at < _utc(filters.until + timedelta(days=1)))
    return [_booking_view(r._mapping) for r in conn.execute(query) if sees(r.tenant_id, r.branch_id)]


def _booking_view(row: Any) -> dict[str, Any]:
    """A booking message as the log shows it, in the ticket rows' shape (no ticket; the booking id instead)."""
    email, phone = contacts.normalise_email(row["email"]), contacts.normalise_phone(row["phone"])
    recipient = contacts.mask_email(email) if row["channel"] == "email" else contacts.mask_phone(phone)
    return {
        "id": row["id"], "source": "booking", "tenant_id": row["tenant_id"], "branch_id": row["branch_id"],
        "ticket_id": None, "ticket_number": None, "booking_id": row["booking_id"],
        "trigger": f"booking.{row['kind']}", "channel": row["channel"], "status": row["status"], "lang": row["lang"],
        "attempts": row["attempts"], "provider": row["provider"], "code": row["code"], "reason": row["reason"],
        "recipient": recipient, "fallback_of": row["fallback_of"], "created_at": row["created_at"],
        "created_local": local_time(row["created_at"]), "sent_at": row["sent_at"],
        "delivered_at": row["delivered_at"], "round": row["round"],
        "next_attempt_at": row["next_attempt_at"],
    }  # fmt: skip


def booking_attempt_log(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    """Every attempt of one booking message."""
    table = appt_message_attempts
    rows = conn.execute(sa.select(table).where(table.c.message_id == message_id).order_by(table.c.attempt))
    return [dict(r._mapping) for r in rows]


def booking_message_tenant(conn: Connection, message_id: int) -> tuple[str, str] | None:
    """(tenant, branch) of a booking message, to authorise an action on it."""
    row = conn.execute(
        sa.select(appt_messages.c.tenant_id, appt_messages.c.branch_id).where(appt_messages.c.id == message_id)
    ).first()
    return (row.tenant_id, row.branch_id) if row is not None else None


def ticket_messages(
    conn: Connection, tenants: frozenset[str] | None, sees: Callable[[str, str], bool], filters: Filters
) -> list[dict[str, Any]]:
    """The newest ticket messages matching the filters, contacts masked."""
    query = (
        sa.select(outbox, tickets.c.ticket_number)
        .select_from(
            outbox.outerjoin(
                tickets,
                sa.and_(tickets.c.tenant_id == outbox.c.tenant_id, tickets.c.branch_id == outbox.c.branch_id,
                        tickets.c.ticket_id == outbox.c.ticket_id),
            )
        )
        .order_by(outbox.c.id.desc())
        .limit(filters.limit)
    )  # fmt: skip
    if tenants is not None:
        query = query.where(outbox.c.tenant_id.in_(sorted(tenants)))
    for column, value in (("status", filters.status), ("channel", filters.channel), ("trigger", filters.trigger),
                          ("branch_id", filters.branch_id)):  # fmt: skip
        if value:
            query = query.where(outbox.c[column] == value)
    if filters.since:
        query = query.where(outbox.c.created_at >= _utc(filters.since))
    if filters.until:
        query = query.where(outbox.c.created_at < _utc(filters.until + timedelta(days=1)))
    found = [dict(r._mapping) for r in conn.execute(query) if sees(r.tenant_id, r.branch_id)]
    by_branch: dict[tuple[str, str], list[str]] = {}
    for row in found:
        by_branch.setdefault((row["tenant_id"], row["branch_id"]), []).append(row["ticket_id"])
    masks: dict[tuple[str, str, str], dict[str, str | None]] = {}
    for (tenant, branch_id), ticket_ids in by_branch.items():
        for ticket_id, contact in contacts.read_many(conn, tenant, branch_id, ticket_ids).items():
            masks[(tenant, branch_id, ticket_id)] = contacts.masked(contact)
    return [_view(row, masks.get((row["tenant_id"], row["branch_id"], row["ticket_id"]))) for row in found]


def _view(row: dict[str, Any], mask: dict[str, str | None] | None) -> dict[str, Any]:
    """One row as the console shows it: the recipient masked for its channel, local times, no template vars."""
    mask = mask or {}
    recipient = {"email": mask.get("email"), "sms": mask.get("phone"), "whatsapp": mask.get("phone"),
                 "push": "browser"}.get(row["channel"])  # fmt: skip
    return {
        "id": row["id"], "source": "ticket", "tenant_id": row["tenant_id"], "branch_id": row["branch_id"],
        "ticket_id": row["ticket_id"], "booking_id": None, "ticket_number": row.get("ticket_number"),
        "trigger": row["trigger"], "channel": row["channel"],
        "status": row["status"], "lang": row["lang"], "attempts": row["attempts"], "provider": row["provider"],
        "code": row["code"], "reason": row["reason"], "recipient": recipient, "fallback_of": row["fallback_of"],
        "created_at": row["created_at"], "created_local": local_time(row["created_at"]),
        "sent_at": row["sent_at"], "delivered_at": row["delivered_at"], "next_attempt_at": row["next_attempt_at"],
    }  # fmt: skip


def attempt_log(conn: Connection, outbox_id: int) -> list[dict[str, Any]]:
    """Every attempt of one message."""
    rows = conn.execute(sa.select(attempts).where(attempts.c.outbox_id == outbox_id).order_by(attempts.c.attempt))
    return [dict(r._mapping) for r in rows]


def message_tenant(conn: Connection, outbox_id: int) -> tuple[str, str] | None:
    """(tenant, branch) of a message, to authorise an action on it."""
    row = conn.execute(sa.select(outbox.c.tenant_id, outbox.c.branch_id).where(outbox.c.id == outbox_id)).first()
    return (row.tenant_id, row.branch_id) if row is not None else None
