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


def offline_start(service: Service) -> int:
    """The first number of the block kiosks lease for offline issuing: `A901` for 3 digits (`A91` for 2, `A9001` …).

    Ordinary numbering counts up from 1 and lease blocks from here, so a lease never takes the numbers the next
    walk-ins get; when a busy day's ordinary numbering reaches the block, it jumps over every leased range.
    """
    return 9 * 10 ** (service.digits - 1) + 1


def next_number(last: int, leased: list[tuple[int, int]]) -> int:
    """The next ordinary number after `last`, skipping every leased (first, last) range of the day."""
    number = last + 1
    moved = True
    while moved:
        moved = False
        for first, end in leased:
            if first <= number <= end:
                number, moved = end + 1, True
    return number


def next_lease_start(service: Service, last: int, leased: list[tuple[int, int]]) -> int:
    """Where the next lease block starts: after the offline start, the ordinary numbers and every earlier block."""
    return max(offline_start(service), last + 1, *(end + 1 for _, end in leased))


def issued_count(last: int, leased: list[tuple[int, int]]) -> int:
    """Numbers handed out today: the ordinary ones up to `last` (minus leased ones among them) plus every leased one.

    A leased number counts when it is leased (it is promised to a kiosk), so the daily capacity holds offline too.
    """
    below = sum(max(0, min(end, last) - first + 1) for first, end in leased)
    return last - below + sum(end - first + 1 for first, end in leased)
