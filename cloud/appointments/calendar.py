"""The appointment calendar (US-ADMIN-008), pure: which days a branch takes bookings and in which hours.

A day is closed when it is a national public holiday or a joint leave day (cuti bersama) from the `holidays` package,
or a tenant, regional or branch entry says so; an entry of kind `open` at a narrower scope reopens a day a wider one
closed (a branch that works on a cuti bersama day). Precedence, narrowest first: branch, region, tenant, national.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import icalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("holiday", "blackout", "open")
COUNTRY = "ID"


@dataclass(frozen=True)
class Entry:
    """A calendar entry: `scope` is `tenant`, `region:<code>` or `branch:<branch_id>`."""

    scope: str
    day: date
    kind: str
    name: str


@cache
def national(year: int, country: str = COUNTRY) -> Mapping[date, str]:
    """Public holidays plus joint leave days (`categories=("government",)`: Indonesia's cuti bersama) of one year."""
    public = holidays.country_holidays(country, years=year, language="id")
    joint = holidays.country_holidays(country, years=year, language="id", categories=("government",))
    days = {d: str(n) for d, n in public.items()}
    for d, n in joint.items():
        days.setdefault(d, str(n))
    return days


def closed_reason(day: date, entries: Iterable[Entry], *, branch_id: str, region: str | None) -> str | None:
    """Why `day` takes no bookings at the branch (the holiday's or blackout's name), or None when it is open."""
    rank = {f"branch:{branch_id}": 0, "tenant": 2}
    if region:
        rank[f"region:{region}"] = 1
    relevant = sorted((rank[e.scope], e) for e in entries if e.day == day and e.scope in rank)
    if relevant:
        entry = relevant[0][1]
        return None if entry.kind == "open" else (entry.name or entry.kind)
    return national(day.year).get(day)


def opening_hours(hours: Mapping[str, list[list[str]]], day: date) -> list[tuple[time, time]]:
    """The branch's opening intervals on `day`'s weekday (`{"mon": [["08:00", "15:00"]]}`; absent = closed)."""
    return [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in hours.get(WEEKDAYS[day.weekday()], [])]


def slot_starts(hours: Mapping[str, list[list[str]]], day: date, slot_minutes: int, zone: str) -> list[datetime]:
    """The slot start times (aware, in the branch's zone) of one open day: each slot ends by closing time."""
    tz = ZoneInfo(zone)
    starts: list[datetime] = []
    step = timedelta(minutes=slot_minutes)
    for opens, closes in opening_hours(hours, day):
        at, end = datetime.combine(day, opens, tz), datetime.combine(day, closes, tz)
        while at + step <= end:
            starts.append(at)
            at += step
    return starts


def derived_capacity(counters: int, slot_minutes: int, mean_service_minutes: float, quota_pct: int) -> int:
    """People one slot can take: counters x slot length / mean service time x the share kept for appointments."""
    if counters <= 0 or mean_service_minutes <= 0 or quota_pct <= 0:
        return 0
    return max(1, int(counters * slot_minutes / mean_service_minutes * quota_pct / 100))


def to_ical(entries: Iterable[Entry], prodid: str = "-//QMS//appointments//ID") -> bytes:
    """The closures as an iCalendar file (all-day VEVENTs; an `open` entry carries `X-QMS-KIND:open`)."""
    cal = icalendar.Calendar()
    cal.add("prodid", prodid)
    cal.add("version", "2.0")
    for e in entries:
        event = icalendar.Event()
        event.add("uid", f"{e.day.isoformat()}-{e.scope}@qms")
        if e.name:
            event.add("summary", e.name)
        event.add("dtstart", e.day)
        event.add("dtend", e.day + timedelta(days=1))
        event.add("x-qms-kind", e.kind)
        event.add("dtstamp", datetime(2020, 1, 1))
        cal.add_component(event)
    return cal.to_ical()


class IcalInvalid(ValueError):
    """The upload is not an iCalendar file we can take; `code` says why: `malformed` (not iCalendar, or a date it
    cannot read), `no_start` (an event without DTSTART), `range` (an event before 2000, after 2100 or longer than a
    year), `too_many` (more than MAX_IMPORT_DAYS days in one import)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


MAX_IMPORT_DAYS = 366
YEARS = (2000, 2100)  # the days an entry may name


def _event_days(event: icalendar.cal.Component) -> tuple[date, date]:
    """The first day an event closes and the day after its last one."""
    start = event.get("dtstart")
    if start is None:
        raise IcalInvalid("no_start", "an event has no DTSTART")
    end = event.get("dtend")
    try:
        first = start.dt.date() if isinstance(start.dt, datetime) else start.dt
        last = (end.dt.date() if isinstance(end.dt, datetime) else end.dt) if end is not None else first
    except AttributeError:
        raise IcalInvalid("malformed", "an event's date cannot be read") from None
    if not isinstance(first, date) or not isinstance(last, date):
        raise IcalInvalid("malformed", "an event's date is not a date")
    if last <= first:
        last = first + timedelta(days=1)
    if not YEARS[0] <= first.year <= YEARS[1] or not YEARS[0] <= last.year <= YEARS[1] + 1:
        raise IcalInvalid("range", f"an event on {first.isoformat()}: outside {YEARS[0]}-{YEARS[1]}")
    if (last - first).days > MAX_IMPORT_DAYS:
        raise IcalInvalid("range", f"an event from {first.isoformat()} spans more than a year")
    return first, last


def from_ical(data: bytes, scope: str, default_kind: str = "blackout") -> list[Entry]:
    """Entries from an iCalendar file: each all-day (or timed: its date) VEVENT closes each day it spans."""
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise IcalInvalid("malformed", f"not an iCalendar file: {exc}") from None
    entries: list[Entry] = []
    for event in cal.walk("VEVENT"):
        first, last = _event_days(event)
        kind = str(event.get("x-qms-kind", default_kind))
        if kind not in KINDS:
            kind = default_kind
        name = str(event.get("summary", ""))[:200]
        day = first
        while day < last:
            entries.append(Entry(scope, day, kind, name))
            day += timedelta(days=1)
            if len(entries) > MAX_IMPORT_DAYS:
                raise IcalInvalid("too_many", "more than a year of days in one import")
    return entries
