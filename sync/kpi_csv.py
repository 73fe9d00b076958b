"""The ticket export's CSV contract (header version 1): records and formula neutralisation (see `sync.kpi`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sync.kpi_facts import TicketFact, zone

CSV_VERSION: Final = 1
CSV_HEADER: Final[tuple[str, ...]] = (
    "ticket_id",
    "ticket_number",
    "branch_id",
    "service_id",
    "counter_id",
    "priority",
    "channel",
    "status",
    "created_at",
    "called_at",
    "served_at",
    "completed_at",
    "wait_seconds",
    "service_seconds",
    "outcome",
    "transferred",
    "returned",
    "timezone",
)
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """Defuse spreadsheet formula injection: a cell starting with = + - @ (or tab/CR) gets a leading apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def rfc3339_local(instant: datetime | None, tz: str | None) -> str:
    """An instant as RFC 3339 with the branch zone's offset (seconds precision), empty when missing."""
    if instant is None:
        return ""
    return instant.astimezone(zone(tz)).isoformat(timespec="seconds")


def _seconds_cell(value: float | None) -> str:
    """A duration cell: seconds with millisecond precision, empty when not measured."""
    return "" if value is None else f"{value:.3f}"


def csv_cells(fact: TicketFact) -> list[str]:
    """The cells of a fact's CSV row in `CSV_HEADER` order, neutralised (no contact data ever)."""
    tz = fact.timezone
    cells = [
        fact.ticket_id,
        fact.ticket_number,
        fact.branch_id,
        fact.service_id,
        fact.counter_id or "",
        str(fact.priority),
        fact.channel,
        fact.status,
        rfc3339_local(fact.created_at, tz),
        rfc3339_local(fact.called_at, tz),
        rfc3339_local(fact.served_at, tz),
        rfc3339_local(fact.completed_at, tz),
        _seconds_cell(fact.wait_seconds),
        _seconds_cell(fact.service_seconds),
        fact.outcome,
        "true" if fact.transferred else "false",
        "true" if fact.returned else "false",
        tz,
    ]
    return [neutralise(c) for c in cells]


def csv_line(cells: Sequence[str], sep: str = ",") -> str:
    """One RFC 4180 record (CRLF-terminated); cells holding the separator, a quote or a line break are quoted."""
    line = sep.join(cells)
    if line.count(sep) == len(cells) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line + "\r\n"  # the usual record: nothing to quote (checked on the joined line, at C speed)
    out = []
    for cell in cells:
        if sep in cell or '"' in cell or "\n" in cell or "\r" in cell:
            out.append('"' + cell.replace('"', '""') + '"')
        else:
            out.append(cell)
    return sep.join(out) + "\r\n"


def csv_header_line(sep: str = ",") -> str:
    """The version-1 header record."""
    return csv_line(CSV_HEADER, sep)


def csv_row(fact: TicketFact, sep: str = ",") -> str:
    """A fact as one CSV record."""
    return csv_line(csv_cells(fact), sep)
