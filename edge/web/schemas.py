"""Request bodies of the API as msgspec Structs: validated at the boundary, unknown fields refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct


def whole(pattern: str) -> str:
    r"""A pattern that must match the whole value.

    `$` alone also matches before a trailing newline (Python's and msgspec's `re`), so "A1\n" passed and was stored;
    `(?!\n)` closes that and stays valid ECMA-262 for clients reading the OpenAPI schema (which has no `\Z`).
    """
    return rf"^(?:{pattern})$(?!\n)"


PRINTABLE = r"[^\x00-\x1f\x7f]"  # no control characters (newlines, NUL, escape sequences)
RequestId = Annotated[str, Meta(min_length=1, max_length=128, pattern=whole(r"[A-Za-z0-9_.:-]+"))]
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=whole(f"{PRINTABLE}+"))]
Reason = Annotated[str, Meta(max_length=500, pattern=whole(r"[^\x00-\x08\x0b-\x1f\x7f]*"))]  # tabs, line breaks ok
Phone = Annotated[str, Meta(pattern=whole(r"\+?[0-9]{8,15}"), description="digits, optionally with a leading +")]
Email = Annotated[str, Meta(pattern=whole(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}"), max_length=254)]
Lang = Annotated[str, Meta(pattern=whole(r"[a-z]{2}"), description="ISO 639-1 language code")]
FreeText = Annotated[str, Meta(max_length=64, pattern=whole(f"{PRINTABLE}*"))]


class TokenRequest(Struct, forbid_unknown_fields=True):
    """`POST /auth/token`."""

    username: Annotated[str, Meta(min_length=1, max_length=64, pattern=whole(f"{PRINTABLE}+"))]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class CreateTicket(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /tickets`."""

    service_id: Id
    priority: Annotated[int, Meta(gt=-1, le=9)] | None = (
        None  # gt=-1, not ge=0: Litestar drops a 0 bound from the schema
    )
    channel: Literal["walk_in", "kiosk", "web", "mobile", "appointment", "front_desk"] = "walk_in"
    phone: Phone | None = None
    email: Email | None = None
    customer_ref: FreeText | None = None
    lang: Lang | None = None
    appointment_at: Annotated[datetime, Meta(tz=True)] | None = None
    request_id: RequestId | None = None
    notify_opt_in: bool | None = None  # the customer asked for notifications to the phone/e-mail given (HQ sends)


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
