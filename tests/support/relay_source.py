"""An in-memory event source for the relay: an appliance's log as the relay reads it, with its cursor."""

from __future__ import annotations

from collections.abc import Sequence

from sync.relay import Outgoing


class ListSource:
    """The relay's `EventSource` over a list of outgoing events."""

    def __init__(self, items: list[Outgoing]) -> None:
        self.items = items
        self.cursor = 0

    def read_after(self, seq: int, limit: int) -> Sequence[Outgoing]:
        """The events after `seq`, at most `limit`."""
        return [o for o in self.items if o.seq > seq][:limit]

    async def save_cursor(self, seq: int, epoch: int) -> None:
        """Remember how far the cloud acknowledged."""
        self.cursor = seq

    def read_cursor(self) -> tuple[int, int]:
        """The saved cursor (epoch 0)."""
        return self.cursor, 0
