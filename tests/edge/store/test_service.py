"""The single writer on a real SQLite file: durability, idempotency, hash chain, rebuild, timers across restart."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from edge.demo import demo_config
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.service import QueueService, RequestIdReused
from edge.store import rebuild
from edge.store.log import verify_chain
from sync.contract import GENESIS_HASH, chain_hash


class Clock:
    """A settable clock shared with the writer thread."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock):
    svc = QueueService(tmp_path, clock=clock)
    svc.start()
    svc.execute(c.ApplyConfig(config=demo_config(), base_version=0))
    yield svc
    svc.stop()


def rows(path: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(path / "qms.sqlite3")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_wal_and_full_sync(service: QueueService, tmp_path: Path) -> None:
    assert service._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert service._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_same_request_id_gives_same_response_and_one_event(service: QueueService, tmp_path: Path) -> None:
    first = service.execute(c.Enqueue(service_id="teller", request_id="kiosk-1:42"))
    again = service.execute(c.Enqueue(service_id="teller", request_id="kiosk-1:42"))
    assert again.replayed
    assert not again.events
    assert again.response == first.response
    assert rows(tmp_path, "SELECT count(*) FROM events WHERE request_id = ?", "kiosk-1:42") == [(1,)]


def test_request_id_with_another_command_is_refused(service: QueueService) -> None:
    service.execute(c.Enqueue(service_id="teller", request_id="r-1"))
    with pytest.raises(RequestIdReused):
        service.execute(c.Enqueue(service_id="cs", request_id="r-1"))


def test_duplicates_inside_one_batch_are_absorbed(service: QueueService, tmp_path: Path) -> None:
    futures = [service.submit(c.Enqueue(service_id="cs", request_id="same")) for _ in range(20)]
    responses = [f.result(10).response for f in futures]
    assert all(r == responses[0] for r in responses)
    assert rows(tmp_path, "SELECT count(*) FROM events WHERE request_id = 'same'") == [(1,)]


def test_refused_command_changes_nothing(service: QueueService, tmp_path: Path) -> None:
    before = rows(tmp_path, "SELECT count(*) FROM events")
    with pytest.raises(DomainError) as err:
        service.execute(c.Enqueue(service_id="nope"))
    assert err.value.code == "unknown_service"
    assert rows(tmp_path, "SELECT count(*) FROM events") == before


def test_group_commit_batches_concurrent_commands(service: QueueService) -> None:
    batches_before = service.batches
    futures = [service.submit(c.Enqueue(service_id="teller")) for _ in range(500)]
    numbers = [f.result(30).response["ticket_number"] for f in futures]
    assert len(set(numbers)) == 500
    assert service.batches - batches_before < 500  # several commands shared a transaction


def test_hash_chain_links_every_event(service: QueueService, tmp_path: Path) -> None:
    for _ in range(5):
        service.execute(c.Enqueue(service_id="teller"))
    chain = rows(tmp_path, "SELECT seq, body, prev_hash, hash FROM events ORDER BY seq")
    assert [r[0] for r in chain] == list(range(1, len(chain) + 1))
    prev = GENESIS_HASH
    for _seq, body, prev_hash, hash_ in chain:
        assert prev_hash == prev
        assert hash_ == chain_hash(prev_hash, body)
        prev = hash_
    assert verify_chain(service._conn).ok


def test_verify_detects_tampering(service: QueueService, tmp_path: Path) -> None:
    service.execute(c.Enqueue(service_id="teller"))
    service.execute(c.Enqueue(service_id="teller"))
    conn = sqlite3.connect(tmp_path / "qms.sqlite3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET body = replace(body, 'A001', 'A009') WHERE seq = 2")
    conn.commit()
    conn.close()
    report = verify_chain(service._read)
    assert not report.ok
    assert "seq 2" in (report.error or "")


def test_rebuild_gives_the_same_state(service: QueueService, clock: Clock) -> None:
    tickets = [service.execute(c.Enqueue(service_id=s)).response for s in ("teller", "cs", "loan", "teller")]
    called = service.execute(c.CallNext(counter_id="1")).response["ticket"]
    service.execute(c.Start(ticket_id=called["ticket_id"], counter_id="1"))
    clock.advance(90)
    service.execute(c.Complete(ticket_id=called["ticket_id"], counter_id="1"))
    service.execute(c.Hold(ticket_id=tickets[1]["ticket_id"]))
    service.execute(c.SetPresence(counter_id="5", status="break"))
    service.execute(c.Transfer(ticket_id=tickets[2]["ticket_id"], to_service_id="cs", reason="wrong desk"))
    result = rebuild.replay(service._conn)
    assert rebuild.differences(service._conn, result) == []
    assert msgspec.to_builtins(result.state.tickets) == msgspec.to_builtins(service.state.tickets)


def test_restart_loads_the_same_state(tmp_path: Path, clock: Clock) -> None:
    svc = QueueService(tmp_path, clock=clock)
    svc.execute(c.ApplyConfig(config=demo_config(), base_version=0))
    for _ in range(3):
        svc.execute(c.Enqueue(service_id="teller"))
    svc.execute(c.CallNext(counter_id="2"))
    state = svc.state
    svc.stop()
    again = QueueService(tmp_path, clock=clock)
    try:
        assert again.state.seq == state.seq
        assert again.state.last_hash == state.last_hash
        assert msgspec.to_builtins(again.state.tickets) == msgspec.to_builtins(state.tickets)
        assert again.state.counters == state.counters
        assert again.execute(c.Enqueue(service_id="teller")).response["ticket_number"] == "A004"
    finally:
        again.stop()


def test_auto_no_show_fires_once_even_across_a_restart(tmp_path: Path, clock: Clock) -> None:
    svc = QueueService(tmp_path, clock=clock)
    svc.execute(c.ApplyConfig(config=demo_config(), base_version=0))
    svc.execute(c.Enqueue(service_id="teller"))
    svc.execute(c.CallNext(counter_id="1"))  # teller grace: 120 s
    svc.stop()
    clock.advance(121)  # the deadline passes while the appliance is down
    again = QueueService(tmp_path, clock=clock)
    again.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not rows(tmp_path, "SELECT 1 FROM events WHERE type = 'ticket.no_show'"):
            assert datetime.now(UTC) < deadline, "auto no-show did not fire after restart"
            threading.Event().wait(0.02)
        clock.advance(600)
        again.execute(c.Enqueue(service_id="teller"))  # forces more writer cycles
    finally:
        again.stop()
    assert rows(tmp_path, "SELECT count(*) FROM events WHERE type = 'ticket.no_show'") == [(1,)]


def wait_for_rows(path: Path, sql: str, what: str) -> list[tuple]:
    """Poll the database until the query returns rows (the writer's timers run on their own thread)."""
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not (found := rows(path, sql)):
        assert datetime.now(UTC) < deadline, what
        threading.Event().wait(0.02)
    return found


def test_day_close_runs_at_local_midnight_even_after_a_night_switched_off(tmp_path: Path, clock: Clock) -> None:
    svc = QueueService(tmp_path, clock=clock)
    svc.start()
    svc.execute(c.ApplyConfig(config=demo_config(), base_version=0))
    left = svc.execute(c.Enqueue(service_id="teller")).response
    svc.stop()
    clock.advance(16 * 3600)  # 09:00 -> 01:00 Jakarta the next day, the appliance off overnight
    again = QueueService(tmp_path, clock=clock)
    again.start()
    try:
        found = wait_for_rows(tmp_path, "SELECT ticket_id, body FROM events WHERE type = 'ticket.cancelled'",
                              "the day close did not run after the restart")  # fmt: skip
        assert [ticket_id for ticket_id, _ in found] == [left["ticket_id"]]
        assert msgspec.json.decode(found[0][1])["reason"] == "end_of_day"
        assert rows(tmp_path, "SELECT status FROM tickets WHERE ticket_id = ?", left["ticket_id"]) == [("cancelled",)]
        assert again.execute(c.Enqueue(service_id="teller")).response["ticket_number"] == "A001"
    finally:
        again.stop()
    assert rows(tmp_path, "SELECT count(*) FROM events WHERE type = 'ticket.cancelled'") == [(1,)]


def test_auto_call_assigns_when_counter_becomes_available(tmp_path: Path, clock: Clock) -> None:
    config = demo_config()
    counters = [msgspec.structs.replace(k, auto_call=True) if k.id == "6" else k for k in config.counters]
    svc = QueueService(tmp_path, clock=clock)
    svc.start()
    try:
        svc.execute(c.ApplyConfig(config=msgspec.structs.replace(config, counters=counters), base_version=0))
        svc.execute(c.SetPresence(counter_id="6", status="break"))
        svc.execute(c.SetPresence(counter_id="4", status="break"))
        ticket = svc.execute(c.Enqueue(service_id="loan")).response
        assert svc.state.tickets[ticket["ticket_id"]].status == "waiting"  # on break: nothing assigned
        svc.execute(c.SetPresence(counter_id="6", status="available"))
        assert svc.state.tickets[ticket["ticket_id"]].status == "called"
        assert svc.state.tickets[ticket["ticket_id"]].counter_id == "6"
    finally:
        svc.stop()


def test_config_written_by_another_process_is_picked_up(service: QueueService, tmp_path: Path) -> None:
    other = QueueService(tmp_path)
    try:
        changed = msgspec.structs.replace(demo_config(), name="Renamed branch")
        other.execute(c.ApplyConfig(config=changed, base_version=1, source="cli"))
    finally:
        other.stop()
    seen: list[str] = []
    service.subscribe_commits(lambda events: seen.extend(type(e).__name__ for e in events))
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while service.view.state.config is None or service.view.state.config.version != 2:
        assert datetime.now(UTC) < deadline, "the running writer did not pick up the external config"
        threading.Event().wait(0.02)
    assert service.execute(c.Enqueue(service_id="teller")).events[0].seq == 3
    assert "ConfigApplied" in seen


def test_verify_detects_a_cut_off_tail(service: QueueService, tmp_path: Path) -> None:
    for _ in range(3):
        service.execute(c.Enqueue(service_id="teller"))
    conn = sqlite3.connect(tmp_path / "qms.sqlite3")
    conn.execute("DROP TRIGGER events_append_only_delete")
    conn.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    conn.commit()
    conn.close()
    report = verify_chain(service._read)
    assert not report.ok
    assert "seq 4 was applied" in (report.error or "")


def test_migrations_follow_their_file_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """user_version is the number of the last applied file, so a later file is applied once even after a gap."""
    from edge.store import db

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (x);")
    (folder / "0003_c.sql").write_text("CREATE TABLE c (x);")
    monkeypatch.setattr(db, "MIGRATIONS", folder)
    conn = db.connect(tmp_path / "m.sqlite3")
    assert db.migrate(conn) == 3
    (folder / "0004_d.sql").write_text("-- a comment line\nCREATE TABLE d (x);")
    assert db.migrate(conn) == 4
    assert db.migrate(conn) == 4
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"a", "c", "d"} <= tables
    (folder / "0004_dup.sql").write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match="share a number"):
        db.migrate(conn)
