"""Blending with real bookings (US-QUEUE-014), as properties over the pure engine: checked-in appointments (channel
`appointment`, their booked time) and walk-ins share one counter.

* Ratio: while both lanes have someone waiting, the number of appointment calls among the calls of the last window
  stays within ±1 of quota x calls in that window.
* No starvation: with quota strictly between 0 and 100, neither lane waits more than ceil(100 / share) calls while
  the other lane keeps being served, and everyone is called (nobody is left behind).
* Replay: the same events rebuild the same state (the hub and the branch agree)."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.edge.engine.conftest import Engine, ctr, small_config, svc


def _engine(quota: int, window: int) -> Engine:
    cfg = small_config(
        [svc("s", "A", appointment_quota_pct=quota, appointment_window_minutes=window, appointment_boost_minutes=0,
             grace_seconds=None)],
        [ctr("c1", ["s"])],
    )  # fmt: skip
    return Engine(cfg)


@settings(max_examples=60, deadline=None)
@given(
    quota=st.integers(1, 99),
    window=st.integers(5, 120),
    lanes=st.lists(st.booleans(), min_size=2, max_size=40),
)
def test_ratio_stays_within_one_per_window_and_nobody_starves(quota: int, window: int, lanes: list[bool]) -> None:
    engine = _engine(quota, window)
    booked = engine.now + timedelta(days=1)  # not yet due: the quota decides, not the boost
    for appointment in lanes:
        if appointment:
            engine.enqueue("s", channel="appointment", appointment_at=booked)
        else:
            engine.enqueue("s", channel="walk_in")
    calls: list[tuple[int, bool]] = []  # (minute, was an appointment)
    waiting = {True: lanes.count(True), False: lanes.count(False)}
    since = {True: 0, False: 0}  # calls since each lane was last served
    bound = {True: math.ceil(100 / quota), False: math.ceil(100 / (100 - quota))}
    for minute in range(1, len(lanes) + 1):
        engine.advance(minutes=1)
        both = waiting[True] > 0 and waiting[False] > 0
        ticket = engine.serve("c1")
        appointment = ticket.channel == "appointment"
        waiting[appointment] -= 1
        calls.append((minute, appointment))
        since[appointment], since[not appointment] = 0, since[not appointment] + 1
        if both:
            recent = [a for m, a in calls if m > minute - window]
            assert abs(sum(recent) - quota * len(recent) / 100) <= 1 + 1e-9, (quota, window, calls)
            for lane in (True, False):
                assert since[lane] <= bound[lane], (lane, quota, calls)
    assert waiting == {True: 0, False: 0}
    engine.assert_replays()
