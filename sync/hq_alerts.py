"""HQ's anomaly alerts for one branch (US-ANALYT-007), as the hub pushes them to the appliance's floor.

The hub keeps one document per branch in the `qms_alerts` KV bucket under `<tenant>.<branch>`: the alerts open for
that branch now (an empty list once they all cleared). The appliance reads only its own key with a JetStream direct
get (the one read its credentials allow), like its configuration, staff accounts and bookings.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from sync.relay import config_key

ALERTS_BUCKET = "qms_alerts"


def alerts_subject(tenant: str, branch_id: str) -> str:
    """`$JS.API.DIRECT.GET.KV_qms_alerts.$KV.qms_alerts.<tenant>.<branch>`: the last value of the branch's key."""
    return f"$JS.API.DIRECT.GET.KV_{ALERTS_BUCKET}.$KV.{ALERTS_BUCKET}.{config_key(tenant, branch_id)}"


class BranchAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One open alert: a service whose rolling p90 wait is far above the usual for this weekday and hour."""

    service_id: str
    opened_at: datetime  # UTC
    p90_seconds: float
    baseline_seconds: float


class AlertsDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The branch's open alerts as HQ sees them at `generated_at` (none: every alert cleared)."""

    tenant_id: str
    branch_id: str
    generated_at: datetime
    alerts: list[BranchAlert] = msgspec.field(default_factory=list)


alerts_decoder = msgspec.json.Decoder(AlertsDocument)
