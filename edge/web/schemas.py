"""Request bodies of the API as msgspec Structs: validated at the boundary, unknown fields refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

RequestId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Id = Annotated[str, Meta(min_length=1, max_length=64)]
Reason = Annotated[str, Meta(max_length=500)]
Phone = Annotated[str, Meta(pattern=r"^\+?[0-9]{8,15}$", description="digits, optionally with a leading +")]
Email = Annotated[str, Meta(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$", max_length=254)]


class TokenRequest(Struct, forbid_unknown_fields=True):
    """`POST /auth/token`."""

    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class CreateTicket(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets`."""

    service_id: Id
    priority: Annotated[int, Meta(ge=0, le=9)] | None = None
    channel: Literal["walk_in", "kiosk", "web", "mobile", "appointment", "front_desk"] = "walk_in"
    phone: Phone | None = None
    email: Email | None = None
    customer_ref: Annotated[str, Meta(max_length=64)] | None = None
    lang: Annotated[str, Meta(pattern=r"^[a-z]{2}$")] | None = None
    appointment_at: Annotated[datetime, Meta(tz=True)] | None = None
    request_id: RequestId | None = None


class CounterCommand(Struct, forbid_unknown_fields=True, kw_only=True):
    """Bodies of call-next and of ticket actions that need nothing more."""

    counter_id: Id | None = None
    request_id: RequestId | None = None


class CallTicketBody(CounterCommand, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets/{id}/call` (the counter is required)."""


class CompleteBody(CounterCommand, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets/{id}/complete`."""

    outcome: Id | None = None


class CancelBody(CounterCommand, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets/{id}/cancel`."""

    reason: Reason | None = None


class TransferBody(CounterCommand, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets/{id}/transfer`."""

    to_service_id: Id | None = None
    to_counter_id: Id | None = None
    reason: Reason | None = None


class PresenceBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """`PUT /counters/{id}/presence`."""

    status: Literal["available", "busy", "break", "closed"]
    request_id: RequestId | None = None
