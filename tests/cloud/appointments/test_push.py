"""Bookings travel hub -> branch over a real nats-server with the branches' own credentials: the publisher puts a
branch's document in `qms_bookings`, that branch's watcher keeps it on disk (so check-in works once the link is gone),
another branch cannot read it; a check-in coming back marks the booking checked in, and a booking nobody checked in
shows as no-show after its window."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import nats
import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from cloud.appointments import booking, checkins
from cloud.appointments.publish import Publisher, ensure_bookings_bucket
from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from edge.appointments import store
from edge.appointments.watch import BookingsWatch, fetch_bookings
from sync.appointments import BOOKINGS_BUCKET
from sync.config_watch import ConfigFetchError
from sync.contract import TicketCreated
from sync.relay import LinkSettings, config_key
from tests.cloud.appointments.support import add_branch
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

JKT = ZoneInfo("Asia/Jakarta")


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[Engine, NatsServer, Path]]:
    """A hub store with two booking branches and a nats-server that knows only the hub and those branches."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    add_branch(engine, branch_id="jkt-01")
    add_branch(engine, branch_id="bdg-02")
    keys = tmp_path / "keys"
    issue(engine, keys, "acme", "jkt-01"), issue(engine, keys, "acme", "bdg-02")
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys))
    await asyncio.to_thread(server.start)
    try:
        yield engine, server, keys
    finally:
        await asyncio.to_thread(server.stop)
        engine.dispose()


def _link(server: NatsServer, keys: Path, branch: str) -> LinkSettings:
    return LinkSettings(servers=(server.url,), tenant="acme", branch_id=branch,
                        nkey_seed_file=str(keys / f"acme.{branch}.nk"))  # fmt: skip


async def test_a_branch_receives_its_bookings_and_only_its_own(
    hub: tuple[Engine, NatsServer, Path], tmp_path: Path
) -> None:
    engine, server, keys = hub
    now = datetime.now(UTC)
    soon = (now + timedelta(days=1)).astimezone(JKT).replace(hour=9, minute=0, second=0, microsecond=0)
    while soon.weekday() >= 5 or booking.calendar.closed_reason(soon.date(), [], branch_id="jkt-01", region=None):
        soon += timedelta(days=1)
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        mine = booking.book(conn, branch, "cs", soon, name="Siti", email="siti@example.com", phone=None, lang="id",
                            actor="public", now=now)  # fmt: skip
    nc = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
    try:
        await ensure_bookings_bucket(nc.jetstream())
        publisher = Publisher(engine, nc.jetstream(), clock=lambda: soon - timedelta(hours=2))
        assert await publisher.publish_changed() == 2
        assert await publisher.publish_changed() == 0  # nothing changed: nothing sent
    finally:
        await nc.close()
    link = _link(server, keys, "jkt-01")
    data_dir = tmp_path / "edge"
    data_dir.mkdir()
    watch = BookingsWatch(link, data_dir, poll_seconds=0.1)
    watch.start()
    try:
        await asyncio.wait_for(watch.saved.wait(), 10)
    finally:
        await watch.stop()
    doc = store.load(data_dir)
    assert doc is not None
    assert [v.booking_id for v in doc.visits] == [mine.booking_id]
    assert "siti" not in store.path_in(data_dir).read_text().lower()
    other = await _link(server, keys, "bdg-02").connect()
    try:
        with pytest.raises((ConfigFetchError, nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await fetch_bookings(other, "acme", "jkt-01")
    finally:
        await other.close()


def test_a_check_in_comes_back_and_a_missed_visit_shows_as_no_show(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    add_branch(engine)
    now = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
    at = datetime(2027, 3, 2, 9, 0, tzinfo=JKT)
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        came, missed = (booking.book(conn, branch, "cs", at, name=n, email=None, phone=None, lang="id",
                                     actor="public", now=now) for n in ("A", "B"))  # fmt: skip
        ref = f"booking:{came.booking_id}"
        event = TicketCreated(event_id="e1", occurred_at=at, actor="kiosk-1", ticket_id="t1", service_id="cs",
                              ticket_number="B001", seq_no=1, business_date="2027-03-02", order=1,
                              channel="appointment", customer_ref=ref, appointment_at=at)  # fmt: skip
        checkins.on_applied(conn, "acme", "jkt-01", [event])
        rows = {r.booking_id: r for r in booking.day_bookings(conn, "acme", "jkt-01", ["2027-03-02"])}
    later = at + timedelta(minutes=16)
    assert booking.shown_status(rows[came.booking_id], branch, later) == "checked_in"
    assert rows[came.booking_id].ticket_id == "t1"
    assert booking.shown_status(rows[missed.booking_id], branch, later) == "no_show"
    assert booking.shown_status(rows[missed.booking_id], branch, at) == "booked"
    engine.dispose()


async def _pushed_visits(url: str) -> list[str]:
    """The booking ids in the branch's document in `qms_bookings` (none while NATS or the bucket is not there)."""
    host, port = url.removeprefix("nats://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return []  # nats-py would keep retrying a refused address
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        entry = await (await nc.jetstream().key_value(BOOKINGS_BUCKET)).get(config_key("acme", "jkt-01"))
    except Exception:
        return []
    finally:
        await nc.close()
    return [visit["booking_id"] for visit in msgspec.json.decode(entry.value or b"{}").get("visits", [])]


def test_a_hub_started_without_nats_pushes_the_bookings_once_nats_is_up(tmp_path: Path) -> None:
    """NATS comes up only after the hub started and a visit was booked: the branch's document then carries it."""
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    server = NatsServer(tmp_path / "nats", port=port)
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(db)
    add_branch(engine)
    now = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
    slot = datetime(2027, 3, 2, 9, 0, tzinfo=JKT)  # tomorrow: in the branch's document
    app = create_app(CloudSettings(db_url=db, keys_dir=tmp_path / "keys", nats_servers=(url,)))
    app.state["appt_clock"] = lambda: now
    try:
        with TestClient(app=app) as client:
            form = {"lang": "en", "service_id": "cs", "day": "2027-03-02", "starts_at": slot.isoformat(),
                    "name": "Siti Aminah", "email": "", "phone": ""}  # fmt: skip
            assert client.post("/book/acme/jkt-01", data=form, follow_redirects=False).status_code == 303
            with engine.connect() as conn:
                (booked,) = [r.booking_id for r in booking.day_bookings(conn, "acme", "jkt-01", ["2027-03-02"])]
            assert asyncio.run(_pushed_visits(url)) == []  # no NATS yet
            server.start()
            wait_until(lambda: asyncio.run(_pushed_visits(url)) == [booked], timeout=60, what="the pushed bookings")
    finally:
        server.stop()
        engine.dispose()
