"""Request bodies of the kiosk endpoints, validated at the boundary (unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

from edge.web.schemas import Id, Lang, Phone, RequestId, whole

CustomerRef = Annotated[
    str, Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9 ./-]{0,31}"), description="up to 32 characters")
]


class KioskTicket(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /kiosk/api/tickets`: the customer's choices."""

    service_id: Id
    lang: Lang = "id"
    phone: Phone | None = None
    customer_ref: CustomerRef | None = None
    request_id: RequestId
    notify_opt_in: bool | None = None  # asked with the phone number: may HQ notify the customer?


class LeaseRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /kiosk/api/leases`: reserve numbers of a service for offline issuing."""

    service_id: Id


class OfflineTicket(Struct, forbid_unknown_fields=True, kw_only=True):
    """One ticket the kiosk issued while the appliance was unreachable."""

    temp_id: RequestId
    lease_id: Id
    seq_no: Annotated[int, Meta(ge=1, le=999_999)]
    issued_at: Annotated[datetime, Meta(tz=True)]
    lang: Lang = "id"
    phone: Phone | None = None
    customer_ref: CustomerRef | None = None
    notify_opt_in: bool | None = None


class OfflineBatch(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /kiosk/api/offline`: tickets to reconcile, oldest first."""

    tickets: Annotated[list[OfflineTicket], Meta(max_length=200)]
