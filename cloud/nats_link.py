"""A hub area's own NATS connection, made in the background: a hub started while NATS is down serves its console
and health at once, and the area starts its NATS work (`on_ready`) when the server answers. nats-py's per-attempt
error traceback is replaced by one warning per kind of error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sync.relay import error_text

log = logging.getLogger("qms.cloud.nats")
READY_WAIT_SECONDS = 5.0


def ready_wait(state: Any) -> float:
    """How long an area waits for its link at start: a few seconds when the consumer reached NATS (the area is
    ready when the app serves), none when it did not (the hub starts at once and the link follows)."""
    consumer = state.get("consumer")
    return READY_WAIT_SECONDS if consumer is not None and consumer.stats.nats_connected else 0.0


@asynccontextmanager
async def background_link(
    name: str,
    servers: list[str],
    options: dict[str, Any],
    on_ready: Callable[[Any], Awaitable[None]],
    wait: float = 5.0,
) -> AsyncIterator[None]:
    """Connect to `servers` in a task (retrying with back-off, reconnecting forever), run `on_ready(nc)` once
    connected; close the connection on exit. Entering waits up to `wait` seconds for `on_ready`, so with NATS up the
    area is ready when the app starts serving, and with NATS down the app starts anyway."""
    import nats

    last_error: list[str | None] = [None]
    held: list[Any] = []
    done = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        text = error_text(exc)
        if text != last_error[0]:
            log.warning("%s: NATS: %s (reconnecting)", name, text)
        last_error[0] = text

    async def connect() -> None:
        delay = 0.5
        while True:
            try:
                nc = await nats.connect(servers=servers, name=f"qms-cloud {name}", max_reconnect_attempts=-1,
                                        allow_reconnect=True, error_cb=on_error, **options)  # fmt: skip
            except Exception as exc:  # refused, unreachable: keep trying quietly
                await on_error(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            held.append(nc)
            try:
                await on_ready(nc)
            except Exception as exc:  # the area says why it cannot use NATS; the app keeps serving
                log.warning("%s: NATS connected but not usable: %s", name, error_text(exc))
            done.set()
            return

    task = asyncio.create_task(connect(), name=f"qms-cloud-{name}-nats")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), wait)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for nc in held:
            with contextlib.suppress(Exception):
                await nc.close()
