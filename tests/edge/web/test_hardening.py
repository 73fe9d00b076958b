"""The API under attack (issue 11): malformed bodies, anchored patterns, replay headers, resume points, proxies,
access to replication, the audit trail of API commands and sign-ins, and the business-day ticket list."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.auth import LoginThrottle
from edge.web import schemas
from edge.web.kiosk import schemas as kiosk_schemas
from tests.edge.web.conftest import API, Api, Clock, assert_problem
from tests.edge.web.test_events import Stream, _client, _post, _seq
from tests.support.appliance import RunningAppliance, run_cli

# ---- malformed bodies: one 400 for every route ------------------------------------------------------------------

MALFORMED = {
    "invalid_utf8": (b'{"username": "\xff\xfe", "password": "x"}', "application/json"),
    "nested_1000": (b"[" * 1000 + b"]" * 1000, "application/json"),
    "latin1_declared": ('{"username": "é", "password": "x"}'.encode("latin-1"), "application/json; charset=iso-8859-1"),
}


def _body_routes(api: Api) -> list[tuple[str, str, bool]]:
    """Every POST/PUT route the OpenAPI document declares, with real ids filled in, and whether it takes a body."""
    schema = api.client.get("/schema/openapi.json").json()
    ticket = api.enqueue("teller")["ticket_id"]
    ids = {"ticket_id": ticket, "counter_id": "1", "device_id": "kiosk-1", "temp_id": "off-1-1"}
    return [
        (method.upper(), path.format(**ids), "requestBody" in item[method])
        for path, item in schema["paths"].items()
        for method in ("post", "put")
        if method in item
    ]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_every_malformed_body_is_a_400_problem_on_every_route(api: Api, kind: str) -> None:
    body, content_type = MALFORMED[kind]
    routes = _body_routes(api)
    assert {("POST", "/api/v1/auth/token", True), ("POST", "/api/v1/devices/pair", True)} <= set(routes)
    for method, path, takes_body in routes:
        r = api.client.request(method, path, content=body, headers={**api.h("admin"), "content-type": content_type})
        assert r.status_code < 500, f"{method} {path} {kind}: {r.status_code} {r.text}"
        if takes_body:
            assert r.status_code == 400, f"{method} {path} {kind}: {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json"), (path, r.text)
            assert r.json()["code"] in ("malformed_body", "invalid_body"), (path, r.text)
    for path in ("/auth/token", "/devices/pair", "/tickets"):  # without a token too: the body is refused first
        r = api.client.post(f"{API}{path}", content=body, headers={"content-type": content_type})
        assert r.status_code in (400, 401), r.text
    assert_problem(api.client.post(f"{API}/auth/token", content=body, headers={"content-type": content_type}),
                   400, "malformed_body")  # fmt: skip


def test_900_nested_brackets_are_an_invalid_body_not_a_crash(api: Api) -> None:
    r = api.client.post(f"{API}/auth/token", content=b"[" * 900 + b"]" * 900,
                        headers={"content-type": "application/json"})  # fmt: skip
    assert_problem(r, 400, "invalid_body")


# ---- patterns match whole values --------------------------------------------------------------------------------

CONTROL = st.sampled_from(["\n", "\r", "\x00", "\x1b", "\r\n", "\t\n"])
ANCHORED = {
    "phone": (schemas.CreateTicket, {"service_id": "teller"}, st.from_regex(r"\A\+?[0-9]{8,15}\Z")),
    "email": (schemas.CreateTicket, {"service_id": "teller"}, st.from_regex(r"\A[a-z0-9.]{1,20}@[a-z0-9.]{1,20}\Z")),
    "lang": (schemas.CreateTicket, {"service_id": "teller"}, st.from_regex(r"\A[a-z]{2}\Z")),
    "request_id": (schemas.CreateTicket, {"service_id": "teller"}, st.from_regex(r"\A[A-Za-z0-9_.:-]{1,40}\Z")),
    "service_id": (schemas.CreateTicket, {}, st.from_regex(r"\A[a-z0-9-]{1,20}\Z")),
    "customer_ref": (kiosk_schemas.KioskTicket, {"service_id": "t", "request_id": "r"},
                     st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9 ./-]{0,20}\Z")),
    "counter_id": (schemas.CounterCommand, {}, st.from_regex(r"\A[0-9a-z]{1,10}\Z")),
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(ANCHORED)), data=st.data(), control=CONTROL, at_end=st.booleans())
def test_a_valid_value_with_a_control_character_is_refused(field: str, data: Any, control: str, at_end: bool) -> None:
    struct, base, values = ANCHORED[field]
    value = data.draw(values)
    assert msgspec.convert({**base, field: value}, struct) is not None  # the clean value passes
    dirty = value + control if at_end else control + value
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**base, field: dirty}, struct)


def test_a_trailing_newline_is_refused_at_the_api_and_nothing_is_stored(api: Api) -> None:
    with api.unchanged():
        for field, value in (("phone", "081234567890\n"), ("email", "a@b.id\n"), ("lang", "en\n"),
                             ("request_id", "r-1\n")):  # fmt: skip
            assert_problem(api.post("/tickets", {"service_id": "teller", field: value}), 400, "invalid_body")


# ---- replays say so on every command route ------------------------------------------------------------------------


def test_replays_of_call_next_start_and_complete_carry_idempotent_replayed(api: Api) -> None:
    api.enqueue("teller")
    first = api.call_next("1", request_id="cn-1")
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    again = api.call_next("1", request_id="cn-1")
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    ticket = first.json()["ticket"]["ticket_id"]
    for action in ("start", "complete"):
        r1 = api.act(ticket, action, counter_id="1", request_id=f"{action}-1")
        assert r1.status_code == 200, r1.text
        assert "idempotent-replayed" not in r1.headers
        r2 = api.act(ticket, action, counter_id="1", request_id=f"{action}-1")
        assert r2.headers.get("idempotent-replayed") == "true", (action, r2.headers)
        assert r2.json() == r1.json()
    presence = api.put("/counters/1/presence", {"status": "busy", "request_id": "p-1"})
    assert "idempotent-replayed" not in presence.headers
    assert api.put("/counters/1/presence", {"status": "busy", "request_id": "p-1"}).headers["idempotent-replayed"]


# ---- 405 names what is allowed ------------------------------------------------------------------------------------


def test_a_405_carries_allow(api: Api) -> None:
    r = api.client.delete(f"{API}/tickets", headers=api.h("admin"))
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["allow"]
    assert "POST" in r.headers["allow"]


# ---- replication status: supervisors and admins only --------------------------------------------------------------


def test_agents_and_devices_cannot_read_replication(api: Api) -> None:
    assert_problem(api.get("/replication", user=None), 401, "unauthorized")
    assert_problem(api.get("/replication", user="agent1"), 403, "forbidden")
    assert api.get("/replication", user="supervisor").status_code == 200
    assert api.get("/replication", user="admin").status_code == 200


# ---- the audit trail of the API ------------------------------------------------------------------------------------


def _audit(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "qms.sqlite3") as conn:
        rows = conn.execute("SELECT actor, role, action, target, detail, ip, user_agent FROM audit ORDER BY id")
        keys = ("actor", "role", "action", "target", "detail", "ip", "user_agent")
        return [dict(zip(keys, r, strict=True)) | {"detail": json.loads(r[4])} for r in rows]


def test_api_sign_ins_and_privileged_commands_are_audited_routine_ones_are_not(api: Api, data_dir: Path) -> None:
    before = len(_audit(data_dir))
    ua = {"User-Agent": "probe/1.0"}
    assert api.post("/auth/token", {"username": "agent1", "password": "nope"}, user=None, headers=ua).status_code == 401
    assert api.post("/auth/token", {"username": "ghost", "password": "nope"}, user=None, headers=ua).status_code == 401
    assert api.post("/auth/token", {"username": "agent1", "password": "demo"}, user=None, headers=ua).status_code == 200
    _, t2, t3 = (api.enqueue("teller")["ticket_id"] for _ in range(3))
    called = api.call_next_ok("1", user="agent1")["ticket_id"]  # routine: in the event log with its actor
    api.act_ok(called, "start", user="agent1", counter_id="1")
    api.act_ok(called, "complete", user="agent1", counter_id="1")
    api.act_ok(t2, "cancel", user="agent1", counter_id="1", reason="left")  # an agent's cancel: audited
    api.act_ok(t3, "transfer", user="supervisor", to_service_id="cs")  # a supervisor's intervention
    doc, etag = api.config()
    assert api.put("/config", doc, headers={"If-Match": etag}).status_code == 200
    assert api.post("/devices", {"device_id": "kiosk-9", "type": "kiosk"}).status_code == 201
    rows = _audit(data_dir)[before:]
    actions = [(r["actor"], r["action"]) for r in rows]
    assert actions == [
        ("agent1", "login_failed"),
        ("ghost", "login_failed"),
        ("agent1", "login"),
        ("agent1", "cancel"),
        ("supervisor", "transfer"),
        ("admin", "config_replace"),
        ("admin", "device_add"),
    ], actions
    failed, unknown, ok = rows[0], rows[1], rows[2]
    assert failed["role"] == "agent"
    assert failed["detail"]["reason"] == "wrong_password"
    assert unknown["role"] is None
    assert unknown["detail"]["reason"] == "unknown_user"
    assert ok["user_agent"] == "probe/1.0"
    assert ok["detail"]["via"] == "api"
    assert all("nope" not in json.dumps(r) and "demo" not in json.dumps(r["detail"]) for r in rows)
    assert rows[3]["target"] == f"ticket:{t2}"
    assert rows[3]["detail"]["reason"] == "left"
    assert rows[4]["detail"]["to_service"] == "cs"


# ---- the ticket list is today's ----------------------------------------------------------------------------------


def _to_next_local_midnight(clock: Clock, tz: str) -> None:
    now = (datetime.now(ZoneInfo(tz)) + clock.offset).astimezone(ZoneInfo(tz))
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    clock.advance((midnight - now).total_seconds())


def test_after_local_midnight_the_list_shows_today_and_still_active_tickets(api: Api, clock: Clock) -> None:
    doc, _ = api.config()
    api.enqueue("teller")
    done = api.serve("1")  # yesterday's, finished
    waiting = api.enqueue("teller")  # yesterday's, still waiting
    yesterday = datetime.now(ZoneInfo(doc["timezone"])).date().isoformat()
    _to_next_local_midnight(clock, doc["timezone"])
    listed = api.get("/tickets").json()
    ids = [t["ticket_id"] for t in listed["tickets"]]
    assert done["ticket_id"] not in ids
    assert waiting["ticket_id"] in ids
    assert listed["business_date"] > yesterday
    past = api.get("/tickets", params={"date": yesterday}).json()
    assert {t["ticket_id"] for t in past["tickets"]} == {done["ticket_id"], waiting["ticket_id"]}
    today = api.enqueue("teller")  # the day rolls in the engine: yesterday's finished tickets leave memory
    ids = [t["ticket_id"] for t in api.get("/tickets").json()["tickets"]]
    assert today["ticket_id"] in ids
    assert done["ticket_id"] not in ids
    past = api.get("/tickets", params={"date": yesterday, "status": "done"}).json()
    assert [t["ticket_id"] for t in past["tickets"]] == [done["ticket_id"]]
    assert_problem(api.get("/tickets", params={"date": "2026-13-40"}), 400, "invalid_parameter")


# ---- against the real server: lockout races, proxies, resume points -------------------------------------------


async def _logins(appliance: RunningAppliance, bodies: list[dict[str, str]],
                  headers: list[dict[str, str]] | None = None) -> list[int]:  # fmt: skip
    import asyncio

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        responses = await asyncio.gather(*(
            client.post(f"{appliance.api}/auth/token", json=b, headers=(headers or [{}] * len(bodies))[i])
            for i, b in enumerate(bodies)
        ))  # fmt: skip
    return [r.status_code for r in responses]


async def test_concurrent_wrong_passwords_cannot_beat_the_lockout(appliance: RunningAppliance) -> None:
    codes = await _logins(appliance, [{"username": "agent1", "password": f"wrong{i}"} for i in range(25)])
    assert codes.count(401) <= 5, codes
    assert codes.count(401) + codes.count(429) == 25, codes
    # per address: 25 different users at once from one address, each with a spoofed X-Forwarded-For
    bodies = [{"username": f"user{i}", "password": "wrong"} for i in range(25)]
    spoofed = [{"X-Forwarded-For": f"10.0.0.{i}"} for i in range(25)]
    codes = await _logins(appliance, bodies, spoofed)
    assert codes.count(429) >= 5 + 5, codes  # 20 per address, 5 of them already used above


async def test_a_trusted_proxy_s_forwarded_address_is_used(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_TRUSTED_PROXIES", "127.0.0.1")
    with RunningAppliance(data_dir) as appliance:
        bodies = [{"username": f"user{i}", "password": "wrong"} for i in range(21)]
        codes = await _logins(appliance, bodies, [{"X-Forwarded-For": "192.0.2.7"}] * 21)
        assert codes.count(429) == 1, codes
        other = await _logins(appliance, [{"username": "x", "password": "y"}], [{"X-Forwarded-For": "192.0.2.8"}])
        assert other == [401]  # another client behind the same proxy is not locked out
    with sqlite3.connect(data_dir / "qms.sqlite3") as conn:
        ips = {r[0] for r in conn.execute("SELECT ip FROM audit WHERE action = 'login_failed'")}
    assert ips == {"192.0.2.7", "192.0.2.8"}


async def test_last_event_id_wins_over_after(appliance: RunningAppliance) -> None:
    async with _client() as client:
        for _ in range(5):
            await _post(client, appliance, "/tickets", {"service_id": "teller"})
        final = await _seq(client, appliance)
        # A browser's reconnect: the URL it was opened with (?after=1) plus the id of the last event it saw.
        async with Stream(client, appliance, last_event_id=str(final - 2), params={"after": 1}) as stream:
            await stream.until(lambda s: bool(s.ids) and s.ids[-1] >= final)
            assert stream.ids == [final - 1, final]
        async with Stream(client, appliance, params={"after": final - 1}) as stream:  # first connect: ?after= applies
            await stream.until(lambda s: bool(s.ids) and s.ids[-1] >= final)
            assert stream.ids == [final]


def test_a_config_value_with_a_trailing_newline_is_refused(api: Api) -> None:
    doc, etag = api.config()
    doc["services"][0]["prefix"] += "\n"
    with api.unchanged():
        assert_problem(api.put("/config", doc, headers={"If-Match": etag}), 422, "invalid_config")


def test_device_changes_at_the_console_are_audited(data_dir: Path) -> None:
    r = run_cli("devices", "add", "btn-9", "--type", "button", "--counter", "1", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    r = run_cli("devices", "revoke", "btn-9", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    rows = [(a["actor"], a["role"], a["action"], a["target"]) for a in _audit(data_dir)][-2:]
    assert rows == [("cli", "technician", "device_add", "device:btn-9"), ("cli", "technician", "device_revoke",
                                                                          "device:btn-9")]  # fmt: skip


async def test_concurrent_guesses_at_staff_login_and_pairing_are_throttled(appliance: RunningAppliance) -> None:
    import asyncio

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        pairs = await asyncio.gather(*(
            client.post(f"{appliance.api}/devices/pair", json={"code": f"WRONG{i:03d}"}) for i in range(25)
        ))  # fmt: skip
        logins = await asyncio.gather(*(
            client.post(f"{appliance.base_url}/staff/login", data={"username": "agent2", "password": f"bad{i}"})
            for i in range(25)
        ))  # fmt: skip
    pair_codes = [r.status_code for r in pairs]
    assert pair_codes.count(401) <= 5, pair_codes
    assert pair_codes.count(429) >= 20, pair_codes
    login_codes = [r.status_code for r in logins]
    assert login_codes.count(401) <= 5, login_codes
    assert login_codes.count(429) >= 20, login_codes


def test_a_success_gives_back_its_own_attempt_only() -> None:
    throttle = LoginThrottle()
    for i in range(4):
        assert not throttle.attempt("user:a", "ip:10.0.0.1", now=float(i)).wait
    throttle.attempt("user:b", "ip:10.0.0.1", now=10.0).succeeded()  # a colleague signs in on the same PC
    assert len(throttle.failures["ip:10.0.0.1"]) == 4  # the address keeps the other guesses
    assert "user:b" not in throttle.failures
    assert not throttle.attempt("user:a", "ip:10.0.0.1", now=11.0).wait  # the 5th try for a
    refused = throttle.attempt("user:a", "ip:10.0.0.1", now=12.0)
    assert refused.wait > 0
    refused.succeeded()  # a refused attempt reserved nothing and releases nothing
    assert len(throttle.failures["user:a"]) == 5


def test_a_form_field_that_is_not_utf8_is_a_400_not_a_crash(api: Api) -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="username"\r\n\r\n\xff\r\n--x--\r\n'
    r = api.client.post("/staff/login", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert_problem(r, 400, "malformed_body")
