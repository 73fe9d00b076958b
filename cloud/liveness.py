"""Branch liveness at the hub: the newest heartbeat per (tenant, branch) and what it says about the branch now.

Branches beat on `qms.hb.<tenant>.<branch>` (core NATS, see `sync.liveness`). The hub listens on `qms.hb.>` in a
queue group (one replica records each beat), checks that the body names the branch of its subject, and keeps one
row per branch in `branch_liveness`. A branch is `online` while its last beat is younger than `missed_beats` times
its own interval, `offline since <last beat>` after that, and `never connected` before its first beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats
import sqlalchemy as sa
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy.engine import Connection, Engine

from cloud.admin.fleet import record_devices
from cloud.store import branch_liveness, insert_ignore, transaction
from sync.liveness import DEFAULT_MISSED_BEATS, HEARTBEAT_PREFIX, Heartbeat, heartbeat_decoder, subject_branch
from sync.relay import error_text

log = logging.getLogger("qms.cloud.liveness")
QUEUE_GROUP = "qms-hub-liveness"
ONLINE, OFFLINE, NEVER = "online", "offline", "never connected"


def missed_beats_setting(env: dict[str, str] | None = None) -> int:
    """How many beats a branch may miss before it shows offline (`QMS_HUB_MISSED_BEATS`, default 3)."""
    value = (os.environ if env is None else env).get("QMS_HUB_MISSED_BEATS", "")
    return max(1, int(value)) if value.strip() else DEFAULT_MISSED_BEATS


class BeatRefused(Exception):
    """A heartbeat that does not name the branch of its subject, or does not parse."""


def parse_beat(subject: str, data: bytes) -> Heartbeat:
    """The heartbeat of a message, checked against its subject (the subject is what the branch may publish to)."""
    where = subject_branch(subject)
    if where is None:
        raise BeatRefused(f"not a heartbeat subject: {subject!r}")
    try:
        beat = heartbeat_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BeatRefused(f"heartbeat on {subject} does not parse: {exc}") from None
    if (beat.tenant, beat.branch_id) != where:
        raise BeatRefused(f"heartbeat on {subject} names {beat.tenant}.{beat.branch_id}")
    return beat


def record_beat(engine: Engine, beat: Heartbeat, received_at: datetime | None = None) -> None:
    """Keep the newest beat of the branch (one row per (tenant, branch))."""
    now = (received_at or datetime.now(UTC)).isoformat()
    values: dict[str, Any] = {
        "last_beat_at": now,
        "sent_at": beat.sent_at.isoformat(),
        "interval_seconds": beat.interval_seconds,
        "last_seq": beat.last_seq,
        "acked_seq": beat.acked_seq,
        "lag_events": beat.lag_events,
        "software_version": beat.software_version[:64],
    }
    key = (branch_liveness.c.tenant_id == beat.tenant) & (branch_liveness.c.branch_id == beat.branch_id)
    with transaction(engine) as conn:
        updated = conn.execute(
            sa.update(branch_liveness).where(key).values(**values, beats=branch_liveness.c.beats + 1)
        ).rowcount
        if not updated:
            conn.execute(
                insert_ignore(conn, branch_liveness).values(
                    tenant_id=beat.tenant, branch_id=beat.branch_id, beats=1, **values
                )
            )
        record_devices(conn, beat, datetime.fromisoformat(now))  # the device fleet (cloud/admin/fleet.py)


def since_words(stamp: str | None) -> str:
    """A stored UTC time as people read it in the console: to the second, with its zone (`2026-12-04 18:35:31 UTC`)."""
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Liveness:
    """What the console says about a branch's liveness."""

    state: str  # online | offline | never connected
    last_beat_at: str | None = None
    software_version: str | None = None
    last_seq: int | None = None

    @property
    def words(self) -> str:
        """`online`, `offline since <time>`, `never connected`."""
        return f"offline since {since_words(self.last_beat_at)}" if self.state == OFFLINE else self.state


def judge(row: Any | None, now: datetime, missed_beats: int) -> Liveness:
    """Online, offline or never connected, from the branch's row (None: no beat yet)."""
    if row is None:
        return Liveness(NEVER)
    age = (now - datetime.fromisoformat(row.last_beat_at)).total_seconds()
    state = OFFLINE if age > missed_beats * float(row.interval_seconds) else ONLINE
    return Liveness(state, row.last_beat_at, row.software_version, row.last_seq)


def liveness_of(
    conn: Connection, keys: Iterable[tuple[str, str]], now: datetime, missed_beats: int
) -> dict[tuple[str, str], Liveness]:
    """Liveness of each (tenant, branch) in `keys`."""
    rows = {(r.tenant_id, r.branch_id): r for r in conn.execute(sa.select(branch_liveness)).all()}
    return {key: judge(rows.get(key), now, missed_beats) for key in keys}


class LivenessListener:
    """Subscribes `qms.hb.>` (queue group) on its own connection and records every beat."""

    def __init__(self, engine: Engine, servers: list[str], connect_options: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.servers = servers
        self.connect_options = connect_options or {}
        self.nc: NatsClient | None = None
        self.recorded = 0
        self.refused = 0
        self.last_error: str | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float = 5.0) -> None:
        """Connect and subscribe in the background, reconnecting forever; waits up to `wait` seconds for the
        subscription, so a hub started while NATS is down still serves its console and health."""
        self._task = asyncio.create_task(self._connect(), name="qms-cloud-liveness")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def _connect(self) -> None:
        delay = 0.5
        while self.nc is None:
            try:
                nc = await nats.connect(
                    servers=self.servers, name="qms-cloud liveness", max_reconnect_attempts=-1,
                    error_cb=self._on_error, reconnected_cb=self._on_reconnected, **self.connect_options,
                )  # fmt: skip
                await nc.subscribe(f"{HEARTBEAT_PREFIX}.>", queue=QUEUE_GROUP, cb=self._on_beat)
                self.nc = nc
            except Exception as exc:  # e.g. the hub's credential refused: say so once, keep trying
                await self._on_error(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self._on_reconnected()
        self._ready.set()

    async def _on_error(self, exc: Exception) -> None:
        """The NATS client's errors (a refused reconnect every 2 s while the server is down): logged once per kind
        of error, instead of nats-py's traceback per attempt."""
        error = error_text(exc)
        if error != self.last_error:
            log.warning("liveness: NATS: %s (reconnecting)", error)
        self.last_error = error

    async def _on_reconnected(self) -> None:
        if self.last_error is not None:
            log.info("liveness: NATS connected again; recording heartbeats")
        self.last_error = None

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = parse_beat(msg.subject, msg.data)
            await asyncio.to_thread(record_beat, self.engine, beat)
            self.recorded += 1
        except BeatRefused as exc:
            self.refused += 1
            log.warning("liveness: %s", exc)
        except Exception:  # a store hiccup loses one beat; the next one comes within an interval
            log.exception("liveness: beat on %s not recorded", msg.subject)

    async def stop(self) -> None:
        """Unsubscribe and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None
