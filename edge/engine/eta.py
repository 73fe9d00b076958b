"""Queue position and ETA of waiting tickets, from the call order, open counters and recent service times.

Order: the order call-next will take the service's tickets (`edge.engine.routing`). Priority classes with
anti-starvation are arithmetic on the ordered queues. Appointment blending (US-QUEUE-014) depends on the clock
(an appointment becomes due `appointment_boost_minutes` before its time) and on the calls of the last window, so it
is played forward: the k-th call from now (0-based) is assumed at `now + k * mean / open` (one counter when none
is open), each simulated call joins the window, and every choice is the one `pick_next` makes at that moment. Call
0 is `pick_next` itself, so position 1 is the ticket the next call-next at a counter of the service takes (counter
targeting aside). Once one lane (appointments or walk-ins) is empty the rest is the plain priority order again.

ETA heuristic: tickets ahead are shared among the service's open counters, each taking the mean of the last
20 service times (or the service's configured `avg_service_seconds` until `MIN_SAMPLES` exist): eta =
(position - 1) / open * mean + mean / 2 — the half accounts for the ticket in progress. No open counter: ETA
unknown (None). Each sample counts as at least `sample_floor` (an accidental start→complete of a second would
otherwise promise "< 1 min" to a long queue).

Cost: `position_of` reads no ticket it does not need — walk-ins are counted, not visited — so it costs O(calls until
the appointments are placed x appointments waiting), whatever the number of walk-ins.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from edge.engine.model import (
    PriorityEntry,
    QueueEntry,
    RecentCall,
    State,
    Ticket,
    is_open_counter,
    priority_entry,
    queue_entry,
    queue_key,
)
from edge.engine.routing import FULL_QUOTA_PCT, merge_lanes, queue_order
from sync.contract_config import Service

DEFAULT_SERVICE_SECONDS = 300  # a service missing from the configuration
MIN_SAMPLES = 3  # fewer real service times than this: the configured average is the better guess
FLOOR_SECONDS = 30.0  # no service is shorter than this, nor than FLOOR_FRACTION of the configured average ...
FLOOR_FRACTION = 0.2
# ... unless the configured average itself is shorter (then the floor is that average).

Lane = Literal["regular", "priority"]  # a walk-in call: the head of the regular or of the priority walk-ins


def sample_floor(configured: float) -> float:
    """The least a recorded service time counts as, for a service configured to average `configured` seconds."""
    return max(min(FLOOR_SECONDS, configured), configured * FLOOR_FRACTION)


def mean_service_seconds(state: State, service_id: str) -> float:
    """Mean of recent service times (each at least the floor), or the configured average before `MIN_SAMPLES`."""
    service = state.config.service(service_id) if state.config else None
    configured = float(service.avg_service_seconds if service else DEFAULT_SERVICE_SECONDS)
    recent = state.service_times.get(service_id) or []
    if len(recent) < MIN_SAMPLES:
        return configured
    floor = sample_floor(configured)
    return sum(max(floor, t) for t in recent) / len(recent)


def open_counters(state: State, service_id: str) -> int:
    """Counters that serve the service and are available or busy."""
    if state.config is None:
        return 0
    return sum(
        1
        for c in state.config.counters
        if c.active and service_id in c.services and is_open_counter(state.counters.get(c.id))
    )


def _eta(index: int, n_open: int, mean: float) -> int | None:
    return None if n_open == 0 else round(index / n_open * mean + mean / 2)


def _spacing(state: State, service_id: str) -> timedelta:
    """Time between two simulated calls of a service: the mean service time shared by its open counters."""
    return timedelta(seconds=mean_service_seconds(state, service_id) / max(1, open_counters(state, service_id)))


def positions(state: State, now: datetime, service_id: str | None = None) -> dict[str, tuple[int, int | None]]:
    """For every waiting ticket (of one service, or all): (1-based position in call order at `now`, ETA seconds or
    None)."""
    result: dict[str, tuple[int, int | None]] = {}
    if state.config is None:
        return result
    by_service: dict[str, list[Ticket]] = {}
    for t in state.active("waiting"):
        if service_id is None or t.service_id == service_id:
            by_service.setdefault(t.service_id, []).append(t)
    for sid, tickets in by_service.items():
        service = state.config.service(sid)
        if service is None:
            continue
        mean = mean_service_seconds(state, sid)
        n_open = open_counters(state, sid)
        for index, t in enumerate(call_order(state, service, tickets, now)):
            result[t.ticket_id] = (index + 1, _eta(index, n_open, mean))
    return result


def call_order(state: State, service: Service, tickets: list[Ticket], now: datetime) -> list[Ticket]:
    """The waiting tickets of one service in the order call-next will take them from `now` on."""
    streak = state.priority_streak.get(service.id, 0)
    appointments = [t for t in tickets if t.channel == "appointment"]
    walk_ins = [t for t in tickets if t.channel != "appointment"]
    if service.appointment_quota_pct is None or not appointments or not walk_ins:
        return queue_order(service, tickets, streak)
    if service.priority_enabled:
        regular = sorted((t for t in walk_ins if t.priority == 0), key=queue_key)
        priority = sorted((t for t in walk_ins if t.priority > 0), key=lambda t: (-t.priority, queue_key(t)))
    else:
        regular, priority = sorted(walk_ins, key=queue_key), []
    plan = _play(state, service, appointments, len(regular), len(priority), now)
    lanes = {"regular": iter(regular), "priority": iter(priority)}
    order = [next(lanes[step]) if isinstance(step, str) else step for step in plan.steps]
    if plan.appointments:  # the walk-ins ran out: the appointments left, in the plain order
        return order + queue_order(service, plan.appointments, plan.streak)
    return order + _merged(service, list(lanes["regular"]), list(lanes["priority"]), plan.streak)


def _merged(service: Service, regular: list[Ticket], priority: list[Ticket], streak: int) -> list[Ticket]:
    """`queue_order` of lanes already sorted (regular by queue order, priority by class then queue order)."""
    if not service.priority_enabled:
        return regular
    return merge_lanes(service, regular, priority, streak)


def position_of(state: State, ticket: Ticket, now: datetime) -> tuple[int, int | None] | None:
    """Position and ETA of one waiting ticket at `now`, from its rank in the service's ordered queue (no scan of
    the walk-ins). Equal to `positions(state, now)[ticket_id]`."""
    if ticket.status != "waiting" or state.config is None:
        return None
    service = state.config.service(ticket.service_id)
    queue = state.queue(ticket.service_id)
    if service is None or queue is None:
        return None
    if service.appointment_quota_pct is not None and queue.appointments and len(queue.fifo) > len(queue.appointments):
        index = _blended_index(state, service, ticket, now)
    elif not service.priority_enabled:
        index = _rank(queue.fifo, queue_entry(ticket))
    else:
        streak = state.priority_streak.get(service.id, 0)
        index = _interleaved(ticket, queue.regular, queue.priority, streak, service.anti_starvation_n)
    if index is None:
        return None
    return index + 1, _eta(index, open_counters(state, ticket.service_id), mean_service_seconds(state, service.id))


@dataclass
class _Plan:
    """Blending played forward while both lanes wait: each step an appointment, or a walk-in lane's head."""

    steps: list[Ticket | Lane]
    appointments: list[Ticket]  # appointments left when the walk-ins ran out
    streak: int  # the priority streak after the steps


def _play(state: State, service: Service, appointments: list[Ticket], regular: int, priority: int,
          now: datetime) -> _Plan:  # fmt: skip
    """Call after call, the choice `routing._indexed_head` makes, with `regular`/`priority` walk-ins waiting."""
    quota = service.appointment_quota_pct
    assert quota is not None
    window = timedelta(minutes=service.appointment_window_minutes)
    boost = timedelta(minutes=service.appointment_boost_minutes)
    spacing = _spacing(state, service.id)
    n = service.anti_starvation_n
    streak = state.priority_streak.get(service.id, 0)
    recent = sorted(state.recent_calls.get(service.id, []), key=lambda c: c.at)
    calls: deque[RecentCall] = deque(c for c in recent if c.at >= now - window)
    booked = sum(c.appointment for c in calls)
    left = sorted(appointments, key=queue_key)
    steps: list[Ticket | Lane] = []
    at = now
    while left and (regular or priority):
        while calls and calls[0].at < at - window:
            booked -= calls.popleft().appointment
        due = [t for t in left if t.appointment_at is not None and t.appointment_at <= at + boost]
        share = booked / len(calls) if calls else 0.0
        step: Ticket | Lane
        if due:
            step = _earliest(due)
        elif quota >= FULL_QUOTA_PCT or share * 100 < quota:
            step = _head(service, left, streak)
        elif regular and (not priority or not service.priority_enabled or streak >= n):
            step = "regular"
        else:
            step = "priority"
        if isinstance(step, str):
            regular, priority = (regular - 1, priority) if step == "regular" else (regular, priority - 1)
            streak = streak + 1 if step == "priority" else 0
        else:
            left.remove(step)
            streak = streak + 1 if step.priority > 0 else 0
        calls.append(RecentCall(at, not isinstance(step, str)))
        booked += not isinstance(step, str)
        steps.append(step)
        at += spacing
    return _Plan(steps, left, streak)


def _earliest(due: list[Ticket]) -> Ticket:
    """The due appointment called first: the earliest booked time, then queue order (`routing._blend`)."""
    return min(due, key=lambda t: (t.appointment_at, queue_key(t)))


def _head(service: Service, tickets: list[Ticket], streak: int) -> Ticket:
    """`routing.service_head` among appointments: FIFO, or priority classes with anti-starvation."""
    if not service.priority_enabled:
        return min(tickets, key=queue_key)
    regular = [t for t in tickets if t.priority == 0]
    priority = [t for t in tickets if t.priority > 0]
    if regular and (not priority or streak >= service.anti_starvation_n):
        return min(regular, key=queue_key)
    return min(priority, key=lambda t: (-t.priority, queue_key(t)))


def _blended_index(state: State, service: Service, ticket: Ticket, now: datetime) -> int | None:
    """0-based place of a ticket in `call_order` of a blending service, counting walk-ins instead of reading them."""
    queue = state.queue(service.id)
    assert queue is not None
    appointments = list(queue.appointments.values())
    if service.priority_enabled:
        lists: dict[Lane, list[Any]] = {"regular": queue.regular, "priority": queue.priority}
        kinds: dict[Lane, list[Any]] = {
            "regular": sorted(queue_entry(a) for a in appointments if a.priority == 0),
            "priority": sorted(priority_entry(a) for a in appointments if a.priority > 0),
        }
    else:
        lists = {"regular": queue.fifo, "priority": []}
        kinds = {"regular": sorted(queue_entry(a) for a in appointments), "priority": []}
    walk_ins = {lane: len(lists[lane]) - len(kinds[lane]) for lane in lists}
    plan = _play(state, service, appointments, walk_ins["regular"], walk_ins["priority"], now)
    if ticket.channel == "appointment":
        if ticket.ticket_id not in queue.appointments:
            return None
        for index, step in enumerate(plan.steps):
            if step is ticket or (not isinstance(step, str) and step.ticket_id == ticket.ticket_id):
                return index
        rest = queue_order(service, plan.appointments, plan.streak)
        return len(plan.steps) + next(i for i, t in enumerate(rest) if t.ticket_id == ticket.ticket_id)
    lane: Lane = "priority" if service.priority_enabled and ticket.priority > 0 else "regular"
    entry = priority_entry(ticket) if lane == "priority" else queue_entry(ticket)
    found = _rank(lists[lane], entry)
    if found is None:
        return None
    rank = found - bisect_left(kinds[lane], entry)  # among the walk-ins of its lane
    taken = {"regular": 0, "priority": 0}
    for index, step in enumerate(plan.steps):
        if isinstance(step, str):
            if step == lane and taken[lane] == rank:
                return index
            taken[step] += 1
    rank -= taken[lane]
    left = {key: walk_ins[key] - taken[key] for key in walk_ins}
    if not service.priority_enabled:
        return len(plan.steps) + rank
    return len(plan.steps) + _interleave(lane == "priority", rank, left["regular"], left["priority"], plan.streak,
                                         service.anti_starvation_n)  # fmt: skip


def _rank(entries: list[Any], entry: Any) -> int | None:
    index = bisect_left(entries, entry)
    return index if index < len(entries) and entries[index] == entry else None


def _interleaved(
    ticket: Ticket, regular: list[QueueEntry], priority: list[PriorityEntry], streak: int, n: int
) -> int | None:
    """0-based place of a ticket in `queue_order`: priority tickets are taken until the streak reaches `n`, then one
    regular ticket (the streak restarts at 0), and so on; whichever list runs out, the other continues."""
    if ticket.priority > 0:
        q = _rank(priority, priority_entry(ticket))
        return None if q is None else _interleave(True, q, len(regular), len(priority), streak, n)
    r = _rank(regular, queue_entry(ticket))
    return None if r is None else _interleave(False, r, len(regular), len(priority), streak, n)


def _interleave(is_priority: bool, rank: int, regular: int, priority: int, streak: int, n: int) -> int:
    """`_interleaved` on counts: the place of the `rank`-th priority (or regular) ticket among `regular` regular and
    `priority` priority tickets."""
    first_run = max(0, n - streak)  # priority tickets before the first regular one
    if is_priority:
        regular_before = regular if n == 0 else 0 if rank < first_run else 1 + (rank - first_run) // n
        return rank + min(regular, regular_before)
    return rank + min(priority, first_run + rank * n)
