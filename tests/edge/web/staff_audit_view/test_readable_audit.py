"""The audit viewer and its CSV speak in numbers and names, and config edits show what changed (issue 11)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from tests.edge.web.conftest import Api
from tests.edge.web.test_staff import Staff


def _counter_form(staff: Staff) -> dict[str, Any]:
    page = staff.client.get("/staff/admin/counters/1").text
    version = re.search(r'name="base_version" value="(\d+)"', page)
    assert version
    return {"csrf_token": staff.csrf, "old_id": "1", "id": "1", "name": "Loket Satu", "services": ["teller"],
            "area_id": "lantai-2", "active": "on", "base_version": version[1]}  # fmt: skip


def test_ticket_targets_show_numbers_and_config_edits_a_field_diff(client: Any, api: Api) -> None:
    ticket = api.enqueue("teller")
    sup = Staff(client)
    sup.login("supervisor")
    assert sup.intervene("cancel", ticket_id=ticket["ticket_id"], reason="left").json()["ok"] is True
    admin = Staff(client)
    admin.login("admin")
    r = admin.client.post("/staff/admin/config/counter", data=_counter_form(admin), follow_redirects=False)
    assert r.status_code == 303, r.text
    unknown = AuditEntry(actor="api", action="api_token_issued", detail={"n": 1})  # other parts add rows too
    service = client.app.state["appliance"].service
    service.submit_store(lambda conn: insert_audit(conn, unknown, datetime.now(UTC))).result(10)
    page = admin.client.get("/staff/admin/audit").text
    number = ticket["ticket_number"]
    assert f"Tiket {number}" in page
    assert f">ticket:{ticket['ticket_id']}" not in page  # the raw id only in a tooltip
    assert "Loket 1 \u2192 Loket Satu" in page  # field level: before -> after
    assert "Lantai 1 - Teller \u2192 Lantai 2 - Customer Service" in page  # names, not area ids
    assert "api_token_issued" in page  # an unknown action is shown as it is
    rows = list(csv.reader(io.StringIO(admin.client.get("/staff/admin/audit.csv").content.decode("utf-8-sig"))))
    header = rows[0]
    by_action = {row[header.index("action")]: row for row in rows[1:]}
    assert by_action["cancel"][header.index("target_name")] == f"Tiket {number}"
    assert "Nama: Loket 1 \u2192 Loket Satu" in by_action["config_counter"][header.index("details_text")]
