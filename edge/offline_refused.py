"""Offline kiosk tickets the appliance refused: kept in SQLite until staff help the person who holds the paper.

A kiosk issues numbers from its lease while the appliance is unreachable; at reconciliation the engine may refuse
one (the lease is of an earlier business day, the service was removed, the temporary id does not match …). The
customer still holds a printed number the queue does not know, so the refusal is recorded here, through the single
writer, before the kiosk is told to drop it; staff see it (`/staff/offline-refused`, `GET
/api/v1/kiosk/offline-refused`, `qms-edge status`/`doctor`) and issue a real ticket for the person or dismiss it.
A refusal is not an event: it changes no queue, so it never enters the hash-chained log nor replicates.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, Literal

import msgspec

from edge.engine.model import Lease
from edge.engine.numbering import format_number
from sync.contract_config import BranchConfig, Service, config_decoder

State = Literal["open", "issued", "dismissed"]
STATES: tuple[State, ...] = ("open", "issued", "dismissed")
_encoder = msgspec.json.Encoder()

# Why the appliance refused an offline ticket, as staff read it (keys: the engine's refusal codes, `lease_unknown` for
# a `lease_not_found` whose lease this appliance never granted (see `record`); `other` for the rest, whose English
# detail is shown beside it).
REFUSED_WORDS: dict[str, dict[str, str]] = {
    "id": {
        "lease_not_found": "Nomor ini dipinjam untuk hari kerja sebelumnya (tiket dibuat sebelum hari ditutup atau "
        "baru tersinkron setelah pergantian hari).",
        "lease_unknown": "Blok nomor kios ini tidak dikenal appliance ini (dipinjam dari appliance lain, atau sebelum "
        "cadangan dipulihkan).",
        "lease_wrong_device": "Nomor ini dipinjam oleh kios lain.",
        "lease_number_invalid": "Nomor ini tidak termasuk blok yang dipinjam kios.",
        "lease_number_used": "Nomor ini sudah dipakai tiket lain.",
        "temp_id_mismatch": "Data tiket dari kios tidak cocok dengan nomornya (kios perlu diperiksa).",
        "unknown_service": "Layanan tiket ini sudah dihapus dari konfigurasi.",
        "request_id_required": "Tiket dari kios tidak membawa kode sementaranya.",
        "not_configured": "Cabang belum dikonfigurasi saat tiket disinkronkan.",
        "other": "Appliance menolak tiket ini.",
    },
    "en": {
        "lease_not_found": "The number was leased for an earlier business day (issued before the day closed, or "
        "synced after the day changed).",
        "lease_unknown": "The kiosk's number range is unknown to this appliance (leased from another appliance, or "
        "before a backup was restored).",
        "lease_wrong_device": "The number was leased to another kiosk.",
        "lease_number_invalid": "The number is not in the block the kiosk leased.",
        "lease_number_used": "The number is already used by another ticket.",
        "temp_id_mismatch": "The kiosk's ticket data does not match its number (the kiosk needs a look).",
        "unknown_service": "The ticket's service has been removed from the configuration.",
        "request_id_required": "The kiosk's ticket carried no temporary id.",
        "not_configured": "The branch had no configuration when the ticket was synced.",
        "other": "The appliance refused this ticket.",
    },
}


class RefusedTicket(msgspec.Struct, frozen=True, kw_only=True):
    """One refused offline ticket as stored (times are UTC)."""

    temp_id: str
    lease_id: str
    seq_no: int
    device_id: str
    service_id: str | None
    service_names: dict[str, str]
    ticket_number: str | None
    issued_at: datetime
    lang: str | None
    code: str
    detail: str
    refused_at: datetime
    attempts: int
    state: State
    resolved_by: str | None
    resolved_at: datetime | None
    ticket_id: str | None
    new_number: str | None


COLUMNS = ", ".join(RefusedTicket.__struct_fields__)


NO_NUMBER = "\u2014"  # a refused ticket whose printed number is not known (its lease is unknown here)


def printed_number(ticket: RefusedTicket) -> str:
    """The number as the kiosk printed it (its service's prefix and digits), or "—" when the appliance cannot know it
    (never "#1": that is no number anybody holds)."""
    return ticket.ticket_number or NO_NUMBER


def reason_text(code: str, lang: str) -> str:
    """The refusal in the reader's words (Indonesian unless English is asked for)."""
    words = REFUSED_WORDS.get(lang, REFUSED_WORDS["id"])
    return words.get(code, words["other"])


def _lease_of(conn: sqlite3.Connection, lease_id: str, leases: dict[str, Lease]) -> tuple[str, str] | None:
    """(service_id, business_date) of a lease: today's from the engine, an earlier day's from the event log."""
    if lease_id in leases:
        return leases[lease_id].service_id, leases[lease_id].business_date
    # Newest first: a refused lease is usually yesterday's. `instr` narrows the decoding to bodies naming the id.
    rows = conn.execute(
        "SELECT body FROM events WHERE type = 'numbers.leased' AND instr(CAST(body AS TEXT), ?) > 0"
        " ORDER BY seq DESC LIMIT 5",
        (f'"{lease_id}"',),
    )
    for (body,) in rows:
        event = msgspec.json.decode(body)
        if event.get("lease_id") == lease_id:
            return str(event["service_id"]), str(event["business_date"])
    return None


def _service_of(conn: sqlite3.Connection, config: BranchConfig | None, service_id: str) -> Service | None:
    """The service as configured now, or as the newest configuration that still had it (a removed service)."""
    if config is not None and (found := config.service(service_id)) is not None:
        return found
    for (doc,) in conn.execute("SELECT doc FROM config ORDER BY version DESC"):
        if (found := config_decoder.decode(doc).service(service_id)) is not None:
            return found
    return None


def _names(service: Service) -> dict[str, str]:
    return {"": service.name, **service.names}


class Described(msgspec.Struct, frozen=True, kw_only=True):
    """What the appliance knows of a refused ticket's number: its service (and names) and the printed number."""

    service_id: str | None = None
    service_names: dict[str, str] = {}
    ticket_number: str | None = None


def describe(
    conn: sqlite3.Connection, lease_id: str, seq_no: int, config: BranchConfig | None, leases: dict[str, Lease]
) -> Described:
    """The service and number of a leased seq (on the read connection: an earlier day's lease is looked up in the
    event log, which must not hold up the writer)."""
    lease = _lease_of(conn, lease_id, leases)
    service = _service_of(conn, config, lease[0]) if lease else None
    if lease is None or service is None:
        return Described(service_id=lease[0] if lease else None)
    return Described(service_id=lease[0], service_names=_names(service), ticket_number=format_number(service, seq_no))


def known(conn: sqlite3.Connection, temp_id: str) -> bool:
    """Whether this temporary id's refusal is already recorded (a resend needs no look-up)."""
    return conn.execute("SELECT 1 FROM offline_refused WHERE temp_id = ?", (temp_id,)).fetchone() is not None


def record(
    conn: sqlite3.Connection, item: Any, about: Described, *, device_id: str, code: str, detail: str, now: datetime
) -> bool:
    """Keep a refused offline ticket (`item`: the kiosk's OfflineTicket), in the writer's transaction; True when new.

    The same temporary id again only counts another attempt: one row per ticket the customer holds. The engine's
    `lease_not_found` (no such lease today) is kept as `lease_unknown` when this appliance never granted the lease at
    all (no earlier day's lease in its log either): not "leased for an earlier business day"."""
    if code == "lease_not_found" and about.service_id is None:
        code = "lease_unknown"
    again = conn.execute(
        "UPDATE offline_refused SET attempts = attempts + 1 WHERE temp_id = ?", (item.temp_id,)
    ).rowcount
    if again:
        return False
    conn.execute(
        "INSERT INTO offline_refused (temp_id, lease_id, seq_no, device_id, service_id, service_names, ticket_number,"
        " issued_at, lang, code, detail, refused_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (item.temp_id, item.lease_id, item.seq_no, device_id, about.service_id,
         _encoder.encode(about.service_names).decode(), about.ticket_number, item.issued_at.isoformat(), item.lang,
         code, detail[:500], now.isoformat()),
    )  # fmt: skip
    return True


def _row(values: tuple[Any, ...]) -> RefusedTicket:
    data = dict(zip(RefusedTicket.__struct_fields__, values, strict=True))
    data["service_names"] = msgspec.json.decode(data["service_names"] or "{}")
    return msgspec.convert(data, RefusedTicket, strict=False)


def listing(conn: sqlite3.Connection, state: State | None = "open", limit: int = 500) -> list[RefusedTicket]:
    """Refused tickets in one state (None: all), the oldest open first (the person has waited longest)."""
    where, params = ("WHERE state = ?", (state,)) if state else ("", ())
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM offline_refused {where} ORDER BY issued_at, temp_id LIMIT ?",  # noqa: S608 - fixed
        (*params, limit),
    )
    return [_row(r) for r in rows]


def find(conn: sqlite3.Connection, temp_id: str) -> RefusedTicket | None:
    """One refused ticket by its temporary id."""
    row = conn.execute(f"SELECT {COLUMNS} FROM offline_refused WHERE temp_id = ?", (temp_id,)).fetchone()  # noqa: S608
    return _row(row) if row else None


def count_open(conn: sqlite3.Connection) -> int:
    """How many refused tickets still wait for staff."""
    return int(conn.execute("SELECT count(*) FROM offline_refused WHERE state = 'open'").fetchone()[0])


def resolve(
    conn: sqlite3.Connection,
    temp_id: str,
    state: Literal["issued", "dismissed"],
    *,
    actor: str,
    now: datetime,
    ticket_id: str | None = None,
    new_number: str | None = None,
) -> bool:
    """Close an open refused ticket (issued a real ticket, or dismissed); False when it was not open.

    A real ticket always wins: issued while someone else dismissed it, the row says which ticket the person got."""
    return bool(
        conn.execute(
            "UPDATE offline_refused SET state = ?, resolved_by = ?, resolved_at = ?, ticket_id = ?, new_number = ?"
            " WHERE temp_id = ? AND (state = 'open' OR (? = 'issued' AND state = 'dismissed'))",
            (state, actor, now.isoformat(), ticket_id, new_number, temp_id, state),
        ).rowcount
    )


def as_json(ticket: RefusedTicket, lang: str = "en") -> dict[str, Any]:
    """The API's view of a refused ticket (with the reason in words)."""
    data = msgspec.to_builtins(ticket)
    data["reason"] = reason_text(ticket.code, lang)
    return data
