"""Background work of one hub replica, started in the app's lifespan and stopped with it.

`Background` owns the task (start, cancel on stop); `Periodic` runs `tick()` every `interval` seconds, a store error
being logged and the next tick trying again (health reports the store). Publishers, schedulers, checkers and feeds
derive from these instead of each keeping its own task handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa

log = logging.getLogger(__name__)


class Background:
    """One asyncio task: `start()` runs `_run()` until `stop()`."""

    task_name = "qms-cloud-background"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background until `stop`."""
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        raise NotImplementedError


class Periodic(Background):
    """`tick()` every `interval` seconds."""

    interval: float = 60.0

    async def tick(self) -> object:
        """One pass of the work."""
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except sa.exc.SQLAlchemyError as exc:  # the store is away for a moment; health reports it
                log.warning("%s: %s", self.task_name, exc)
            await asyncio.sleep(self.interval)
