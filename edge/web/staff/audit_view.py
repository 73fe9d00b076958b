"""The audit log as people read it: ticket numbers and names instead of ids, config changes as field diffs.

Config edits record `changes = {field: [before, after]}` (names, not ids) when written. The viewer and the CSV export
turn targets (`ticket:<id>`, `counter:3`, `service:teller`) and detail keys into words; actions and keys it does
not know (other parts of the appliance add audit rows too) are shown as they are, never dropped.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from edge.audit import AuditRecord
from edge.engine.model import State
from edge.offline_refused import reason_text
from edge.web.staff.boards import service_name
from edge.web.staff.i18n import Translator
from edge.web.staff.render import outcome_name
from sync.contract_config import BranchConfig

MAX_VALUE = 80  # characters of one value shown in a diff
# Config fields as the admin forms label them (msgids of the catalogs); other fields keep their names.
FIELD_LABELS = {
    "id": "Id",
    "name": "Name",
    "names": "Name (English)",
    "area_id": "Area",
    "services": "Services",
    "prefix": "Prefix",
    "digits": "Digits",
    "active": "Active",
    "timezone": "Timezone",
    "sla_minutes": "SLA target (minutes)",
    "avg_service_seconds": "Average service time (seconds)",
    "priority_enabled": "Priority tickets",
    "default_priority": "Default priority (0-9)",
    "daily_capacity": "Daily capacity (empty: unlimited)",
    "hours": "Opening hours (one line per day or range, empty: always open)",
    "grace_seconds": "Grace period (seconds, empty: never automatic)",
    "no_show_policy": "No-show policy",
    "max_returns": "Returns allowed",
    "outcome_codes": "Outcome codes (comma separated)",
}
ITEM_KINDS = {"service": "services", "counter": "counters", "area": "areas"}
# Detail keys of other parts' audit rows, labelled here (refused offline tickets: edge.web.staff.offline_refused).
DETAIL_WORDS = {
    "id": {"offline_number": "nomor tiket offline", "refusal": "alasan penolakan", "new_number": "nomor tiket baru"},
    "en": {"offline_number": "offline ticket number", "refusal": "refusal reason", "new_number": "new ticket number"},
}
SKIP = frozenset({"version", "services", "counters", "areas", "kiosk", "signage", "config_hash"})


def _names(config: BranchConfig, lang: str) -> dict[str, dict[str, str]]:
    return {
        "service": {s.id: service_name(s, lang, s.id) for s in config.services},
        "counter": {k.id: k.name for k in config.counters},
        "area": {a.id: a.name for a in config.areas},
    }


def _readable(field: str, value: Any, names: dict[str, dict[str, str]]) -> Any:
    """Ids in a config value replaced by names (services of a counter, an area)."""
    if field == "services" and isinstance(value, list):
        return [names["service"].get(v, v) for v in value]
    if field == "area_id" and isinstance(value, str):
        return names["area"].get(value, value)
    return value


Names = tuple[dict[str, Any], dict[str, Any]]


def _diff(before: dict[str, Any], after: dict[str, Any], names: Names) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in sorted(before.keys() | after.keys()):
        if key in SKIP or before.get(key) == after.get(key):
            continue
        changes[key] = [_readable(key, before.get(key), names[0]), _readable(key, after.get(key), names[1])]
    return changes


def config_changes(
    before: BranchConfig, after: BranchConfig, kind: str, old_id: str | None, new_id: str | None, lang: str = "en"
) -> dict[str, Any]:
    """Field-level `{field: [before, after]}` of one admin edit (a new item: before is null)."""
    names = (_names(before, lang), _names(after, lang))
    if kind in ITEM_KINDS:
        attr = ITEM_KINDS[kind]
        old = next((i for i in getattr(before, attr) if i.id == old_id), None) if old_id else None
        new = next((i for i in getattr(after, attr) if i.id == new_id), None)
        return _diff(msgspec.to_builtins(old) if old else {}, msgspec.to_builtins(new) if new else {}, names)
    if kind == "kiosk":
        return _diff(msgspec.to_builtins(before.kiosk), msgspec.to_builtins(after.kiosk), names)
    return _diff(msgspec.to_builtins(before), msgspec.to_builtins(after), names)


def ticket_numbers(conn: sqlite3.Connection, ids: set[str]) -> dict[str, str]:
    """Numbers of tickets (also of earlier days) from the tickets projection."""
    found: dict[str, str] = {}
    for ticket_id in ids:
        row = conn.execute("SELECT ticket_number FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        if row is not None:
            found[ticket_id] = str(row[0])
    return found


def ticket_ids(records: list[AuditRecord]) -> set[str]:
    """Every ticket id the records name (target or detail)."""
    ids = set()
    for r in records:
        if r.target and r.target.startswith("ticket:"):
            ids.add(r.target.split(":", 1)[1])
        if isinstance(r.detail.get("ticket"), str):
            ids.add(r.detail["ticket"])
    return ids


def _short(value: Any) -> str:
    if value is None or value in ("", []):
        return "\u2013"
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = msgspec.json.encode(value).decode()
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "\u2026"


class Readable:
    """Turns audit records into words in one language, with the names the branch uses today."""

    def __init__(self, state: State, lang: str, numbers: dict[str, str]) -> None:
        self.state = state
        self.lang = lang
        self._ = Translator(lang)
        self.numbers = numbers

    def _name(self, kind: str, ident: str) -> str:
        config = self.state.config
        if kind == "ticket":
            ticket = self.state.tickets.get(ident)
            return self.numbers.get(ident) or (ticket.ticket_number if ticket else ident[:8] + "\u2026")
        if config is None:
            return ident
        if kind == "service":
            return service_name(config.service(ident), self.lang, ident)
        if kind == "counter":
            counter = config.counter(ident)
            return counter.name if counter else ident
        if kind == "area":
            return next((a.name for a in config.areas if a.id == ident), ident)
        return ident

    def target(self, record: AuditRecord) -> str:
        """`Ticket C001`, `Counter 3`, `service Teller`, or the raw target for kinds it does not know."""
        if not record.target or ":" not in record.target:
            return record.target or "\u2013"
        kind, ident = record.target.split(":", 1)
        if kind == "counter":
            return self._name(kind, ident)
        if kind in ("ticket", "service", "area"):
            return f"{self._(kind + '_label')} {self._name(kind, ident)}"
        return record.target

    def details(self, record: AuditRecord) -> list[tuple[str, str]]:
        """(label, value) pairs: a diff line per changed field, names for ids, unknown keys as they are."""
        pairs: list[tuple[str, str]] = []
        for key, value in record.detail.items():
            if key == "changes" and isinstance(value, dict):
                for field, change in value.items():
                    label = self._(FIELD_LABELS[field]) if field in FIELD_LABELS else field
                    if isinstance(change, list) and len(change) == 2:  # noqa: PLR2004 - [before, after]
                        pairs.append((label, f"{_short(change[0])} \u2192 {_short(change[1])}"))
                    else:
                        pairs.append((label, _short(change)))
                continue
            if key == "change":
                continue  # create/update is said by the diff itself
            if key in ("ticket", "ticket_id") and isinstance(value, str):
                pairs.append((self._("ticket_label"), self._name("ticket", value)))
            elif key in ("counter", "counter_id", "service", "service_id") and isinstance(value, str):
                kind = key.removesuffix("_id")
                pairs.append((self._(f"{kind}_label"), self._name(kind, value)))
            elif key == "base_version":
                pairs.append((self._("based on version"), _short(value)))
            elif key in ("to_service", "to_counter") and isinstance(value, str):
                pairs.append((self._(key), self._name(key[3:], value)))
            elif key == "outcome" and isinstance(value, str):
                pairs.append((self._(key), outcome_name(self._, value)))
            elif key in ("status", "reason", "via") and isinstance(value, str):
                pairs.append((self._(key), self._(value)))
            elif key == "refusal" and isinstance(value, str):  # the engine's refusal code, as the floor words it
                pairs.append((self._label(key), f"{reason_text(value, self.lang)} ({value[:MAX_VALUE]})"))
            elif key in DETAIL_WORDS["en"]:
                pairs.append((self._label(key), _short(value)))
            else:
                pairs.append((key, _short(value)))
        return pairs

    def _label(self, key: str) -> str:
        return DETAIL_WORDS.get(self.lang, DETAIL_WORDS["id"])[key]

    def details_text(self, record: AuditRecord) -> str:
        """The details as one line (the CSV export)."""
        return "; ".join(f"{k}: {v}" for k, v in self.details(record))
