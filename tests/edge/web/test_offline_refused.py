"""Offline kiosk tickets the appliance refuses never vanish: each is recorded (once, durably) before the kiosk drops
it, shown to supervisors with its number, service, issue time and reason in words, and turned into a real ticket or
dismissed from the floor page; `GET /api/v1/kiosk/offline-refused` lists them; `qms-edge status`/`doctor` mention
the ones not handled."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient

from edge import doctor
from edge.service import QueueService
from edge.web.app import Settings, create_app
from tests.edge.web.conftest import Api, assert_problem
from tests.support.appliance import event_rows, run_cli

KIOSK = "admin"  # a kiosk route accepts an admin (the demo data dir has no device account)
FETCH = {"x-requested-with": "fetch"}


def lease(api: Api, service_id: str = "teller") -> dict[str, Any]:
    """A lease for the demo kiosk."""
    r = api.client.post("/kiosk/api/leases", json={"service_id": service_id}, headers=api.h(KIOSK))
    assert r.status_code == 201, r.text
    return r.json()


def offline_item(block: dict[str, Any], index: int = 0, **extra: Any) -> dict[str, Any]:
    number = block["numbers"][index]
    return {"temp_id": number["temp_id"], "lease_id": block["lease_id"], "seq_no": number["seq_no"],
            "issued_at": datetime.now(UTC).isoformat(), "lang": "en", **extra}  # fmt: skip


def reconcile(api: Api, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = api.client.post("/kiosk/api/offline", json={"tickets": list(items)}, headers=api.h(KIOSK))
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def refused(api: Api, user: str = "supervisor", **params: str) -> dict[str, Any]:
    r = api.get("/kiosk/offline-refused", user=user, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def next_day(api: Api) -> None:
    """Move the appliance into the next business day (a ticket of the new day rolls it, dropping the leases)."""
    api.clock.advance(24 * 3600)
    api.enqueue("cs")


class Supervisor:
    """A signed-in supervisor's browser session over the TestClient."""

    def __init__(self, client: TestClient[Any], lang: str = "id") -> None:
        self.client = client
        r = client.post("/staff/login", data={"username": "supervisor", "password": "demo"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        if lang != "id":
            client.get(f"/staff/lang/{lang}", follow_redirects=False)
        page = client.get("/staff/supervisor/")
        self.csrf = re.search(r'name="csrf-token" content="([0-9a-f]*)"', page.text)[1]  # type: ignore[index]

    def floor(self) -> str:
        r = self.client.get("/staff/supervisor/")
        assert r.status_code == 200
        return r.text

    def act(self, action: str, temp_id: str) -> httpx.Response:
        return self.client.post("/staff/offline-refused/act", headers=FETCH,
                                data={"action": action, "temp_id": temp_id, "csrf_token": self.csrf})  # fmt: skip


def test_a_lease_of_yesterday_is_refused_recorded_once_and_the_kiosk_may_drop_it(api: Api) -> None:
    block = lease(api)
    item = offline_item(block)
    next_day(api)
    (result,) = reconcile(api, item)
    assert result == {"temp_id": item["temp_id"], "ok": False, "code": "lease_not_found", "retry": False,
                      "recorded": True}  # fmt: skip
    assert reconcile(api, item) == [result]  # the kiosk sends it again: same answer, still one record
    body = refused(api)
    assert body["open"] == 1
    (row,) = body["tickets"]
    assert (row["ticket_number"], row["service_id"], row["service_name"]) == ("A901", "teller", "Teller")
    assert row["attempts"] == 2
    assert row["state"] == "open"
    assert row["device_id"] == KIOSK
    assert row["issued_local"].endswith("+07:00")  # the branch's zone (Asia/Jakarta)
    assert "earlier business day" in row["reason"]
    assert not [e for e in api.events("ticket.created") if e.get("request_id") == item["temp_id"]]


def remove_service(api: Api, service_id: str) -> None:
    """PUT /config without the service (and without it on every counter)."""
    doc, etag = api.config()
    doc["services"] = [s for s in doc["services"] if s["id"] != service_id]
    for counter in doc["counters"]:
        counter["services"] = [s for s in counter["services"] if s != service_id]
    doc["counters"] = [c for c in doc["counters"] if c["services"]]
    r = api.put("/config", doc, headers={"If-Match": etag})
    assert r.status_code == 200, r.text


def test_a_removed_service_keeps_its_name_and_cannot_be_reissued(api: Api) -> None:
    block = lease(api, "cs")
    remove_service(api, "cs")
    (result,) = reconcile(api, offline_item(block))
    assert (result["code"], result["recorded"]) == ("unknown_service", True)
    (row,) = refused(api, lang="id")["tickets"]
    assert (row["ticket_number"], row["service_id"]) == (block["numbers"][0]["ticket_number"], "cs")
    assert row["service_name"] == "Layanan Nasabah"  # from the configuration that still had it
    assert row["reason"] == "Layanan tiket ini sudah dihapus dari konfigurasi."
    staff = Supervisor(api.client)
    r = staff.act("issue", row["temp_id"])
    assert (r.status_code, r.json()["ok"]) == (422, False), r.text  # the engine refuses the gone service
    assert refused(api)["open"] == 1  # still waiting: dismiss is the way out
    assert staff.act("dismiss", row["temp_id"]).json()["ok"]
    assert refused(api)["open"] == 0


def test_a_supervisor_issues_a_real_ticket_for_it_once(api: Api, data_dir: Path) -> None:
    block = lease(api)
    item = offline_item(block, 1, lang="id")
    next_day(api)
    reconcile(api, item)
    staff = Supervisor(api.client)
    floor = staff.floor()
    assert "Tiket offline ditolak" in floor
    assert 'data-refused="A902"' in floor
    assert "Nomor ini dipinjam untuk hari kerja sebelumnya" in floor
    r = staff.act("issue", item["temp_id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"], body
    new = re.search(r"Tiket (\S+) diterbitkan untuk tiket offline ditolak A902", body["message"])
    assert new, body["message"]
    tickets = {t["ticket_number"]: t for t in api.get("/tickets").json()["tickets"]}
    ticket = tickets[new[1]]
    assert (ticket["service_id"], ticket["status"], ticket["channel"], ticket["lang"]) == (
        "teller", "waiting", "front_desk", "id")  # fmt: skip
    again = staff.act("issue", item["temp_id"])
    assert (again.status_code, again.json()["ok"]) == (409, False)  # already handled: no second ticket
    assert len([t for t in api.get("/tickets").json()["tickets"] if t["service_id"] == "teller"]) == 1
    (row,) = refused(api, state="issued")["tickets"]
    assert (row["resolved_by"], row["ticket_id"], row["new_number"]) == ("supervisor", ticket["ticket_id"], new[1])
    assert refused(api)["tickets"] == []
    assert 'data-refused="A902"' not in staff.floor()
    conn = sqlite3.connect(f"file:{data_dir / 'qms.sqlite3'}?mode=ro", uri=True)
    actions = conn.execute("SELECT action, target, detail FROM audit WHERE action LIKE 'offline_%'").fetchall()
    conn.close()
    assert [(a, t) for a, t, _ in actions] == [("offline_issue", f"offline:{item['temp_id']}")]
    detail = json.loads(actions[0][2])
    assert detail["offline_number"] == "A902"
    assert (detail["ticket_id"], detail["new_number"]) == (ticket["ticket_id"], new[1])  # the ticket it became
    r = api.client.post("/staff/login", data={"username": "admin", "password": "demo"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    for lang, label in (("id", "nomor tiket baru"), ("en", "new ticket number")):
        api.client.get(f"/staff/lang/{lang}", follow_redirects=False)
        (line,) = [x for x in api.client.get("/staff/admin/audit.csv").text.splitlines() if "offline:" in x]
        assert f"{label}: {new[1]}" in line, line


def test_the_floor_speaks_english_too_and_agents_are_refused(api: Api) -> None:
    block = lease(api)
    item = offline_item(block)
    next_day(api)
    reconcile(api, item)
    floor = Supervisor(api.client, lang="en").floor()
    assert "Offline tickets refused" in floor
    assert "The number was leased for an earlier business day" in floor
    assert_problem(api.get("/kiosk/offline-refused", user="agent1"), 403, "forbidden")
    assert_problem(api.get("/kiosk/offline-refused", params={"state": "lost"}), 400, "invalid_parameter")


def test_the_same_temp_id_sent_again_with_other_details_is_the_ticket_it_became(api: Api) -> None:
    """A kiosk that reconciled a ticket and sends it again with other details (a language since dropped) gets the
    ticket it became, not a refusal: the customer's number is in the queue."""
    block = lease(api)
    item = offline_item(block)
    (first,) = reconcile(api, item)
    assert first["ok"], first
    (again,) = reconcile(api, {**item, "lang": "id"})
    assert (again["ok"], again["ticket_id"]) == (True, first["ticket_id"])
    assert refused(api)["open"] == 0


def test_a_temp_id_that_does_not_name_its_number_is_recorded(api: Api) -> None:
    block = lease(api)
    item = {**offline_item(block), "temp_id": "off-somewhere-else-1"}
    (result,) = reconcile(api, item)
    assert (result["code"], result["retry"], result["recorded"]) == ("temp_id_mismatch", False, True)
    (row,) = refused(api)["tickets"]
    assert (row["temp_id"], row["ticket_number"]) == ("off-somewhere-else-1", "A901")


def test_refused_tickets_survive_a_restart_and_status_and_doctor_say_so(data_dir: Path) -> None:
    from tests.support.appliance import mint_token

    headers = {"Authorization": f"Bearer {mint_token(data_dir, 'admin')}"}
    item: dict[str, Any] = {}
    with TestClient(create_app(Settings(data_dir=data_dir), service=QueueService(data_dir))) as client:
        block = client.post("/kiosk/api/leases", json={"service_id": "teller"}, headers=headers).json()
        item = {**offline_item(block), "temp_id": f"off-{block['lease_id']}-0"}  # refused: temp_id_mismatch
        r = client.post("/kiosk/api/offline", json={"tickets": [item]}, headers=headers)
        assert r.json()["results"][0]["recorded"], r.text
    with TestClient(create_app(Settings(data_dir=data_dir), service=QueueService(data_dir))) as client:
        listed = client.get("/api/v1/kiosk/offline-refused", headers=headers).json()
        assert [t["temp_id"] for t in listed["tickets"]] == [item["temp_id"]]
    finding = doctor.check_offline_refused(data_dir)
    assert (finding.status, finding.message) == ("warn", "1 offline kiosk ticket(s) refused and not yet handled")
    out = run_cli("status", "--data-dir", str(data_dir))
    assert "offline tickets refused: 1 not yet handled" in out.stdout, out.stdout + out.stderr
    assert event_rows(data_dir, "SELECT count(*) FROM events WHERE type = 'ticket.created'") == [(0,)]


def test_a_refusal_that_cannot_be_recorded_stays_on_the_kiosk(api: Api) -> None:
    """Storage trouble while recording (here: the table is gone) answers `retry`: the kiosk keeps the ticket."""
    block = lease(api)
    item = offline_item(block)
    next_day(api)
    service = api.client.app.state["appliance"].service
    service.submit_store(lambda conn: conn.execute("DROP TABLE offline_refused")).result(10)
    (result,) = reconcile(api, item)
    assert (result["ok"], result["code"], result["retry"], result["recorded"]) == (
        False, "lease_not_found", True, False)  # fmt: skip


# --- the JSON actions for integrators, and the audit viewer's words for them -------------------------------------


def refused_action(api: Api, temp_id: str, action: str, user: str = "supervisor", **params: str) -> httpx.Response:
    return api.client.post(f"/api/v1/kiosk/offline-refused/{temp_id}/{action}", params=params, headers=api.h(user))


def test_an_integrator_issues_once_and_dismisses_by_json(api: Api) -> None:
    block = lease(api)
    first, second = offline_item(block, 0), offline_item(block, 1, lang="id")
    next_day(api)
    reconcile(api, first, second)
    assert_problem(refused_action(api, first["temp_id"], "issue", user="agent1"), 403, "forbidden")
    assert_problem(refused_action(api, "off-nobody", "issue"), 404, "offline_refused_not_found")
    assert_problem(refused_action(api, "off-nobody", "dismiss"), 404, "offline_refused_not_found")

    r = refused_action(api, first["temp_id"], "issue")
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    ticket = r.json()
    assert (ticket["service_id"], ticket["status"], ticket["channel"], ticket["lang"]) == (
        "teller", "waiting", "front_desk", "en")  # fmt: skip
    again = refused_action(api, first["temp_id"], "issue", user="admin")
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true"), again.text
    assert again.json()["ticket_id"] == ticket["ticket_id"]
    assert len([t for t in api.get("/tickets").json()["tickets"] if t["service_id"] == "teller"]) == 1
    assert Supervisor(api.client).act("issue", first["temp_id"]).status_code == 409  # the floor sees it handled
    assert_problem(refused_action(api, first["temp_id"], "dismiss"), 409, "offline_refused_handled")

    dismissed = refused_action(api, second["temp_id"], "dismiss", lang="id")
    assert dismissed.status_code == 200, dismissed.text
    row = dismissed.json()
    assert (row["state"], row["resolved_by"], row["ticket_number"]) == ("dismissed", "supervisor", "A902")
    assert row["reason"].startswith("Nomor ini dipinjam")
    assert_problem(refused_action(api, second["temp_id"], "dismiss"), 409, "offline_refused_handled")
    assert_problem(refused_action(api, second["temp_id"], "issue"), 409, "offline_refused_handled")
    assert refused(api)["open"] == 0
    (issued,) = refused(api, state="issued")["tickets"]
    assert (issued["ticket_id"], issued["new_number"]) == (ticket["ticket_id"], ticket["ticket_number"])

    rows = audit_rows(api)
    assert [(a, t) for a, t, _ in rows] == [("offline_issue", f"offline:{first['temp_id']}"),
                                             ("offline_dismiss", f"offline:{second['temp_id']}")]  # fmt: skip
    assert all('"via":"api"' in d.replace(" ", "") for _, _, d in rows)
    issue_detail = json.loads(rows[0][2])
    assert (issue_detail["ticket_id"], issue_detail["new_number"]) == (ticket["ticket_id"], ticket["ticket_number"])
    assert "ticket_id" not in json.loads(rows[1][2])  # a dismissal made no ticket


def audit_rows(api: Api) -> list[tuple[str, str, str]]:
    service = api.client.app.state["appliance"].service
    found: list[tuple[str, str, str]] = service.read(lambda conn: conn.execute(
        "SELECT action, target, detail FROM audit WHERE action LIKE 'offline_%' ORDER BY id").fetchall())  # fmt: skip
    return found


def test_the_audit_viewer_labels_the_offline_number_and_the_refusal(api: Api) -> None:
    block = lease(api)
    item = offline_item(block)
    next_day(api)
    reconcile(api, item)
    assert Supervisor(api.client).act("dismiss", item["temp_id"]).json()["ok"]
    r = api.client.post("/staff/login", data={"username": "admin", "password": "demo"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    words = {
        "id": ("nomor tiket offline: A901", "alasan penolakan: Nomor ini dipinjam untuk hari kerja sebelumnya"),
        "en": ("offline ticket number: A901", "refusal reason: The number was leased for an earlier business day"),
    }
    for lang, expected in words.items():
        api.client.get(f"/staff/lang/{lang}", follow_redirects=False)
        csv = api.client.get("/staff/admin/audit.csv")
        assert csv.status_code == 200, csv.text
        (line,) = [x for x in csv.text.splitlines() if "offline_dismiss" in x or "offline:" in x]
        for text in expected:
            assert text in line, line
        assert "(lease_not_found)" in line
        page = api.client.get("/staff/admin/audit")
        label = expected[0].split(":")[0]
        assert f'<span class="kv-key">{label}</span> <strong>A901</strong>' in page.text
        assert '<span class="kv-key">offline_number</span>' not in page.text  # the raw key, as before


def test_a_lease_this_appliance_never_granted_is_said_so_with_no_made_up_number(api: Api) -> None:
    """A lease id the appliance never knew (not yesterday's: none of its days): the engine's `lease_not_found` is kept
    as `lease_unknown`, whose words do not say "an earlier business day", and its number, which nobody can know here,
    is "—" on the floor, in the API and in the audit row (before: "#1", a number nobody holds)."""
    item: dict[str, Any] = {"temp_id": "off-nowhere-1", "lease_id": "nowhere", "seq_no": 1, "lang": "en",
                            "issued_at": datetime.now(UTC).isoformat()}  # fmt: skip
    (result,) = reconcile(api, item)
    assert (result["code"], result["recorded"]) == ("lease_not_found", True)  # the kiosk's answer is the engine's
    (row,) = refused(api, lang="en")["tickets"]
    assert (row["code"], row["ticket_number"], row["service_id"]) == ("lease_unknown", None, None)
    assert row["reason"].startswith("The kiosk's number range is unknown to this appliance"), row["reason"]
    assert "earlier business day" not in row["reason"]
    assert refused(api, lang="id")["tickets"][0]["reason"].startswith("Blok nomor kios ini tidak dikenal appliance ini")
    staff = Supervisor(api.client, lang="en")
    floor = staff.floor()
    row_html = re.search(r'<tr data-refused="([^"]*)" data-code="lease_unknown">(.*?)</tr>', floor, re.S)
    assert row_html, floor
    assert row_html[1] == "\u2014"
    assert "number range is unknown to this appliance" in row_html[2]
    assert "#1" not in row_html[2]
    assert staff.act("dismiss", item["temp_id"]).json()["ok"]
    ((action, _target, detail),) = audit_rows(api)
    assert action == "offline_dismiss"
    assert json.loads(detail)["offline_number"] == "\u2014"
    assert json.loads(detail)["refusal"] == "lease_unknown"
    r = api.client.post("/staff/login", data={"username": "admin", "password": "demo"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    for lang, words in (("en", "The kiosk's number range is unknown"), ("id", "Blok nomor kios ini tidak dikenal")):
        api.client.get(f"/staff/lang/{lang}", follow_redirects=False)
        (line,) = [x for x in api.client.get("/staff/admin/audit.csv").text.splitlines() if "offline_dismiss" in x]
        assert words in line, line
        assert "(lease_unknown)" in line
