"""Approvals (US-ADMIN-006) at the store: with approvals on, a change becomes a pending request with its diff, the
requester cannot decide it, a second person rejects it, and an undecided one expires after 48 hours; every step in
the audit chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa

from cloud.admin.audit import Filters, entries, verify
from cloud.admin.config_edit import (
    DecisionRefused,
    decide,
    expire_requests,
    list_requests,
    running_document,
    set_approvals,
    submit,
)
from cloud.admin.tables import change_requests
from cloud.apply import Incoming, apply_batch
from cloud.store import config_versions, create_store_engine
from sync.contract_config import Service
from tests.cloud.branch_events import make_branch_events, subject


def test_a_request_waits_is_decided_by_another_person_or_expires(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    log = make_branch_events(tmp_path / "edge", "jkt-sudirman", tickets=4)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    with engine.begin() as conn:
        set_approvals(conn, "acme", True, actor="ana", source_ip="10.1.1.1")
        running = running_document(conn, "acme", "jkt-sudirman")
    assert running is not None
    edited = msgspec.structs.replace(
        running, services=[*running.services, Service(id="forex", name="Valas", prefix="V")]
    )

    def ask() -> str:
        outcome = asyncio.run(
            submit(engine, None, "acme", "jkt-sudirman", edited, actor="ana", source_ip=None, what="service forex")
        )
        assert outcome.distributed is None
        assert outcome.request_id
        return outcome.request_id

    first, second = ask(), ask()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(config_versions)).scalar_one() == 0
        listed = {r["id"]: r for r in list_requests(conn, frozenset({"acme"}))}
        assert list_requests(conn, frozenset({"beta"})) == []
    assert any('"id": "forex"' in line for line in listed[first]["diff"])
    with pytest.raises(DecisionRefused, match="own_request"):
        asyncio.run(decide(engine, None, first, approve=False, actor="ana", source_ip=None, tenants=None))
    with pytest.raises(LookupError):
        asyncio.run(decide(engine, None, first, approve=False, actor="gus", source_ip=None, tenants=frozenset({"x"})))
    asyncio.run(decide(engine, None, first, approve=False, actor="budi", source_ip=None, tenants=frozenset({"acme"})))
    with pytest.raises(DecisionRefused, match="status_rejected"):
        asyncio.run(decide(engine, None, first, approve=False, actor="budi", source_ip=None, tenants=None))

    with engine.begin() as conn:
        assert expire_requests(conn, datetime.now(UTC) + timedelta(hours=47)) == 0
        assert expire_requests(conn, datetime.now(UTC) + timedelta(hours=49)) == 1
        status = dict(conn.execute(sa.select(change_requests.c.id, change_requests.c.status)).all())
        trail, _ = entries(conn, Filters(), None)
    assert status == {first: "rejected", second: "expired"}
    actions = [e.action for e in trail if e.source == "hub"]
    assert actions.count("config.request") == 2
    for action in ("tenant.approvals", "config.reject", "config.request_expired"):
        assert action in actions
    assert verify(engine).ok
    engine.dispose()
