"""The people ahead the triggers put into each message (one ranking of the waiting queue per batch): a new ticket's
"created" message counts everyone ahead in its service, however far back it is and whichever batch brought the
others; "N to go" is owed once a ticket is within the threshold, with its place then. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cloud.notify.tables import outbox
from cloud.store import create_store_engine
from tests.cloud.notify.branch import Branch, use_email

THRESHOLD = 3  # the default "N to go"


def _rows(engine: sa.Engine, trigger: str) -> dict[str, dict[str, Any]]:
    """ticket -> (status, reason, people ahead) of its outbox row for `trigger`."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).where(outbox.c.trigger == trigger)).mappings().all()
    return {r["ticket_id"]: {"status": r["status"], "reason": r["reason"],
                             "ahead": json.loads(r["vars"])["people_ahead"]} for r in rows}  # fmt: skip


def test_people_ahead_in_created_and_to_go_messages(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    use_email(engine, {"host": "127.0.0.1", "port": 2525, "sender": "qms@example.co.id"})
    branch = Branch(tmp_path / "edge", engine)
    try:
        mail = {"email": "nasabah@example.co.id", "notify_opt_in": True}
        teller = [branch.enqueue("teller", **mail) for _ in range(6)]
        cs = [branch.enqueue("cs", **mail) for _ in range(2)]
        branch.ship()
        teller += [branch.enqueue("teller", **mail) for _ in range(2)]  # a later batch: the first six are ahead
        branch.ship()

        created = _rows(engine, "ticket.created")
        assert {t: created[t]["ahead"] for t in teller} == {t: i for i, t in enumerate(teller)}
        assert {t: created[t]["ahead"] for t in cs} == {t: i for i, t in enumerate(cs)}
        to_go = _rows(engine, "ticket.to_go")  # near the front when created: its created message said so
        assert set(to_go) == {*teller[: THRESHOLD + 1], *cs}
        assert {row["reason"] for row in to_go.values()} == {"near_front_at_creation"}

        served = {branch.call_next("1") for _ in range(2)}  # two teller tickets leave the queue
        assert served == set(teller[:2])
        branch.ship()
        to_go = _rows(engine, "ticket.to_go")
        moved_up = {t: to_go[t] for t in teller[THRESHOLD + 1 : THRESHOLD + 3]}
        assert moved_up == {teller[4]: {"status": "pending", "reason": None, "ahead": 2},
                            teller[5]: {"status": "pending", "reason": None, "ahead": 3}}  # fmt: skip
        assert teller[6] not in to_go
    finally:
        branch.stop()
        engine.dispose()
