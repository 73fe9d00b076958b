"""The identity area's tables, on the hub's one `metadata` (created by migration `0006_identity`)."""

from __future__ import annotations

from cloud.store import metadata

__all__ = ["metadata"]
