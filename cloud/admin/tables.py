"""The admin area's tables, on the hub's one `metadata` (created by migration `0007_admin`)."""

from __future__ import annotations

from cloud.store import metadata

__all__ = ["metadata"]
