"""Pushing each branch's open anomaly alerts to its floor: one document per branch in the `qms_alerts` KV bucket
(key `<tenant>.<branch>`, sync/hq_alerts.py), read by the appliance like its configuration.

A branch that ever had an alert gets a document; when its alerts clear, the document's list empties and the floor
stops showing them. The publisher republishes a branch only when the content changed, after every anomaly check
(`nudge`) and on a timer (a replica that starts republishes everything once). Several replicas may publish the same
content: the branch keeps the newest revision, so no claim is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.analytics.tables import alerts
from cloud.kv_publish import Branch, KvPublisher, ensure_bucket
from sync.hq_alerts import ALERTS_BUCKET, AlertsDocument, BranchAlert


async def ensure_alerts_bucket(js: Any, *, replicas: int = 1) -> Any:
    """The `qms_alerts` KV bucket, made if missing."""
    return await ensure_bucket(js, ALERTS_BUCKET, replicas=replicas)


def documents(engine: Engine, now: datetime) -> dict[Branch, AlertsDocument]:
    """The document of every branch with an alert row (open or cleared): its open alerts."""
    found: dict[Branch, list[BranchAlert]] = {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(alerts).order_by(alerts.c.tenant_id, alerts.c.branch_id, alerts.c.service_id))
        for row in rows:
            listed = found.setdefault((row.tenant_id, row.branch_id), [])
            if row.state == "open" and row.opened_at:
                listed.append(BranchAlert(service_id=row.service_id, opened_at=datetime.fromisoformat(row.opened_at),
                                          p90_seconds=float(row.p90_seconds or 0.0),
                                          baseline_seconds=float(row.baseline_seconds or 0.0)))  # fmt: skip
    return {
        (tenant, branch): AlertsDocument(tenant_id=tenant, branch_id=branch, generated_at=now, alerts=listed)
        for (tenant, branch), listed in found.items()
    }


def encoded_documents(engine: Engine, now: datetime) -> dict[Branch, bytes]:
    """`documents`, encoded for the bucket."""
    return {branch: msgspec.json.encode(document) for branch, document in documents(engine, now).items()}


class AlertPublisher(KvPublisher):
    """Publishes changed documents every `interval` seconds and whenever `nudge()` is called (an anomaly check ran)."""

    def __init__(
        self, engine: Engine, js: Any, *, interval: float = 60.0, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(engine, js, bucket=ALERTS_BUCKET, documents=encoded_documents, what="alerts",
                         interval=interval, clock=clock)  # fmt: skip
