"""MQTT payloads: retained counter and display states, announcements, events, and call-button commands (JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from edge.views import View
from sync.contract import Event

if TYPE_CHECKING:
    from edge.devices.audio.announcer import Announcement

RECENT_CALLS = 10
# Personal data and bulky fields never go on the LAN bus: devices get numbers, counters and statuses only.
_PRIVATE_FIELDS = frozenset({"phone", "email", "customer_ref", "contact_sealed", "config", "prev_hash", "hash"})
encoder = msgspec.json.Encoder()

ButtonAction = Literal["call_next", "recall", "start", "complete", "no_show"]
BUTTON_ACTIONS: tuple[ButtonAction, ...] = ("call_next", "recall", "start", "complete", "no_show")


class ButtonCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a call button publishes on `counter/<id>/cmd` (QoS 1; the request_id makes redeliveries harmless)."""

    action: ButtonAction
    request_id: str
    device_id: str
    ticket_id: str | None = None
    outcome: str | None = None


command_decoder = msgspec.json.Decoder(ButtonCommand)


def _ticket_brief(view: View, ticket_id: str | None) -> dict[str, Any] | None:
    ticket = view.state.tickets.get(ticket_id) if ticket_id else None
    if ticket is None:
        return None
    return {
        "ticket_id": ticket.ticket_id,
        "ticket_number": ticket.ticket_number,
        "status": ticket.status,
        "service_id": ticket.service_id,
    }


def counter_state(view: View, counter_id: str) -> dict[str, Any]:
    """A counter's retained state: presence and its current ticket (what LED displays and buttons show)."""
    counter = view.state.counters[counter_id]
    config = view.state.config.counter(counter_id) if view.state.config else None
    return {
        "counter_id": counter_id,
        "name": config.name if config else counter_id,
        "area_id": config.area_id if config else None,
        "presence": counter.presence,
        "ticket": _ticket_brief(view, counter.current_ticket),
    }


def area_ids(view: View) -> list[str]:
    """Every configured area (display and audio topics exist per area)."""
    config = view.state.config
    if config is None:
        return []
    ids = {a.id for a in config.areas} | {c.area_id for c in config.counters if c.area_id}
    return sorted(ids)


def display_states(view: View) -> dict[str, dict[str, Any]]:
    """Each area's retained display state: now calling, the last calls, and how many wait (one pass over tickets)."""
    config = view.state.config
    areas = area_ids(view)
    calls: dict[str, list[Any]] = {a: [] for a in areas}
    waiting = dict.fromkeys(areas, 0)
    for ticket in view.state.tickets.values():
        in_areas = view.area_of(ticket) if config else set()
        for area in in_areas & calls.keys():
            if ticket.status == "waiting":
                waiting[area] += 1
            elif ticket.called_at is not None:
                calls[area].append(ticket)
    states = {}
    for area in areas:
        recent = sorted(calls[area], key=lambda t: t.called_at, reverse=True)
        states[area] = {
            "area": area,
            "now_calling": [_call(view, t) for t in recent if t.status == "called"],
            "recent_calls": [_call(view, t) for t in recent[:RECENT_CALLS]],
            "waiting": waiting[area],
        }
    return states


def _call(view: View, ticket: Any) -> dict[str, Any]:
    config = view.state.config
    counter = config.counter(ticket.counter_id) if config and ticket.counter_id else None
    return {
        "ticket_number": ticket.ticket_number,
        "counter_id": ticket.counter_id,
        "counter_name": counter.name if counter else ticket.counter_id,
        "status": ticket.status,
        "called_at": ticket.called_at.isoformat().replace("+00:00", "Z") if ticket.called_at else None,
        "recall_count": ticket.recall_count,
    }


def event_payload(event: Event) -> dict[str, Any]:
    """A committed event for the bus, without personal data, hashes or config documents."""
    data = msgspec.to_builtins(event)
    return {k: v for k, v in data.items() if k not in _PRIVATE_FIELDS}


def announcement(spoken: Announcement) -> dict[str, Any]:
    """What an area's MQTT speakers get when the announcer plays a call or recall (its WAV is already fetchable).

    Fetching `audio_path` takes the area's board key (`?key=`). There is no `lang` (the ticket's language) any more:
    the clip is spoken in every one of `languages`, whatever the ticket's language, so a speaker has nothing to pick.
    """
    return {
        "seq": spoken.seq,
        "ticket_number": spoken.ticket_number,
        "counter_id": spoken.counter_id,
        "counter_name": spoken.counter_name,
        "recall": spoken.recall,
        "audio_path": spoken.url,
        "duration": round(spoken.duration, 3),
        "languages": list(spoken.languages),
    }
