"""The fact projection: rebuilt from the log it gives the same rows; it follows commits and other processes."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest

from edge.analytics import fact_check, facts
from edge.engine import commands as c
from edge.service import QueueService
from edge.store.db import connect
from tests.edge.analytics.conftest import Api
from tests.edge.analytics.test_reports_api import _day
from tests.support.appliance import run_cli, seed_demo


def _rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT * FROM ticket_facts ORDER BY ticket_id").fetchall()


def test_rebuild_from_the_log_gives_the_same_rows(api: Api, data_dir: Path) -> None:
    """Drop every row and fold the whole log again: byte-identical rows, cursor at the log's end."""
    tickets = _day(api)
    assert api.get("/kpis").status_code == 200  # the read brings the projection up to the log
    conn = connect(data_dir / "qms.sqlite3")
    try:
        live = _rows(conn)
        assert len(live) == len(tickets)
        seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        assert facts.cursor(conn) == seq
        conn.execute("BEGIN IMMEDIATE")
        try:
            assert facts.rebuild(conn) == seq
            assert _rows(conn) == live
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_phone_never_reaches_the_projection(api: Api, data_dir: Path) -> None:
    """Contacts stay in the ticket projection; facts (and so every export) never hold them."""
    api.enqueue("teller", phone="+6281234567890", email="budi@example.com")
    api.get("/kpis")
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        dump = "\n".join(str(r) for r in _rows(conn))
    finally:
        conn.close()
    assert "6281234567890" not in dump
    assert "budi@example.com" not in dump


def test_follows_commits_without_a_read(api: Api, data_dir: Path) -> None:
    """After a command the follower folds it by itself (the floor's live figures rely on that)."""
    api.enqueue("teller")
    api.enqueue("cs")
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        for _ in range(200):  # bounded wait for the writer's next transaction; a condition, not a sleep
            if facts.cursor(conn) >= seq:
                break
            api.client.get("/api/v1/health")
        assert facts.cursor(conn) >= seq
    finally:
        conn.close()


def test_facts_ahead_of_the_log_start_again(data_dir: Path) -> None:
    """A cursor beyond the log (facts newer than a restored log) is not trusted: the facts are folded anew."""
    conn = connect(data_dir / "qms.sqlite3")
    try:
        seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        facts.catch_up(conn)
        conn.execute("UPDATE facts_cursor SET seq = ? WHERE id = 1", (seq + 50,))
        conn.execute(
            "INSERT INTO ticket_facts (ticket_id, sort_key, service_id, priority, channel, status, fact, source)"
            " VALUES ('ghost', '|', 'teller', 0, 'walk_in', 'done', x'7b7d', x'7b7d')"
        )
        assert facts.catch_up(conn) == seq
        assert facts.cursor(conn) == seq
        assert conn.execute("SELECT count(*) FROM ticket_facts WHERE ticket_id = 'ghost'").fetchone()[0] == 0
        conn.execute("COMMIT")
    finally:
        conn.close()


def _served_branch(data_dir: Path) -> None:
    """A demo branch with a few tickets taken and served, its writer stopped."""
    seed_demo(data_dir)
    service = QueueService(data_dir)
    service.start()
    try:
        for i in range(4):
            service.execute(c.Enqueue(service_id="teller" if i % 2 else "cs"))
        called = service.execute(c.CallNext(counter_id="1")).response["ticket"]
        service.execute(c.Start(ticket_id=called["ticket_id"], counter_id="1"))
        service.execute(c.Complete(ticket_id=called["ticket_id"], counter_id="1"))
        service.submit_store(facts.catch_up).result(timeout=30)
    finally:
        service.stop()


def test_qms_edge_rebuild_refolds_the_facts(tmp_path: Path) -> None:
    """`qms-edge rebuild` (appliance stopped) rebuilds the report facts with the projections: damaged rows and a
    cursor moved on come back byte-identical."""
    data_dir = tmp_path / "data"
    _served_branch(data_dir)
    conn = connect(data_dir / "qms.sqlite3")
    try:
        good = _rows(conn)
        assert len(good) == 4
        conn.execute("UPDATE ticket_facts SET wait_seconds = 9999, fact = '{}'")
        conn.execute("DELETE FROM ticket_fact_csv")
    finally:
        conn.close()
    done = run_cli("rebuild", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "report facts refolded" in done.stdout
    assert "(4 corrected)" in done.stdout
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        assert _rows(conn) == good
        assert conn.execute("SELECT count(*) FROM ticket_fact_csv").fetchone()[0] == 4
    finally:
        conn.close()


@contextmanager
def _served_facts(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, date]]:
    """A served branch's store, open for writing, and the business day of its facts; closed on exit."""
    data_dir = tmp_path / "data"
    _served_branch(data_dir)
    conn = connect(data_dir / "qms.sqlite3")
    try:
        yield conn, date.fromisoformat(conn.execute("SELECT min(business_date) FROM ticket_facts").fetchone()[0])
    finally:
        conn.close()


def test_retention_drops_old_facts_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Facts of tickets created more than the retention's days ago go (with their CSV records); 0 keeps all; a bad
    setting is refused with its name."""
    with _served_facts(tmp_path) as (conn, day):
        conn.execute("BEGIN IMMEDIATE")
        assert facts.prune(conn, day + timedelta(days=399), 400) == 0  # 400 days: that day is still kept
        assert facts.prune(conn, day + timedelta(days=500), 0) == 0  # 0: keep everything
        assert facts.prune(conn, day + timedelta(days=400), 400) == 4
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM ticket_facts").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ticket_fact_csv").fetchone()[0] == 0
    monkeypatch.setenv(facts.RETENTION_ENV, "30")
    assert facts.retention_days() == 30
    monkeypatch.delenv(facts.RETENTION_ENV)
    assert facts.retention_days() == facts.DEFAULT_RETENTION_DAYS
    monkeypatch.setenv(facts.RETENTION_ENV, "a year")
    with pytest.raises(ValueError, match=facts.RETENTION_ENV):
        facts.retention_days()


def _check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("rebuild", "--check", "--data-dir", str(data_dir))


def test_qms_edge_rebuild_check_compares_the_facts_and_names_the_first_difference(tmp_path: Path) -> None:
    """`rebuild --check` folds the log again beside the live facts (writing nothing): identical facts pass; an
    altered value, an altered fact document, a missing row and a stray CSV record each fail with the first ticket
    that differs; the altered row is still there afterwards."""
    data_dir = tmp_path / "data"
    _served_branch(data_dir)
    ok = _check(data_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "projections identical; report facts of 4 tickets identical" in ok.stdout
    conn = connect(data_dir / "qms.sqlite3")
    try:
        first, second = [r[0] for r in conn.execute("SELECT ticket_id FROM ticket_facts ORDER BY sort_key LIMIT 2")]
        served = conn.execute("SELECT ticket_id, wait_seconds FROM ticket_facts WHERE status = 'done'").fetchone()
        conn.execute("UPDATE ticket_facts SET wait_seconds = 9999 WHERE ticket_id = ?", (served[0],))
        altered = _check(data_dir)
        assert altered.returncode == 1, altered.stdout
        assert f"report fact differs: ticket {served[0]}: wait_seconds is 9999.0 here, {served[1]!r} from the log" \
            in altered.stdout  # fmt: skip
        assert "1 of 4 tickets' report facts differ from the log" in altered.stderr
        assert conn.execute("SELECT wait_seconds FROM ticket_facts WHERE ticket_id = ?", (served[0],)).fetchone() == (
            9999,
        )  # compared only: nothing rewritten
        conn.execute("UPDATE ticket_facts SET wait_seconds = ? WHERE ticket_id = ?", (served[1], served[0]))
        fact = conn.execute("SELECT fact FROM ticket_facts WHERE ticket_id = ?", (second,)).fetchone()[0]
        conn.execute("UPDATE ticket_facts SET fact = ? WHERE ticket_id = ?",
                     (fact.replace(b'"channel":"walk_in"', b'"channel":"kiosk"'), second))  # fmt: skip
        assert "fact.channel is 'kiosk' here, 'walk_in' from the log" in _check(data_dir).stdout
        conn.execute("UPDATE ticket_facts SET fact = ? WHERE ticket_id = ?", (fact, second))
        assert _check(data_dir).returncode == 0
        conn.execute("DELETE FROM ticket_facts WHERE ticket_id = ?", (first,))
        missing = _check(data_dir)
        assert f"ticket {first}: no fact row here, the log has one" in missing.stdout
        assert "1 of 4 tickets' report facts differ" in missing.stderr
    finally:
        conn.close()
    fixed = run_cli("rebuild", "--data-dir", str(data_dir))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    conn = connect(data_dir / "qms.sqlite3")
    try:
        conn.execute("UPDATE ticket_fact_csv SET csv_comma = 'x' WHERE ticket_id = ?", (second,))
        assert f"ticket {second}: its CSV record differs from the log's" in _check(data_dir).stdout
    finally:
        conn.close()


def test_facts_the_retention_dropped_are_not_a_difference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retention deletes old facts while the log keeps the tickets: `rebuild --check` does not count them."""
    with _served_facts(tmp_path) as (conn, day):
        conn.execute("BEGIN IMMEDIATE")
        assert facts.prune(conn, day + timedelta(days=1), 1) == 4  # a one-day retention, run the next day
        conn.execute("COMMIT")
        found = fact_check.check(conn, day + timedelta(days=1), 1)
        assert (found.differing, found.first) == (0, None)
        kept = fact_check.check(conn, day + timedelta(days=1), 0)  # keeping everything, the rows are missing
        assert kept.differing == 4
        assert kept.first is not None
        assert kept.first.endswith("no fact row here, the log has one")
