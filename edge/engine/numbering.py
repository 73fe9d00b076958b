"""Ticket numbering: prefix + daily sequence, the day being the branch's local business date.

The rule (issue 11; docs/branch-admin-guide.md "Ticket numbers"): a number always has exactly `digits` digits, as
the display boards and printed tickets are laid out for. For 3 digits, walk-in numbers run A001…A900 and the
offline lease block is A901…A999. After A900 numbering wraps to A001, skipping every number an active ticket
(waiting, called, serving or held — from any day) still holds, so no two active tickets ever share a number. A new
business day starts again at A001 (still skipping numbers that carried-over tickets hold).

The engine keeps a per-service *position* in `State.sequences`: the count of ordinary numbers stepped through today
(1, 2, … 900, 901, …). The number shown is the position wrapped into 1…`ordinary_limit`; positions skipped because
their number was in use count too, so the daily capacity check (`issued_count`) is conservative after a wrap.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """`A001`-style number: the service prefix and the zero-padded daily sequence.

    Ordinary numbering never goes past `digits` (it wraps, see `next_number`); only a 1-digit service's offline
    block (A10…) is wider.
    """
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

    Ordinary numbers run from 1 to just below it (`ordinary_limit`) and wrap there, so they never reach the block.
    """
    return 9 * 10 ** (service.digits - 1) + 1


def ordinary_limit(service: Service) -> int:
    """The last walk-in number before numbering wraps: 900 for 3 digits (90 for 2, 9 for 1)."""
    return offline_start(service) - 1


def offline_end(service: Service) -> int | None:
    """The last number of the offline block (999 for 3 digits); None for 1 digit, whose block is A10 upwards."""
    top = 10**service.digits - 1
    return top if top >= offline_start(service) else None


def wrapped(service: Service, position: int) -> int:
    """The number shown at an ordinary numbering position: 1…`ordinary_limit`, then 1 again."""
    return (position - 1) % ordinary_limit(service) + 1


def next_number(
    service: Service, last: int, leased: list[tuple[int, int]], in_use: Callable[[str], bool] = lambda _n: False
) -> int | None:
    """The next walk-in number after position `last`: the first following number (wrapping after the limit) that
    no active ticket holds (`in_use(ticket_number)`) and no lease covers; None when every number is held."""
    for position in range(last + 1, last + ordinary_limit(service) + 1):
        number = wrapped(service, position)
        if any(first <= number <= end for first, end in leased) or in_use(format_number(service, number)):
            continue
        return number
    return None


def advance(service: Service | None, last: int, number: int) -> int:
    """The position after issuing walk-in `number` from position `last` (the inverse of `next_number`).

    A number past the ordinary range (from before numbering wrapped, or an unknown service) sets the position to
    it, as numbering did then; logs written before the wrap rule therefore replay to the same positions.
    """
    if service is None or number > ordinary_limit(service):
        return max(last, number)
    return last + (number - wrapped(service, last + 1)) % ordinary_limit(service) + 1


def next_lease_block(
    service: Service, leased: list[tuple[int, int]], count: int, in_use: Callable[[str], bool] = lambda _n: False
) -> tuple[int, int] | None:
    """The (first, last) numbers of the next lease block of at most `count` numbers, or None when the block is used up.

    It starts after every earlier block of the day (at the offline start for the first), steps over numbers an
    active ticket still holds (an offline ticket carried over from yesterday) and ends before the next such number
    or at the end of the offline block (A999 for 3 digits: numbers never widen).
    """
    end = offline_end(service)
    first = max([offline_start(service), *(e + 1 for _, e in leased)])
    while (end is None or first <= end) and in_use(format_number(service, first)):
        first += 1
    if end is not None and first > end:
        return None
    last = first
    while last - first + 1 < count and (end is None or last < end) and not in_use(format_number(service, last + 1)):
        last += 1
    return first, last


def issued_count(last: int, leased: list[tuple[int, int]]) -> int:
    """Numbers handed out today: every ordinary position stepped through (`last`) plus every leased number.

    A leased number counts when it is leased (it is promised to a kiosk), so the daily capacity holds offline too.
    """
    return last + sum(end - first + 1 for first, end in leased)
