"""The report filters shared by `/kpis` and the CSV export: parsing with errors that name the parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Final

import msgspec

from sync.kpi_facts import TicketFact
from sync.kpi_stats import GROUP_BY, GroupBy

CHANNELS: Final = frozenset({"walk_in", "kiosk", "web", "mobile", "appointment", "front_desk"})
MAX_RANGE_DAYS: Final = 366
MAX_ID_LENGTH: Final = 64


class KpiQueryError(ValueError):
    """A query parameter that cannot be used; `field` names it so the API can say which (problem+json 400)."""

    code = "invalid_query"

    def __init__(self, field: str, message: str) -> None:
        """Keep the parameter name beside the message."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class KpiQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Validated filters shared by `/kpis` and the CSV export: local dates inclusive, optional dimensions."""

    date_from: date
    date_to: date
    service_id: str | None = None
    priority: int | None = None
    channel: str | None = None
    counter_id: str | None = None
    group_by: tuple[GroupBy, ...] = ()
    sep: str = ","

    def days(self) -> list[str]:
        """The local dates covered, ISO, in order."""
        n = (self.date_to - self.date_from).days
        return [(self.date_from + timedelta(days=i)).isoformat() for i in range(n + 1)]

    def matches(self, fact: TicketFact) -> bool:
        """Whether a fact passes the filters (its creation's local date in range and every given dimension)."""
        day = fact.business_date
        if day is None or not (self.date_from.isoformat() <= day <= self.date_to.isoformat()):
            return False
        if self.service_id is not None and fact.service_id != self.service_id:
            return False
        if self.priority is not None and fact.priority != self.priority:
            return False
        if self.channel is not None and fact.channel != self.channel:
            return False
        return self.counter_id is None or fact.counter_id == self.counter_id


def _date_param(params: Mapping[str, str], name: str, default: date) -> date:
    """A YYYY-MM-DD parameter or its default."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise KpiQueryError(name, f"expected a date YYYY-MM-DD, got {raw[:40]!r}") from None


def _id_param(params: Mapping[str, str], name: str) -> str | None:
    """An identifier parameter: short, printable, no separators; empty means absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_ID_LENGTH or not raw.isprintable() or any(c in raw for c in ",;\"'<>"):
        raise KpiQueryError(name, "not a valid identifier")
    return raw


def parse_query(params: Mapping[str, str], today: date, extra: Iterable[str] = ()) -> KpiQuery:
    """Validate the query parameters of the KPI API and the CSV export; raise `KpiQueryError` naming the bad one.

    `today` is the branch-local date (the default range); `extra` names parameters the caller reads itself (the hub's
    `tenant`, `branch_id`), so any other unknown parameter is refused rather than silently ignored.
    """
    known = {"from", "to", "service_id", "priority", "channel", "counter_id", "group_by", "sep", *extra}
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise KpiQueryError(unknown[0], f"unknown parameter (known: {', '.join(sorted(known))})")
    date_to = _date_param(params, "to", today)
    date_from = _date_param(params, "from", date_to if "to" in params else today)
    if date_from > date_to:
        raise KpiQueryError("from", "must not be after 'to'")
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise KpiQueryError("to", f"range longer than {MAX_RANGE_DAYS} days")
    priority: int | None = None
    raw_priority = params.get("priority")
    if raw_priority not in (None, ""):
        if not (raw_priority.isdigit() and len(raw_priority) == 1):
            raise KpiQueryError("priority", "expected an integer 0..9")
        priority = int(raw_priority)
    channel = params.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise KpiQueryError("channel", f"expected one of {', '.join(sorted(CHANNELS))}")
    groups: list[GroupBy] = []
    for piece in (params.get("group_by") or "").split(","):
        part = piece.strip()
        if not part:
            continue
        if part not in GROUP_BY:
            raise KpiQueryError("group_by", f"expected one or more of {'|'.join(GROUP_BY)}, comma-separated")
        if part in groups:
            raise KpiQueryError("group_by", f"{part!r} given twice")
        groups.append(part)
    sep = params.get("sep") or ","
    if sep not in (",", ";"):
        raise KpiQueryError("sep", "expected ',' or ';'")
    return KpiQuery(
        date_from=date_from,
        date_to=date_to,
        service_id=_id_param(params, "service_id"),
        priority=priority,
        channel=channel,
        counter_id=_id_param(params, "counter_id"),
        group_by=tuple(groups),
        sep=sep,
    )
