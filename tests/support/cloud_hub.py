"""The cloud hub's consumer for tests: `EventConsumer` on its own event loop in a thread, against a real store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from cloud.consumer import EventConsumer
from cloud.store import branches, create_store_engine, events


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `condition` until it is truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


class CloudHub:
    """The consumer running in a background thread; the test reads the store directly."""

    def __init__(self, store_url: str, nats_url: str, workers: int = 1, **options: Any) -> None:
        self.engine = create_store_engine(store_url)
        self.nats_url = nats_url
        self.workers = workers
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.consumer: EventConsumer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="cloud-hub", daemon=True)

    def start(self) -> CloudHub:
        """Start the loop thread and the consumer."""
        self._thread.start()

        async def boot() -> None:
            self.consumer = EventConsumer(self.engine, [self.nats_url], workers=self.workers, **self.options)
            await self.consumer.start()

        asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop the consumer and the loop."""
        if self.consumer is not None:
            asyncio.run_coroutine_threadsafe(self.consumer.stop(), self.loop).result(timeout=30)

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
        self.engine.dispose()

    def seqs(self, branch_id: str, tenant: str | None = None) -> list[int]:
        """The seqs stored for a branch (of `tenant`, when given), in order (duplicates would show)."""
        query = sa.select(events.c.seq).where(events.c.branch_id == branch_id).order_by(events.c.seq)
        if tenant is not None:
            query = query.where(events.c.tenant_id == tenant)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def branch(self, branch_id: str, tenant: str | None = None) -> Any:
        """The branch's tracking row (of `tenant`, when given; None before its first event)."""
        query = sa.select(branches).where(branches.c.branch_id == branch_id)
        if tenant is not None:
            query = query.where(branches.c.tenant_id == tenant)
        with self.engine.connect() as conn:
            return conn.execute(query).one_or_none()

    def __enter__(self) -> CloudHub:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
