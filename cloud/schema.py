"""The whole hub schema: `cloud.store.metadata` with every area's tables imported onto it (what the newest migration
creates; the migration test compares the two)."""

from __future__ import annotations

import cloud.admin.tables
import cloud.analytics.tables
import cloud.appointments.tables
import cloud.identity.tables
import cloud.notify.tables
import cloud.ops.tables
import cloud.releases.tables
from cloud.store import metadata

AREAS = (cloud.notify, cloud.analytics, cloud.identity, cloud.admin, cloud.ops, cloud.releases, cloud.appointments)

__all__ = ["AREAS", "metadata"]
