"""The fact projection: rebuilt from the log it gives the same rows; it follows commits and other processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.analytics import facts
from edge.store.db import connect
from tests.edge.analytics.conftest import Api
from tests.edge.analytics.test_reports_api import _day


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
