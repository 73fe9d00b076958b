"""The appointment calendar (US-ADMIN-008): national holidays and cuti bersama from `holidays`, tenant/regional/branch
overrides and blackouts, opening hours per weekday, derived capacity, iCal round trip."""

from __future__ import annotations

import contextlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.appointments.calendar import (
    Entry,
    IcalInvalid,
    closed_reason,
    derived_capacity,
    from_ical,
    slot_starts,
    to_ical,
)

IDUL_FITRI_2027 = date(2027, 3, 10)
HOURS = {"mon": [["08:00", "12:00"]], "wed": [["08:00", "09:00"], ["13:00", "14:00"]]}


def test_idul_fitri_and_its_joint_leave_days_are_closed() -> None:
    assert closed_reason(IDUL_FITRI_2027, [], branch_id="b", region=None) == "Hari Raya Idul Fitri (perkiraan)"
    assert "Cuti Bersama" in (closed_reason(date(2027, 3, 9), [], branch_id="b", region=None) or "")
    assert closed_reason(date(2027, 3, 17), [], branch_id="b", region=None) is None


def test_overrides_narrowest_scope_wins() -> None:
    blackout = date(2027, 4, 7)
    entries = [
        Entry("tenant", blackout, "blackout", "Stock take"),
        Entry("region:bali", date(2027, 3, 8), "open", ""),  # Nyepi: a region may open (made-up policy)
        Entry("branch:b", date(2027, 3, 9), "open", "We work on this cuti bersama"),
        Entry("branch:other", date(2027, 4, 8), "blackout", "not ours"),
    ]
    assert closed_reason(blackout, entries, branch_id="b", region=None) == "Stock take"
    assert closed_reason(date(2027, 3, 9), entries, branch_id="b", region=None) is None
    assert closed_reason(date(2027, 3, 8), entries, branch_id="b", region="bali") is None
    assert closed_reason(date(2027, 3, 8), entries, branch_id="b", region="jawa") == "Hari Suci Nyepi"
    assert closed_reason(date(2027, 4, 8), entries, branch_id="b", region=None) is None
    reopened = [*entries, Entry("branch:b", blackout, "open", "")]
    assert closed_reason(blackout, reopened, branch_id="b", region=None) is None


def test_slots_fill_each_opening_interval_and_end_by_closing() -> None:
    monday, wednesday, tuesday = date(2027, 4, 5), date(2027, 4, 7), date(2027, 4, 6)
    assert [s.strftime("%H:%M") for s in slot_starts(HOURS, monday, 45, "Asia/Jakarta")] == [
        "08:00", "08:45", "09:30", "10:15", "11:00",
    ]  # fmt: skip
    assert [s.strftime("%H:%M") for s in slot_starts(HOURS, wednesday, 30, "Asia/Jakarta")] == [
        "08:00", "08:30", "13:00", "13:30",
    ]  # fmt: skip
    assert slot_starts(HOURS, tuesday, 30, "Asia/Jakarta") == []
    assert str(slot_starts(HOURS, monday, 30, "Asia/Makassar")[0].utcoffset()) == "8:00:00"


def test_derived_capacity() -> None:
    assert derived_capacity(counters=3, slot_minutes=30, mean_service_minutes=10, quota_pct=50) == 4
    assert derived_capacity(counters=1, slot_minutes=15, mean_service_minutes=20, quota_pct=10) == 1
    assert derived_capacity(counters=0, slot_minutes=15, mean_service_minutes=20, quota_pct=10) == 0


def test_ical_round_trip_and_a_multi_day_import() -> None:
    entries = [
        Entry("tenant", date(2027, 4, 7), "blackout", "Stock take"),
        Entry("tenant", date(2027, 3, 9), "open", ""),
    ]
    assert sorted(from_ical(to_ical(entries), "tenant"), key=lambda e: e.day) == sorted(entries, key=lambda e: e.day)
    foreign = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20270101T000000Z\r\n"
        b"DTSTART;VALUE=DATE:20270601\r\nDTEND;VALUE=DATE:20270604\r\nSUMMARY:Renovasi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    got = from_ical(foreign, "branch:b")
    assert [(e.day.isoformat(), e.kind, e.name) for e in got] == [
        ("2027-06-01", "blackout", "Renovasi"), ("2027-06-02", "blackout", "Renovasi"),
        ("2027-06-03", "blackout", "Renovasi"),
    ]  # fmt: skip


@given(st.binary(max_size=300))
def test_ical_import_never_crashes(data: bytes) -> None:
    with contextlib.suppress(IcalInvalid):
        from_ical(data, "tenant")


def test_ical_garbage_is_refused() -> None:
    with pytest.raises(IcalInvalid):
        from_ical(b"hello", "tenant")
