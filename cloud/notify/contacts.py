"""Customer contacts at the hub: normalised (E.164 for phone numbers, Indonesia by default), masked wherever shown,
kept per ticket until a retention period ends and then purged (UU PDP 27/2022). Every read and write of a contact
goes through this module, so encrypting them at rest (issue 16) changes one file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.notify.tables import contacts, push_subscriptions
from cloud.store import insert_ignore, probe, write_many

DEFAULT_REGION = "ID"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class Contact:
    """A ticket's contacts as the dispatcher needs them (already normalised)."""

    phone: str | None
    email: str | None
    push: str | None  # the ticket's push subscriptions as one JSON array (oldest first), or None
    opt_in: bool | None
    lang: str | None


def normalise_phone(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 (`+6281234567890`) of a number typed as 0812…, 62812…, +62812… (or any valid number with its country
    code); None when it is not a possible number, so a typo is skipped rather than sent to a stranger."""
    if not raw:
        return None
    text = raw.strip()
    digits = re.sub(r"[\s().-]", "", text)
    if digits.isdigit() and digits.startswith("62") and region == DEFAULT_REGION:
        digits = "+" + digits  # 62812…: the country code typed without its plus
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str | None) -> str | None:
    """The address trimmed, its domain lower-cased; None when it is not an address."""
    if not raw:
        return None
    local, _, domain = raw.strip().rpartition("@")
    address = f"{local}@{domain.lower()}"
    return address if _EMAIL.match(address) and len(address) <= 254 else None  # noqa: PLR2004  # RFC 5321 path


def mask_phone(phone: str | None) -> str | None:
    """`+62812****5678`: the country and operator prefix and the last four digits."""
    if not phone:
        return None
    keep_head = 6 if phone.startswith("+") else 4
    if len(phone) <= keep_head + 4:
        return phone[:2] + "*" * max(0, len(phone) - 2)
    return phone[:keep_head] + "*" * (len(phone) - keep_head - 4) + phone[-4:]


def mask_email(email: str | None) -> str | None:
    """`a***@example.com`: the first character of the mailbox and the domain."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


def record(
    conn: Connection,
    tenant: str,
    branch_id: str,
    ticket_id: str,
    *,
    phone: str | None,
    email: str | None,
    opt_in: bool | None,
    lang: str | None,
    now: datetime,
    retention: timedelta,
) -> Contact | None:
    """Store a ticket's contacts (normalised; nothing stored when neither is usable). Idempotent: a redelivered
    ticket.created keeps the first row."""
    contact = Contact(normalise_phone(phone), normalise_email(email), None, opt_in, lang)  # push: from read_many
    if contact.phone is None and contact.email is None:
        return None
    conn.execute(
        insert_ignore(conn, contacts).values(
            tenant_id=tenant, branch_id=branch_id, ticket_id=ticket_id, phone=contact.phone, email=contact.email,
            opt_in=opt_in, lang=lang, created_at=now.isoformat(),
            purge_after=(now + retention).isoformat(),
        )
    )  # fmt: skip
    return contact


@dataclass(frozen=True)
class Given:
    """A ticket's contacts as its `ticket.created` gave them (not normalised yet)."""

    ticket_id: str
    phone: str | None
    email: str | None
    opt_in: bool | None
    lang: str | None


def record_many(
    conn: Connection, tenant: str, branch_id: str, given: list[Given], *, now: datetime, retention: timedelta
) -> None:
    """`record` for a batch of tickets in one statement (the consumer's trigger path)."""
    rows: dict[str, dict[str, object]] = {}
    stamps = {"created_at": now.isoformat(), "purge_after": (now + retention).isoformat()}
    for g in given:
        phone, email = normalise_phone(g.phone), normalise_email(g.email)
        if (phone is not None or email is not None) and g.ticket_id not in rows:  # the first one, as `record`
            keys = {"tenant_id": tenant, "branch_id": branch_id, "ticket_id": g.ticket_id}
            rows[g.ticket_id] = {**keys, "phone": phone, "email": email, "opt_in": g.opt_in, "lang": g.lang, **stamps}
    write_many(conn, contacts, list(rows.values()), merge="ignore")


def read(conn: Connection, tenant: str, branch_id: str, ticket_id: str) -> Contact | None:
    """A ticket's contacts, or None (never given, or purged)."""
    return read_many(conn, tenant, branch_id, [ticket_id]).get(ticket_id)


def read_many(conn: Connection, tenant: str, branch_id: str, ticket_ids: list[str]) -> dict[str, Contact]:
    """Contacts of several tickets of one branch (the trigger path reads a batch at once)."""
    if not ticket_ids:
        return {}
    rows = conn.execute(probe(conn, contacts, tenant, branch_id, "ticket_id", ticket_ids))
    found = {r.ticket_id: Contact(r.phone, r.email, None, r.opt_in, r.lang) for r in rows}
    columns = [push_subscriptions.c.ticket_id, push_subscriptions.c.subscription, push_subscriptions.c.lang,
               push_subscriptions.c.created_at]  # fmt: skip
    query = probe(conn, push_subscriptions, tenant, branch_id, "ticket_id", ticket_ids, columns)
    pushes = conn.execute(query.order_by(query.selected_columns.created_at))
    subscribed: dict[str, list[str]] = {}
    for ticket_id, subscription, lang, _created in pushes:  # every browser the customer asked on receives the notice
        subscribed.setdefault(ticket_id, []).append(subscription)
        had = found.get(ticket_id) or Contact(None, None, None, None, lang)
        found[ticket_id] = Contact(had.phone, had.email, None, had.opt_in, had.lang or lang)
    for ticket_id, subscriptions in subscribed.items():
        had = found[ticket_id]
        found[ticket_id] = Contact(had.phone, had.email, f"[{','.join(subscriptions)}]", had.opt_in, had.lang)
    return found


def masked(contact: Contact | None) -> dict[str, str | None]:
    """What the console may show of a contact."""
    if contact is None:
        return {"phone": None, "email": None}
    return {"phone": mask_phone(contact.phone), "email": mask_email(contact.email)}


def purge(conn: Connection, now: datetime, limit: int = 5000) -> int:
    """Delete contacts (and their tickets' push subscriptions) whose retention ended, in chunks (no huge lock)."""
    due = (
        sa.select(contacts.c.tenant_id, contacts.c.branch_id, contacts.c.ticket_id)
        .where(contacts.c.purge_after <= now.isoformat())
        .limit(limit)
    )
    keys = conn.execute(due).all()
    for tenant, branch_id, ticket_id in keys:
        for table in (contacts, push_subscriptions):
            conn.execute(
                sa.delete(table).where(
                    table.c.tenant_id == tenant, table.c.branch_id == branch_id, table.c.ticket_id == ticket_id
                )
            )
    return len(keys)
