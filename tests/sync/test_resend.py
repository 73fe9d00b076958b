"""Sending the log again from a seq (`qms-edge replication resend`): the cursor rewinds and its resend epoch moves on,
a cursor save from before the rewind cannot undo it, and a running relay follows the rewind and re-publishes with
fresh message ids, which JetStream accepts although the same events went out a moment ago (its duplicate window would
drop a re-publish of the same id)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import nats
import pytest
from typer.testing import CliRunner

from cloud.consumer import ensure_stream
from edge.cli import app as edge_cli
from edge.engine import commands as c
from edge.replication import ResendRefused, ServiceSource, load_cursor_state, rewind_cursor, store_cursor
from edge.service import QueueService
from edge.store.db import open_database
from sync.relay import STREAM, LinkSettings, Relay, msg_id
from tests.support.appliance import seed_demo
from tests.support.nats_server import NatsServer
from tests.sync.test_relay import BRANCH, TENANT, enqueue_many, wait_for

pytestmark = pytest.mark.slow


def _in_transaction(data_dir: Path, fn: object) -> object:
    """Run `fn(conn)` in a write transaction of a second connection (another process, as far as SQLite knows)."""
    assert callable(fn)
    conn = open_database(data_dir)
    try:
        conn.execute("BEGIN IMMEDIATE")
        result = fn(conn)
        conn.execute("COMMIT")
        return result
    finally:
        conn.close()


def test_msg_ids_carry_the_hash_and_the_resend_epoch() -> None:
    assert msg_id("acme", "b1", 7) == "acme.b1:7"
    assert msg_id("acme", "b1", 7, "ab" * 32) == "acme.b1:7:abababababababab"
    assert msg_id("acme", "b1", 7, "ab" * 32, 2) == "acme.b1:7:abababababababab:e2"
    assert msg_id("beta", "b1", 7, "ab" * 32) != msg_id("acme", "b1", 7, "ab" * 32)  # one stream, two tenants


def test_rewind_bumps_the_epoch_and_a_stale_save_cannot_undo_it(tmp_path: Path) -> None:
    seed_demo(tmp_path / "edge", users=[])
    data = tmp_path / "edge"
    conn = open_database(data)
    head = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    assert load_cursor_state(conn) == (0, 0)
    store_cursor(conn, head)
    assert load_cursor_state(conn) == (head, 0)
    assert _in_transaction(data, lambda w: rewind_cursor(w, 1)) == (head, 1, head)
    assert load_cursor_state(conn) == (0, 1)
    store_cursor(conn, head, epoch=0)  # the relay's batch from before the rewind is acknowledged afterwards
    assert load_cursor_state(conn) == (0, 1)
    store_cursor(conn, 1, epoch=1)
    store_cursor(conn, 0, epoch=1)  # still never backwards within an epoch
    assert load_cursor_state(conn) == (1, 1)
    assert _in_transaction(data, lambda w: rewind_cursor(w, head + 1)) == (1, 2, head)  # "from the next one on"
    for bad in (0, head + 2):
        with pytest.raises(ResendRefused, match=f"between 1 and {head + 1}"):
            rewind_cursor(conn, bad)
    conn.close()


def test_the_resend_command(tmp_path: Path) -> None:
    seed_demo(tmp_path / "edge", users=[])
    runner = CliRunner()
    args = ["replication", "resend", "--data-dir", str(tmp_path / "edge")]
    done = runner.invoke(edge_cli, [*args, "--from-seq", "1"])
    assert done.exit_code == 0, done.output
    assert "replication cursor 0 -> 0 (resend epoch 1): seq 1..1 will be shipped again" in done.output
    refused = runner.invoke(edge_cli, [*args, "--from-seq", "5"])
    assert refused.exit_code == 1
    assert "refused: --from-seq must be between 1 and 2" in refused.output
    assert runner.invoke(edge_cli, args).exit_code != 0  # --from-seq is required
    nowhere = runner.invoke(edge_cli, ["replication", "resend", "--from-seq", "1", "--data-dir", str(tmp_path / "x")])
    assert nowhere.exit_code == 1
    conn = sqlite3.connect(tmp_path / "edge" / "qms.sqlite3")
    audit = conn.execute("SELECT action, detail FROM audit WHERE action = 'replication_resend'").fetchall()
    assert audit == [("replication_resend", '{"from_seq":1,"cursor":0}')]
    conn.close()


async def _stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await nc.close()


async def test_a_running_relay_follows_a_rewind_with_fresh_message_ids(tmp_path: Path, nats_server: NatsServer) -> None:
    seed_demo(tmp_path / "edge", users=[])
    service = QueueService(tmp_path / "edge")
    service.start()
    link = LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH)
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream())  # the stream as the hub creates it (one-hour duplicate window)
    await nc.close()
    relay = Relay(link, ServiceSource(service), cursor=0, batch_size=50)
    try:
        await asyncio.to_thread(enqueue_many, service, 120)
        last = service.state.seq
        relay.start()
        await wait_for(lambda: relay.status.acked_seq == last, "the first delivery")
        assert await _stream_messages(nats_server.url) == last

        # The technician rewinds from another process while the relay runs (idle, polling once a second).
        await asyncio.to_thread(_in_transaction, tmp_path / "edge", lambda w: rewind_cursor(w, 40))
        await wait_for(lambda: relay.status.epoch == 1, "the relay to notice the rewind", seconds=10)
        await wait_for(lambda: relay.status.acked_seq == last, "the resend")
        assert relay.status.duplicates == 0  # fresh ids: nothing was dropped by the stream's duplicate window
        assert await _stream_messages(nats_server.url) == last + (last - 39)
        assert service.read(load_cursor_state) == (last, 1)

        # Live traffic goes on in the new epoch; a relay restarted from the store keeps it (same ids, deduplicated).
        await asyncio.to_thread(service.execute, c.Enqueue(service_id="cs"))
        await wait_for(lambda: relay.status.acked_seq == last + 1, "a live event")
        await relay.stop()
        cursor, epoch = service.read(load_cursor_state)
        assert (cursor, epoch) == (last + 1, 1)
        again = Relay(link, ServiceSource(service), cursor=cursor - 5, epoch=epoch)
        again.start()
        await wait_for(lambda: again.status.acked_seq == last + 1, "the re-send after a crash")
        assert again.status.duplicates == 5
        await again.stop()
        assert await _stream_messages(nats_server.url) == last + (last - 39) + 1
    finally:
        await relay.stop()
        service.stop()
