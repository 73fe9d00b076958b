"""Ticket numbering: prefix + daily sequence, the day being the branch's local business date."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sync.contract_config import WEEKDAYS, Service


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """The (cached) time zone of a branch."""
    return ZoneInfo(name)


def business_date(now: datetime, timezone: str) -> str:
    """The branch-local calendar date (YYYY-MM-DD) of a UTC instant; numbering resets at local midnight."""
    return now.astimezone(zone(timezone)).date().isoformat()


def format_number(service: Service, seq_no: int) -> str:
    """`A001`-style number: the service prefix and the zero-padded daily sequence (widens past the digits)."""
    return f"{service.prefix}{seq_no:0{service.digits}d}"


def within_hours(service: Service, now: datetime, timezone: str) -> bool:
    """Whether the service is open at this instant in the branch's local time."""
    if service.hours is None:
        return True
    local = now.astimezone(zone(timezone))
    day = WEEKDAYS[local.weekday()]
    clock = local.strftime("%H:%M")
    return any(start <= clock < end for start, end in service.hours.get(day) or [])
