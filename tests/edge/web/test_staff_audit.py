"""The audit trail written by the single writer with its command, and the staff pages' catalogs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge import audit
from edge.audit import AuditEntry
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.service import QueueService
from edge.web.staff import REFUSALS
from edge.web.staff.i18n import DYNAMIC_MSGIDS, Translator, catalog
from edge.web.staff.render import MESSAGES, TEMPLATES

ENTRY = AuditEntry(actor="sup", role="supervisor", action="close_counter", target="counter:3", ip="10.0.0.9",
                   user_agent="pytest", detail={"status": "closed"})  # fmt: skip


@pytest.fixture
def service(data_dir: Path) -> QueueService:
    running = QueueService(data_dir)
    running.start()
    yield running  # type: ignore[misc]
    running.stop()


def _rows(service: QueueService) -> list[audit.AuditRecord]:
    return service.read(audit.search)  # type: ignore[no-any-return]


def test_an_audited_command_writes_its_entry_with_the_event_seq(service: QueueService) -> None:
    service.execute(c.SetPresence(actor="agent3", counter_id="3", status="available"))  # counters start closed
    outcome = service.submit(c.SetPresence(actor="sup", counter_id="3", status="closed"), audit=ENTRY).result(10)
    rows = _rows(service)
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor, row.action, row.target, row.ip, row.user_agent) == (
        "sup", "close_counter", "counter:3", "10.0.0.9", "pytest")  # fmt: skip
    assert row.detail == {"status": "closed"}
    assert row.seq == outcome.events[-1].seq
    assert row.at.tzinfo is not None


def test_a_refused_command_writes_no_entry(service: QueueService) -> None:
    with pytest.raises(DomainError):
        service.submit(c.SetPresence(actor="sup", counter_id="nope", status="closed"), audit=ENTRY).result(10)
    assert _rows(service) == []


def test_a_replayed_request_is_not_audited_twice(service: QueueService) -> None:
    cmd = c.SetPresence(actor="sup", counter_id="3", status="break", request_id="r-1")
    service.submit(cmd, audit=ENTRY).result(10)
    assert service.submit(cmd, audit=ENTRY).result(10).replayed
    assert len(_rows(service)) == 1


def test_the_audit_table_is_append_only(service: QueueService) -> None:
    service.submit(c.SetPresence(actor="sup", counter_id="3", status="break"), audit=ENTRY).result(10)
    with pytest.raises(Exception, match="append-only"):
        service.submit_store(lambda conn: conn.execute("UPDATE audit SET actor = 'x'")).result(10)
    with pytest.raises(Exception, match="append-only"):
        service.submit_store(lambda conn: conn.execute("DELETE FROM audit")).result(10)


def test_search_filters_by_range_actor_and_action(service: QueueService) -> None:
    now = datetime.now(UTC)

    def seed(conn: object) -> None:
        audit.insert(conn, ENTRY, now - timedelta(days=2))  # type: ignore[arg-type]
        audit.insert(conn, AuditEntry(actor="admin", action="config_service"), now)  # type: ignore[arg-type]

    service.submit_store(seed).result(10)
    assert [r.actor for r in service.read(lambda conn: audit.search(conn, since=now - timedelta(hours=1)))] == ["admin"]
    assert [r.action for r in service.read(lambda conn: audit.search(conn, actor="sup"))] == ["close_counter"]
    assert [r.actor for r in service.read(lambda conn: audit.search(conn, action="config_service"))] == ["admin"]
    assert service.read(lambda conn: audit.search(conn, until=now - timedelta(days=3))) == []
    assert service.read(audit.known_values) == (["admin", "sup"], ["close_counter", "config_service"])


def _template_msgids() -> set[str]:
    found: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'_\("([^"]+)"', text)) | set(re.findall(r"_\('([^']+)'", text))
    return found


def test_every_message_of_the_staff_pages_has_an_indonesian_translation() -> None:
    msgids = _template_msgids() | set(MESSAGES.values()) | set(REFUSALS.values()) | set(DYNAMIC_MSGIDS)
    assert len(msgids) > 150
    missing = sorted(m for m in msgids if m not in catalog("id"))
    assert missing == []


def test_placeholders_survive_translation() -> None:
    for msgid, text in catalog("id").items():
        assert sorted(re.findall(r"%\((\w+)\)s", msgid)) == sorted(re.findall(r"%\((\w+)\)s", text)), msgid
    assert Translator("id")("SLA %(m)s min", m=10) == "SLA 10 mnt"
    assert Translator("en")("break") == "Break"
    assert Translator("xx").lang == "id"
