"""Read model of the public ticket status page (`/t/<token>`): verify a branch's status link and describe its ticket.

The token names its branch but not its tenant (branch ids are unique only inside a tenant): each branch of that id
is tried with its own link key, the NKey seed `qms-cloud branch add` wrote (`<keys_dir>/<tenant>.<branch>.nk`), and
the one whose key verifies the token's signature is the link's. Anything that does not check out — malformed,
forged, an unknown branch, no seed — is simply not found, and never says why. The page carries no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.store import branch_key, branches, config_versions, events, number_leases, ticket_links, tickets
from sync import links
from sync.contract import ConfigApplied
from sync.contract_config import BranchConfig, config_decoder
from sync.relay import config_key

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Status antrean",
        "your_number": "Nomor antrean Anda",
        "ahead": "Antrean di depan Anda",
        "waiting": "Menunggu",
        "called": "Dipanggil — silakan menuju",
        "serving": "Sedang dilayani",
        "held": "Ditunda — mohon tunggu panggilan",
        "done": "Selesai",
        "cancelled": "Dibatalkan",
        "no_show": "Tidak hadir saat dipanggil",
        "pending": "Tiket ini dibuat saat offline dan akan muncul setelah tersinkron.",
        "syncing": "Tiket Anda akan muncul di sini setelah data cabang tersinkron.",
        "updated": "Diperbarui {time} · muat ulang otomatis",
        "notify_me": "Beri tahu saya",
        "notify_hint": "Kami kirim notifikasi ke perangkat ini saat nomor Anda dipanggil.",
        "notify_on": "Notifikasi aktif: kami beri tahu saat Anda dipanggil.",
        "notify_denied": "Notifikasi diblokir di browser ini. Izinkan di pengaturan situs.",
        "notify_unsupported": "Browser ini tidak mendukung notifikasi. Di iPhone: Bagikan → Tambah ke Layar Utama.",
        "notify_failed": "Notifikasi belum bisa diaktifkan. Coba lagi.",
        "notify_full": "Tiket ini sudah memberi tahu perangkat sebanyak batasnya. Matikan di perangkat lain dulu.",
    },
    "en": {
        "title": "Queue status",
        "your_number": "Your queue number",
        "ahead": "People ahead of you",
        "waiting": "Waiting",
        "called": "Called — please go to",
        "serving": "Being served",
        "held": "On hold — please wait to be called",
        "done": "Finished",
        "cancelled": "Cancelled",
        "no_show": "Missed the call",
        "pending": "This ticket was issued offline and appears here once it has synced.",
        "syncing": "Your ticket appears here once the branch's data has synced.",
        "updated": "Updated {time} · refreshes automatically",
        "notify_me": "Notify me",
        "notify_hint": "We send a notification to this device when your number is called.",
        "notify_on": "Notifications on: we will tell you when you are called.",
        "notify_denied": "Notifications are blocked in this browser. Allow them in the site settings.",
        "notify_unsupported": "This browser cannot show notifications. On iPhone: Share → Add to Home Screen.",
        "notify_failed": "Notifications could not be turned on. Please try again.",
        "notify_full": "This ticket already notifies as many devices as it may. Turn it off on another one first.",
    },
}
_applied_decoder = msgspec.json.Decoder(ConfigApplied)
_same_ticket = sa.and_(
    ticket_links.c.tenant_id == tickets.c.tenant_id,
    ticket_links.c.branch_id == tickets.c.branch_id,
    ticket_links.c.ticket_id == tickets.c.ticket_id,
)


def words(lang: str | None) -> dict[str, str]:
    """The page's words in a language (Indonesian when unknown)."""
    return WORDS.get(lang or "", WORDS["id"])


def link_key(keys_dir: Path, tenant: str, branch_id: str) -> bytes | None:
    """The branch's status-link key, from the NKey seed the hub issued it; None without a readable seed."""
    try:
        return links.seed_link_key(keys_dir / f"{config_key(tenant, branch_id)}.nk")
    except (OSError, ValueError):
        return None


def status_of(engine: Engine, keys_dir: Path, token: str) -> dict[str, Any] | None:
    """The status page's context for a token, or None when it is not a valid link of a known branch."""
    branch_id = links.branch_of(token)
    if branch_id is None:
        return None
    with engine.connect() as conn:
        found = _signed_by(conn, keys_dir, branch_id, token)
        if found is None:
            return None
        branch, ref = found
        tenant = branch.tenant_id
        config = branch_config(conn, branch)
        ticket_id = ref.ident if ref.kind == "t" else _synced_ticket(conn, tenant, branch_id, ref.ident)
        ticket = _ticket(conn, tenant, branch_id, ticket_id) if ticket_id else None
        pending = None if ticket or ref.kind == "t" else _leased_number(conn, tenant, branch_id, ref.ident, config)
    lang = (ticket or {}).get("lang") or (config.languages[0] if config and config.languages else "id")
    lang = lang if lang in WORDS else "id"
    page: dict[str, Any] = {
        "lang": lang,
        "words": words(lang),
        "branch": config.name if config else branch_id,
        "ticket": ticket,
        "pending_number": pending,
        "offline": ref.kind == "o",
        "updated": _updated(branch, config),
    }
    if ticket is not None:
        service = config.service(ticket["service_id"]) if config else None
        counter = config.counter(ticket["counter_id"]) if config and ticket["counter_id"] else None
        page["service"] = (service.names.get(lang) or service.name) if service else ticket["service_id"]
        page["counter"] = counter.name if counter else ticket["counter_id"]
    return page


@dataclass(frozen=True)
class TicketRef:
    """The replicated ticket a status link names: what the page's "notify me" subscribes to."""

    tenant: str
    branch_id: str
    ticket_id: str
    status: str
    lang: str


def ticket_ref(engine: Engine, keys_dir: Path, token: str) -> TicketRef | None:
    """The ticket behind a valid status link once it has synced; None for anything else (like `status_of`)."""
    branch_id = links.branch_of(token)
    if branch_id is None:
        return None
    with engine.connect() as conn:
        found = _signed_by(conn, keys_dir, branch_id, token)
        if found is None:
            return None
        branch, ref = found
        ticket_id = ref.ident if ref.kind == "t" else _synced_ticket(conn, branch.tenant_id, branch_id, ref.ident)
        ticket = _ticket(conn, branch.tenant_id, branch_id, ticket_id) if ticket_id else None
    if ticket is None or ticket_id is None:
        return None
    lang = ticket["lang"] if ticket.get("lang") in WORDS else "id"
    return TicketRef(branch.tenant_id, branch_id, ticket_id, ticket["status"], lang)


def _signed_by(conn: Connection, keys_dir: Path, branch_id: str, token: str) -> tuple[Any, Any] | None:
    """(branch row, verified reference) of the branch of that id whose link key signed the token, else None."""
    rows = conn.execute(sa.select(branches).where(branches.c.branch_id == branch_id)).all()
    for branch in rows:
        key = link_key(keys_dir, branch.tenant_id, branch_id)
        ref = links.verify(key, token) if key is not None else None
        if ref is not None:
            return branch, ref
    return None


def branch_config(conn: Connection, branch: Any) -> BranchConfig | None:
    """The configuration the branch runs: the version it reported applying (as distributed, else from its own
    `config.applied` event), or the newest distributed one before it reported any."""
    where = (branch_key(config_versions, branch.tenant_id, branch.branch_id),)
    query = sa.select(config_versions.c.doc).where(*where)
    if branch.config_version is None:
        doc = conn.execute(query.order_by(config_versions.c.version.desc()).limit(1)).scalar_one_or_none()
    else:
        doc = conn.execute(query.where(config_versions.c.version == branch.config_version)).scalar_one_or_none()
    try:
        if doc is not None:
            return config_decoder.decode(doc)
        body = conn.execute(
            sa.select(events.c.body)
            .where(branch_key(events, branch.tenant_id, branch.branch_id), events.c.type == "config.applied")
            .order_by(events.c.seq.desc())
            .limit(1)
        ).scalar_one_or_none()
        return _applied_decoder.decode(body).config if body is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # a document this hub cannot read: the page falls back to ids


def _synced_ticket(conn: Connection, tenant: str, branch_id: str, temp_id: str) -> str | None:
    """The ticket an offline ticket became when it synced (its temporary id was its request id)."""
    query = sa.select(ticket_links.c.ticket_id).where(
        branch_key(ticket_links, tenant, branch_id), ticket_links.c.request_id == temp_id
    )
    return conn.execute(query.limit(1)).scalar_one_or_none()


def _ticket(conn: Connection, tenant: str, branch_id: str, ticket_id: str) -> dict[str, Any] | None:
    """Number, service, status, language, counter and people ahead of one replicated ticket."""
    row = conn.execute(
        sa.select(tickets.c.ticket_number, tickets.c.service_id, tickets.c.status, ticket_links.c.lang,
                  ticket_links.c.counter_id, ticket_links.c.queue_order)
        .select_from(tickets.outerjoin(ticket_links, _same_ticket))
        .where(branch_key(tickets, tenant, branch_id), tickets.c.ticket_id == ticket_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        return None
    ticket = dict(row._mapping)
    ticket["ahead"] = None
    if row.status == "waiting" and row.queue_order is not None:
        ticket["ahead"] = conn.execute(
            sa.select(sa.func.count())
            .select_from(tickets.join(ticket_links, _same_ticket))
            .where(branch_key(tickets, tenant, branch_id), tickets.c.status == "waiting",
                   tickets.c.service_id == row.service_id, ticket_links.c.queue_order < row.queue_order)
        ).scalar_one()  # fmt: skip
    return ticket


def _leased_number(
    conn: Connection, tenant: str, branch_id: str, temp_id: str, config: BranchConfig | None
) -> str | None:
    """An offline ticket's number before it synced (`off-<lease_id>-<seq>` of a replicated `numbers.leased`)."""
    lease_id, _, seq = temp_id.removeprefix("off-").rpartition("-")
    if not temp_id.startswith("off-") or not seq.isdigit() or config is None:
        return None
    lease = conn.execute(
        sa.select(number_leases).where(
            branch_key(number_leases, tenant, branch_id), number_leases.c.lease_id == lease_id
        )
    ).one_or_none()
    service = config.service(lease.service_id) if lease is not None else None
    if lease is None or service is None or not lease.first_seq <= int(seq) <= lease.last_seq:
        return None
    return f"{service.prefix}{int(seq):0{service.digits}d}"  # the appliance's numbering (prefix + padded sequence)


def _updated(branch: Any, config: BranchConfig | None) -> str | None:
    """When the hub last heard from the branch, `HH:MM` in the branch's time zone (how fresh the page is)."""
    stamp = branch.last_received_at or branch.last_event_at
    if stamp is None:
        return None
    try:
        zone = ZoneInfo(config.timezone if config else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.fromisoformat(stamp).astimezone(zone).strftime("%H:%M")
