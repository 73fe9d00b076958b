"""A week of branch history written through the real writer on a controlled clock (for report pages and screenshots).

Each day from 08:00 branch time: arrivals every 1-5 minutes in three services, four counters serving in turn with
varied service times, some no-shows and a cancellation, so waits build up and some pass their SLA.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.service import QueueService

JAKARTA = ZoneInfo("Asia/Jakarta")
COUNTERS = {"1": ("teller", "agent1"), "2": ("teller", "agent1"), "4": ("cs", "agent3"), "6": ("loan", "agent4")}


class SteppedClock:
    """The writer's clock, moved by the script."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def seed_history(data_dir: Path, days: int = 7, per_day: int = 40, seed: int = 7) -> int:
    """Write `days` days of tickets ending today (branch-local); returns how many tickets were taken."""
    rnd = random.Random(seed)
    today = datetime.now(JAKARTA).date()
    first = today - timedelta(days=days - 1)
    clock = SteppedClock(datetime(first.year, first.month, first.day, 8, 0, tzinfo=JAKARTA).astimezone(UTC))
    service = QueueService(data_dir, clock=clock)
    taken = 0
    try:
        for d in range(days):
            day = first + timedelta(days=d)
            clock.now = max(clock.now, datetime(day.year, day.month, day.day, 8, 0, tzinfo=JAKARTA).astimezone(UTC))
            for counter in COUNTERS:
                service.execute(c.SetPresence(actor="supervisor", counter_id=counter, status="available"))
            stop = datetime(day.year, day.month, day.day, 15, 0, tzinfo=JAKARTA).astimezone(UTC)
            if day == today:
                stop = min(stop, datetime.now(UTC))
            for step in range(per_day):
                if clock.now >= stop:
                    break
                svc = rnd.choices(["teller", "cs", "loan"], weights=[6, 3, 1])[0]
                channel = rnd.choice(["walk_in", "walk_in", "kiosk", "web"])
                created = service.execute(c.Enqueue(actor="kiosk-1", service_id=svc, channel=channel))
                taken += 1
                if step % 17 == 5:
                    service.execute(c.Cancel(actor="kiosk-1", ticket_id=created.response["ticket_id"]))
                if step % 4 != 3:  # the counters fall a little behind through the day: waits grow
                    _serve_one(service, clock, rnd, list(COUNTERS)[step % len(COUNTERS)])
                clock.advance(rnd.randint(60, 300))
            while True:  # the afternoon: the counters work the queue down (long waits, missed SLAs)
                before = clock.now
                for counter in COUNTERS:
                    _serve_one(service, clock, rnd, counter)
                if clock.now == before:
                    break
    finally:
        service.stop()
    return taken


def _serve_one(service: QueueService, clock: SteppedClock, rnd: random.Random, counter: str) -> None:
    """Call the next ticket at a counter and finish it (or mark it a no-show now and then)."""
    _, agent = COUNTERS[counter]
    outcome = service.execute(c.CallNext(actor=agent, counter_id=counter))
    ticket = outcome.response.get("ticket")
    if not ticket:
        return
    clock.advance(rnd.randint(10, 50))
    try:
        if rnd.random() < 0.08:
            service.execute(c.NoShow(actor=agent, ticket_id=ticket["ticket_id"], counter_id=counter))
            return
        service.execute(c.Start(actor=agent, ticket_id=ticket["ticket_id"], counter_id=counter))
        clock.advance(rnd.randint(90, 600))
        service.execute(c.Complete(actor=agent, ticket_id=ticket["ticket_id"], counter_id=counter))
    except DomainError:
        return  # an automatic no-show got there first
