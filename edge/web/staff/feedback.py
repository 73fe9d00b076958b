"""What a staff action confirms: the ticket number and the names it touched ("A012 transferred to Teller")."""

from __future__ import annotations

from typing import Any

from edge.engine.model import State
from edge.web.staff.boards import service_name
from edge.web.staff.i18n import Translator

# msgids (English) of the confirmations; the catalogs translate them.
DONE = {
    "call_next": "%(n)s called to %(counter)s",
    "call": "%(n)s called to %(counter)s",
    "recall": "%(n)s recalled",
    "start": "%(n)s: serving started",
    "complete": "%(n)s completed",
    "no_show": "%(n)s marked no-show",
    "hold": "%(n)s on hold",
    "unhold": "%(n)s back in the queue",
    "transfer": "%(n)s transferred to %(target)s",
    "force_transfer": "%(n)s transferred to %(target)s",
    "reassign": "%(n)s reassigned to %(target)s",
    "cancel": "%(n)s cancelled",
    "presence": "%(counter)s is now %(status)s",
    "set_presence": "%(counter)s set to %(status)s by supervisor",
    "close_counter": "%(counter)s closed by supervisor",
}
TRANSFER_TARGET = "%(service)s at %(counter)s"


def counter_name(state: State, counter_id: str | None) -> str:
    """A counter's configured name (its id when unknown)."""
    counter = state.config.counter(counter_id) if state.config and counter_id else None
    return counter.name if counter else str(counter_id or "")


def ticket_number(state: State, ticket_id: str | None) -> str:
    """A ticket's number (its id when unknown)."""
    ticket = state.tickets.get(ticket_id) if ticket_id else None
    return ticket.ticket_number if ticket else str(ticket_id or "")


def transfer_target(state: State, lang: str, _: Translator, to_service: str | None, to_counter: str | None) -> str:
    """ "Teller", "Counter 3" or "Teller at Counter 3"."""
    config = state.config
    service = service_name(config.service(to_service) if config and to_service else None, lang, to_service or "")
    counter = counter_name(state, to_counter) if to_counter else ""
    if service and counter:
        return _(TRANSFER_TARGET, service=service, counter=counter)
    return service or counter


def confirmation(
    state: State, lang: str, action: str, form: dict[str, Any], response: dict[str, Any] | None = None
) -> str:
    """The confirmation of a done action in the page language ("" when there is nothing to say)."""
    _ = Translator(lang)
    msgid = DONE.get(action)
    if msgid is None:
        return ""
    ticket_id = str(form.get("ticket_id") or "") or None
    if action == "call_next" and response and isinstance(response.get("ticket"), dict):
        ticket_id = str(response["ticket"].get("ticket_id") or "") or None
    ticket = state.tickets.get(ticket_id) if ticket_id else None
    counter_id = str(form.get("counter_id") or "") or (ticket.counter_id if ticket else None)
    values = {
        "n": ticket_number(state, ticket_id),
        "counter": counter_name(state, counter_id),
        "status": _(str(form.get("status") or "")),
        "target": transfer_target(
            state, lang, _, str(form.get("to_service_id") or "") or None, str(form.get("to_counter_id") or "") or None
        ),
    }
    return _(msgid, **values)
