"""The ops area's tables, on the hub's one `metadata` (created by migration `0008_ops`)."""

from __future__ import annotations

from cloud.store import metadata

__all__ = ["metadata"]
