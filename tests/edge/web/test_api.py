"""The Edge HTTP API (`/api/v1`) against the acceptance tests of US-QUEUE-001..016, plus auth, roles and config.

The real app in process (Litestar TestClient) on a seeded copy of the demo branch: teller (A, priority, lantai-1,
counters 1-3), cs (B, return-to-queue, lantai-2, counters 4-5), loan (C, cancel while serving allowed, counters 4, 6).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from edge.auth import LOGIN_MAX_FAILURES
from edge.web.staff.admin import save_user
from tests.edge.web.conftest import Api, assert_problem
from tests.support.appliance import count_request_events, event_rows, run_cli


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-001 Enqueue
# ---------------------------------------------------------------------------------------------------------------


def test_enqueue_returns_201_with_ticket(api: Api) -> None:
    api.put("/counters/1/presence", {"status": "available"})  # counters start closed: with nobody there, no ETA
    r = api.post("/tickets", {"service_id": "teller"})
    assert r.status_code == 201, r.text
    body = r.json()
    for key in ("ticket_id", "ticket_number", "status", "created_at", "service_id", "priority", "position",
                "eta_seconds"):  # fmt: skip
        assert key in body, key
    assert body["status"] == "waiting"
    assert body["service_id"] == "teller"
    assert body["position"] == 1
    assert isinstance(body["eta_seconds"], int)
    assert abs((_dt(body["created_at"]) - datetime.now(UTC)).total_seconds()) < 60
    assert api.ticket(body["ticket_id"])["status"] == "waiting"
    assert [e["type"] for e in api.events("ticket.created")] == ["ticket.created"]


def test_ticket_numbers_follow_the_configuration(api: Api) -> None:
    assert api.enqueue("teller")["ticket_number"] == "A001"
    assert api.enqueue("teller")["ticket_number"] == "A002"
    assert api.enqueue("cs")["ticket_number"] == "B001"
    assert api.enqueue("loan")["ticket_number"] == "C001"
    second = api.enqueue("teller")
    assert second["ticket_number"] == "A003"
    assert second["position"] == 3
    api.change_config(teller={"prefix": "T", "digits": 4})
    assert api.enqueue("teller")["ticket_number"] == "T0004"


def test_unknown_service_is_a_422_problem(api: Api) -> None:
    api.enqueue("teller")
    with api.unchanged():
        body = assert_problem(api.post("/tickets", {"service_id": "nope"}), 422, "unknown_service")
    assert body["service_id"] == "nope"


def test_inactive_service_is_refused(api: Api) -> None:
    api.change_config(loan={"active": False})
    with api.unchanged():
        r = api.post("/tickets", {"service_id": "loan"})
        assert 400 <= r.status_code < 500
        assert_problem(r, r.status_code, "service_inactive")


def test_malformed_json_is_a_400_problem(api: Api) -> None:
    with api.unchanged():
        r = api.post("/tickets", content=b'{"service_id": "teller"', headers={"content-type": "application/json"})
        body = assert_problem(r, 400, r.json().get("code", "?"))
    assert body["code"]


@pytest.mark.parametrize(
    "payload",
    [
        {"service_id": "teller", "colour": "red"},  # unknown field
        {"service_id": 7},  # wrong type
        {"service_id": "teller", "priority": "high"},  # wrong type
        {"service_id": "teller", "priority": 12},  # out of range
        {"service_id": "teller", "phone": "call me"},  # pattern
        {},  # missing field
    ],
)
def test_invalid_body_is_a_400_problem(api: Api, payload: dict[str, Any]) -> None:
    with api.unchanged():
        r = api.post("/tickets", payload)
        body = assert_problem(r, 400, "invalid_body")
    assert body["errors"]


def test_oversized_body_is_a_413_problem(api: Api) -> None:
    big = b'{"service_id": "teller", "customer_ref": "' + b"x" * (65 * 1024) + b'"}'
    with api.unchanged():
        assert_problem(api.post("/tickets", content=big, headers={"content-type": "application/json"}),
                       413, "body_too_large")  # fmt: skip


def test_unknown_ticket_is_a_404_problem(api: Api) -> None:
    assert_problem(api.get("/tickets/nope"), 404, "ticket_not_found")
    with api.unchanged():
        assert_problem(api.act("nope", "start", counter_id="1"), 404, "ticket_not_found")


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-002 Call next
# ---------------------------------------------------------------------------------------------------------------


def test_call_next_calls_and_assigns_counter(api: Api) -> None:
    created = api.enqueue("teller")
    r = api.call_next("1", user="agent1", counter_id="1")
    assert r.status_code == 200, r.text
    ticket = r.json()["ticket"]
    assert ticket["ticket_id"] == created["ticket_id"]
    assert ticket["status"] == "called"
    assert ticket["counter_id"] == "1"
    assert ticket["called_at"] is not None
    called = api.events("ticket.called", created["ticket_id"])
    assert len(called) == 1
    assert called[0]["counter_id"] == "1"
    snap = api.snapshot()
    assert [t["ticket_id"] for t in snap["now_calling"]] == [created["ticket_id"]]
    assert next(c for c in snap["counters"] if c["counter_id"] == "1")["current_ticket"]["ticket_id"] == \
        created["ticket_id"]  # fmt: skip


def test_two_counters_get_different_tickets(api: Api) -> None:
    a, b = api.enqueue("teller"), api.enqueue("teller")
    first = api.call_next_ok("1")
    second = api.call_next_ok("2")
    assert {first["ticket_id"], second["ticket_id"]} == {a["ticket_id"], b["ticket_id"]}
    r = api.call_next("3")
    assert r.status_code == 200
    assert r.json() == {"ticket": None, "reason": "empty"}


def test_call_next_on_empty_queue(api: Api) -> None:
    with api.unchanged():
        r = api.call_next("1")
        assert r.status_code == 200, r.text
        assert r.json() == {"ticket": None, "reason": "empty"}


def test_call_next_no_compatible(api: Api) -> None:
    api.enqueue("teller")
    with api.unchanged():
        r = api.call_next("6", user="agent4")  # loans only
        assert r.status_code == 200, r.text
        assert r.json() == {"ticket": None, "reason": "no_compatible"}


def test_call_next_counter_on_break_is_counter_unavailable(api: Api) -> None:
    """Contract: `200 {"ticket": null, "reason": "counter_unavailable"}` when the counter is on break."""
    api.enqueue("teller")
    r = api.put("/counters/1/presence", {"status": "break"}, user="agent1")
    assert r.status_code == 200, r.text
    assert r.json()["presence"] == "break"
    with api.unchanged():
        r = api.call_next("1", user="agent1")
        assert r.status_code == 200, r.text
        assert r.json() == {"ticket": None, "reason": "counter_unavailable"}


def test_break_counter_gets_nothing_and_available_again_does(api: Api) -> None:
    t = api.enqueue("teller")
    assert api.put("/counters/2/presence", {"status": "break"}).status_code == 200
    assert api.call_next("2").json().get("ticket") is None
    assert api.put("/counters/2/presence", {"status": "available"}).status_code == 200
    assert api.call_next_ok("2")["ticket_id"] == t["ticket_id"]
    types = [e["_type"] for e in api.events("counter.presence")]
    assert types == ["counter.presence", "counter.presence"]


def test_call_next_while_holding_a_ticket_is_refused(api: Api) -> None:
    api.enqueue("teller")
    api.enqueue("teller")
    api.call_next_ok("1")
    with api.unchanged():
        assert_problem(api.call_next("1"), 409, "counter_busy")


def test_call_specific_ticket(api: Api) -> None:
    api.enqueue("teller")
    second = api.enqueue("teller")
    called = api.act_ok(second["ticket_id"], "call", counter_id="2")
    assert called["status"] == "called"
    assert called["counter_id"] == "2"
    cs = api.enqueue("cs")
    with api.unchanged():
        assert_problem(api.act(cs["ticket_id"], "call", counter_id="3"), 409, "counter_not_compatible")
        assert_problem(api.act(second["ticket_id"], "call", counter_id="3"), 409, "invalid_state")
        assert_problem(api.post(f"/tickets/{second['ticket_id']}/call", {}), 422, "counter_required")


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-003 / 004 Start and complete
# ---------------------------------------------------------------------------------------------------------------


def test_start_at_calling_counter(api: Api) -> None:
    t = api.enqueue("teller")
    api.call_next_ok("1", user="agent1")
    started = api.act_ok(t["ticket_id"], "start", user="agent1", counter_id="1")
    assert started["status"] == "serving"
    assert started["served_at"] is not None
    assert len(api.events("ticket.serving", t["ticket_id"])) == 1


def test_start_at_another_counter_is_refused(api: Api) -> None:
    t = api.enqueue("teller")
    api.call_next_ok("1", user="agent1")
    with api.unchanged():
        r = api.act(t["ticket_id"], "start", user="agent2", counter_id="3")
        assert r.status_code in (403, 409)
        assert_problem(r, 409, "wrong_counter")
        assert_problem(api.act(t["ticket_id"], "start", counter_id="2"), 409, "wrong_counter")


def test_start_in_wrong_state_is_invalid_state(api: Api) -> None:
    t = api.enqueue("teller")
    with api.unchanged():
        body = assert_problem(api.act(t["ticket_id"], "start", counter_id="1"), 409, "invalid_state")
    assert body["ticket_status"] == "waiting"


def test_complete_serving_ticket(api: Api) -> None:
    t = api.enqueue("teller")
    api.call_next_ok("1")
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "complete", counter_id="1"), 409, "invalid_state")
    api.act_ok(t["ticket_id"], "start", counter_id="1")
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "complete", counter_id="1", outcome="bogus"), 422,
                       "unknown_outcome")  # fmt: skip
        assert_problem(api.act(t["ticket_id"], "complete", counter_id="2"), 409, "wrong_counter")
    done = api.act_ok(t["ticket_id"], "complete", counter_id="1", outcome="deposit")
    assert done["status"] == "done"
    assert done["completed_at"] is not None
    assert done["outcome"] == "deposit"
    [event] = api.events("ticket.done", t["ticket_id"])
    assert event["service_seconds"] >= 0
    assert event["wait_seconds"] >= 0
    assert event["counter_id"] == "1"
    snap = api.snapshot()
    assert snap["tickets"] == []
    assert next(c for c in snap["counters"] if c["counter_id"] == "1")["current_ticket"] is None


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-005 Cancel
# ---------------------------------------------------------------------------------------------------------------


def test_cancel_waiting(api: Api) -> None:
    t = api.enqueue("teller")
    cancelled = api.act_ok(t["ticket_id"], "cancel", user="supervisor", reason="customer left")
    assert cancelled["status"] == "cancelled"
    [event] = api.events("ticket.cancelled", t["ticket_id"])
    assert event["reason"] == "customer left"
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "cancel"), 409, "invalid_state")


def test_cancel_serving_refused_unless_service_allows(api: Api) -> None:
    teller = api.enqueue("teller")
    api.call_next_ok("1")
    api.act_ok(teller["ticket_id"], "start", counter_id="1")
    with api.unchanged():
        r = api.act(teller["ticket_id"], "cancel", counter_id="1")
        assert r.status_code == 409, r.text
        assert r.json()["code"] in ("cancel_not_allowed", "invalid_state")
    loan = api.enqueue("loan")
    api.call_next_ok("6")
    api.act_ok(loan["ticket_id"], "start", counter_id="6")
    assert api.act_ok(loan["ticket_id"], "cancel", counter_id="6")["status"] == "cancelled"


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-006 Recall
# ---------------------------------------------------------------------------------------------------------------


def test_recall_called_ticket_counts(api: Api) -> None:
    t = api.enqueue("teller")
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "recall", counter_id="1"), 409, "invalid_state")
    api.call_next_ok("1")
    assert api.act_ok(t["ticket_id"], "recall", counter_id="1")["recall_count"] == 1
    assert api.act_ok(t["ticket_id"], "recall", user="agent1", counter_id="1")["recall_count"] == 2
    recalls = api.events("ticket.recalled", t["ticket_id"])
    assert [e["recall_count"] for e in recalls] == [1, 2]
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "recall", counter_id="2"), 409, "wrong_counter")
    api.act_ok(t["ticket_id"], "start", counter_id="1")
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "recall", counter_id="1"), 409, "invalid_state")


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-007 Hold / unhold
# ---------------------------------------------------------------------------------------------------------------


def test_hold_skips_and_unhold_restores_original_position(api: Api) -> None:
    a, b, c = api.enqueue("cs"), api.enqueue("cs"), api.enqueue("cs")
    held = api.act_ok(a["ticket_id"], "hold")
    assert held["status"] == "held"
    assert api.ticket(b["ticket_id"])["position"] == 1
    assert api.call_next_ok("5")["ticket_id"] == b["ticket_id"]
    with api.unchanged():
        assert_problem(api.act(c["ticket_id"], "unhold"), 409, "invalid_state")
    unheld = api.act_ok(a["ticket_id"], "unhold")
    assert unheld["status"] == "waiting"
    assert unheld["position"] == 1  # cs: unhold_position=original
    assert api.call_next_ok("4")["ticket_id"] == a["ticket_id"]
    assert len(api.events("ticket.held")) == 1
    assert len(api.events("ticket.unheld")) == 1


def test_held_only_ticket_is_not_called(api: Api) -> None:
    t = api.enqueue("teller")
    api.act_ok(t["ticket_id"], "hold")
    r = api.call_next("1")
    assert r.status_code == 200
    assert r.json()["ticket"] is None


def test_unhold_position_end_from_config(api: Api) -> None:
    api.change_config(cs={"unhold_position": "end"})
    a, b, c = api.enqueue("cs"), api.enqueue("cs"), api.enqueue("cs")
    api.act_ok(a["ticket_id"], "hold")
    assert api.act_ok(a["ticket_id"], "unhold")["position"] == 3
    assert [api.call_next_ok(x)["ticket_id"] for x in ("4", "5")] == [b["ticket_id"], c["ticket_id"]]


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-008 Transfer
# ---------------------------------------------------------------------------------------------------------------


def test_transfer_waiting_ticket_to_service(api: Api) -> None:
    t = api.enqueue("teller")
    moved = api.act_ok(t["ticket_id"], "transfer", to_service_id="cs", reason="needs account help")
    assert moved["status"] == "waiting"
    assert moved["service_id"] == "cs"
    assert moved["transferred_from"] == "teller"
    assert moved["transfer_reason"] == "needs account help"
    [event] = api.events("ticket.transferred", t["ticket_id"])
    assert event["from_service"] == "teller"
    assert event["to_service"] == "cs"
    assert event["reason"] == "needs account help"
    assert api.call_next("1").json()["ticket"] is None
    assert api.call_next_ok("5")["ticket_id"] == t["ticket_id"]


def test_transfer_called_ticket_to_counter(api: Api) -> None:
    t = api.enqueue("cs")
    api.call_next_ok("4", user="agent3")
    moved = api.act_ok(t["ticket_id"], "transfer", user="agent3", counter_id="4", to_counter_id="5")
    assert moved["status"] == "waiting"
    assert moved["target_counter"] == "5"
    [event] = api.events("ticket.transferred", t["ticket_id"])
    assert event["from_service"] == "cs"
    assert event["to_service"] == "cs"
    assert event["to_counter"] == "5"
    assert event["from_counter"] == "4"
    assert event.get("reason") is None
    assert api.call_next("4").json() == {"ticket": None, "reason": "no_compatible"}
    assert api.call_next_ok("5")["ticket_id"] == t["ticket_id"]


def test_transfer_refusals_change_nothing(api: Api) -> None:
    t = api.enqueue("teller")
    with api.unchanged():
        assert_problem(api.post(f"/tickets/{t['ticket_id']}/transfer", {}), 422, "transfer_target_missing")
        assert_problem(api.act(t["ticket_id"], "transfer", to_service_id="nope"), 422, "unknown_service")
        assert_problem(api.act(t["ticket_id"], "transfer", to_service_id="teller"), 422, "transfer_to_same")
        assert_problem(api.act(t["ticket_id"], "transfer", to_service_id="cs", to_counter_id="1"), 409,
                       "counter_not_compatible")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-009 / 010 No-show (manual, automatic) and return-to-queue
# ---------------------------------------------------------------------------------------------------------------


def test_manual_no_show(api: Api) -> None:
    t = api.enqueue("teller")
    with api.unchanged():
        assert_problem(api.act(t["ticket_id"], "no-show", counter_id="1"), 409, "invalid_state")
    api.call_next_ok("1")
    marked = api.act_ok(t["ticket_id"], "no-show", counter_id="1")
    assert marked["status"] == "no_show"
    assert marked["returned"] is False
    [event] = api.events("ticket.no_show", t["ticket_id"])
    assert event["automatic"] is False


def test_no_show_returns_to_queue_when_policy_says_so(api: Api) -> None:
    t = api.enqueue("cs")
    api.call_next_ok("5")
    returned = api.act_ok(t["ticket_id"], "no-show", counter_id="5")
    assert returned["status"] == "waiting"
    assert returned["returned"] is True
    assert len(api.events("ticket.returned", t["ticket_id"])) == 1
    api.call_next_ok("5")
    final = api.act_ok(t["ticket_id"], "no-show", counter_id="5")  # max_returns = 1
    assert final["status"] == "no_show"


def _wait_for(predicate: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_auto_no_show_after_grace_period_once(api: Api) -> None:
    t = api.enqueue("teller")
    called = api.call_next_ok("1")
    deadline = _dt(called["no_show_deadline"])
    assert 119 <= (deadline - _dt(called["called_at"])).total_seconds() <= 121
    api.clock.advance(60)
    api.enqueue("loan")  # any command lets the writer look at its timers
    assert api.ticket(t["ticket_id"])["status"] == "called"
    api.clock.advance(61)
    _wait_for(lambda: api.ticket(t["ticket_id"])["status"] == "no_show")
    api.clock.advance(600)
    api.enqueue("loan")
    api.call_next_ok("6")
    events = api.events("ticket.no_show", t["ticket_id"])
    assert len(events) == 1
    assert events[0]["automatic"] is True
    counter = next(c for c in api.snapshot()["counters"] if c["counter_id"] == "1")
    assert counter["current_ticket"] is None


def test_auto_no_show_returns_to_queue_for_cs(api: Api) -> None:
    t = api.enqueue("cs")
    api.call_next_ok("5")
    api.clock.advance(181)
    ticket = _wait_for(lambda: (x := api.ticket(t["ticket_id"]))["status"] == "waiting" and x)
    assert ticket["returned"] is True
    assert len(api.events("ticket.no_show", t["ticket_id"])) == 1
    assert len(api.events("ticket.returned", t["ticket_id"])) == 1


def test_config_change_takes_effect_on_next_call(api: Api) -> None:
    api.enqueue("teller")
    api.enqueue("teller")
    first = api.call_next_ok("1")
    assert (_dt(first["no_show_deadline"]) - _dt(first["called_at"])).total_seconds() == pytest.approx(120, abs=1)
    api.change_config(teller={"grace_seconds": 600})
    second = api.call_next_ok("2")
    assert (_dt(second["no_show_deadline"]) - _dt(second["called_at"])).total_seconds() == pytest.approx(600, abs=1)
    assert api.get("/health").json()["config_version"] == 2


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-011..014 Routing
# ---------------------------------------------------------------------------------------------------------------


def test_fifo_per_service(api: Api) -> None:
    made = [api.enqueue("cs")["ticket_id"] for _ in range(3)]
    called = [api.serve("5")["ticket_id"] for _ in range(3)]
    assert called == made


def test_priority_first_with_anti_starvation(api: Api) -> None:
    regular = api.enqueue("teller")["ticket_id"]
    prio = [api.enqueue("teller", priority=1)["ticket_id"] for _ in range(4)]
    called = [api.serve("1")["ticket_id"] for _ in range(5)]
    assert called == [prio[0], prio[1], prio[2], regular, prio[3]]  # teller: anti_starvation_n = 3


def test_priority_on_service_without_priority_is_refused(api: Api) -> None:
    with api.unchanged():
        assert_problem(api.post("/tickets", {"service_id": "cs", "priority": 1}), 422, "priority_not_allowed")


def test_skill_based_routing(api: Api) -> None:
    teller = api.enqueue("teller")
    cs = api.enqueue("cs")
    loan = api.enqueue("loan")
    assert api.call_next_ok("6")["ticket_id"] == loan["ticket_id"]
    assert api.call_next_ok("4")["ticket_id"] == cs["ticket_id"]
    assert api.call_next("5").json() == {"ticket": None, "reason": "no_compatible"}
    assert api.call_next_ok("3")["ticket_id"] == teller["ticket_id"]


def test_appointment_blending_quota(api: Api) -> None:
    api.change_config(cs={"appointment_quota_pct": 50})
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    w1, w2 = api.enqueue("cs")["ticket_id"], api.enqueue("cs")["ticket_id"]
    a1 = api.enqueue("cs", channel="appointment", appointment_at=later)["ticket_id"]
    a2 = api.enqueue("cs", channel="appointment", appointment_at=later)["ticket_id"]
    called = [api.serve("5")["ticket_id"] for _ in range(4)]
    assert called == [a1, w1, w2, a2]


def test_appointment_near_its_slot_goes_first(api: Api) -> None:
    api.change_config(cs={"appointment_quota_pct": 10})
    w1 = api.enqueue("cs")["ticket_id"]
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    a1 = api.enqueue("cs", channel="appointment", appointment_at=soon)["ticket_id"]
    assert api.call_next_ok("5")["ticket_id"] == a1
    assert api.call_next_ok("4")["ticket_id"] == w1
    with api.unchanged():
        assert_problem(api.post("/tickets", {"service_id": "cs", "channel": "appointment"}), 422,
                       "appointment_time_missing")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-015 Idempotency
# ---------------------------------------------------------------------------------------------------------------


def test_same_request_id_twice_gives_same_response_and_one_event(api: Api, data_dir: Path) -> None:
    body = {"service_id": "teller", "request_id": "kiosk-1:0001"}
    first = api.post("/tickets", body)
    second = api.post("/tickets", body)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert count_request_events(data_dir, "kiosk-1:0001") == 1
    assert len(api.snapshot()["tickets"]) == 1


def test_idempotent_call_next_and_actions(api: Api, data_dir: Path) -> None:
    t = api.enqueue("teller")
    api.enqueue("teller")
    first = api.call_next("1", counter_id="1", request_id="btn-1")
    assert api.call_next("1", counter_id="1", request_id="btn-1").json() == first.json()
    assert first.json()["ticket"]["ticket_id"] == t["ticket_id"]
    assert count_request_events(data_dir, "btn-1") == 1
    start = api.act(t["ticket_id"], "start", counter_id="1", request_id="start-1")
    again = api.act(t["ticket_id"], "start", counter_id="1", request_id="start-1")
    assert start.status_code == again.status_code == 200, again.text
    assert again.json() == start.json()
    assert count_request_events(data_dir, "start-1") == 1


def test_request_id_reused_with_another_body(api: Api, data_dir: Path) -> None:
    api.post("/tickets", {"service_id": "teller", "request_id": "r-42"})
    with api.unchanged():
        assert_problem(api.post("/tickets", {"service_id": "cs", "request_id": "r-42"}), 422, "request_id_reused")
    assert count_request_events(data_dir, "r-42") == 1


# ---------------------------------------------------------------------------------------------------------------
# US-QUEUE-016 Events and snapshot resync
# ---------------------------------------------------------------------------------------------------------------


def test_every_action_emits_its_event_and_snapshot_matches_log(api: Api) -> None:
    t = api.enqueue("teller")
    api.call_next_ok("1")
    api.act_ok(t["ticket_id"], "recall", counter_id="1")
    api.act_ok(t["ticket_id"], "start", counter_id="1")
    api.act_ok(t["ticket_id"], "complete", counter_id="1")
    u = api.enqueue("teller")
    api.act_ok(u["ticket_id"], "hold")
    api.act_ok(u["ticket_id"], "unhold")
    api.act_ok(u["ticket_id"], "transfer", to_service_id="cs")
    api.call_next_ok("5")
    api.act_ok(u["ticket_id"], "no-show", counter_id="5")
    api.act_ok(u["ticket_id"], "cancel")
    types = [e["_type"] for e in api.events() if e.get("ticket_id")]
    assert types == [
        "ticket.created", "ticket.called", "ticket.recalled", "ticket.serving", "ticket.done",
        "ticket.created", "ticket.held", "ticket.unheld", "ticket.transferred", "ticket.called",
        "ticket.no_show", "ticket.returned", "ticket.cancelled",
    ]  # fmt: skip
    seqs = [e["seq"] for e in api.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    snap = api.snapshot()
    assert snap["seq"] == seqs[-1]
    assert api.get("/health").json()["seq"] == seqs[-1]
    assert all(e["branch_id"] == "jkt-sudirman" for e in api.events())
    rows = event_rows(api.data_dir, "SELECT seq, prev_hash, hash FROM events ORDER BY seq")
    assert all(prev == before for (_, prev, _h), (_, _p, before) in zip(rows[1:], rows, strict=False))


def test_snapshot_area_filter(api: Api) -> None:
    teller = api.enqueue("teller")
    api.enqueue("cs")
    api.enqueue("loan")
    snap = api.snapshot(area="lantai-1")
    assert [t["ticket_id"] for t in snap["tickets"]] == [teller["ticket_id"]]
    assert {t["service_id"] for t in snap["tickets"]} == {"teller"}
    assert sorted(c["counter_id"] for c in snap["counters"]) == ["1", "2", "3"]
    whole = api.snapshot()
    assert len(whole["tickets"]) == 3
    assert len(whole["counters"]) == 6
    assert {"seq", "tickets", "counters", "now_calling"} <= whole.keys()


def test_list_tickets_filters(api: Api) -> None:
    a = api.enqueue("teller")
    api.enqueue("cs")
    api.call_next_ok("1")
    r = api.get("/tickets", params={"status": "called"})
    assert [t["ticket_id"] for t in r.json()["tickets"]] == [a["ticket_id"]]
    r = api.get("/tickets", params={"service_id": "cs"})
    assert [t["service_id"] for t in r.json()["tickets"]] == ["cs"]


def test_openapi_lists_documented_paths(api: Api) -> None:
    r = api.client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    expected = {
        "/api/v1/tickets", "/api/v1/tickets/{ticket_id}", "/api/v1/counters/{counter_id}/call-next",
        "/api/v1/counters/{counter_id}/presence", "/api/v1/config", "/api/v1/snapshot", "/api/v1/events",
        "/api/v1/auth/token", "/api/v1/health",
    } | {f"/api/v1/tickets/{{ticket_id}}/{a}" for a in
         ("call", "start", "complete", "cancel", "recall", "hold", "unhold", "transfer", "no-show")}  # fmt: skip
    assert expected <= paths, expected - paths


# ---------------------------------------------------------------------------------------------------------------
# Authentication and roles
# ---------------------------------------------------------------------------------------------------------------


def test_no_token_is_401(api: Api) -> None:
    with api.unchanged():
        r = api.post("/tickets", {"service_id": "teller"}, user=None)
        assert_problem(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
        assert_problem(api.get("/snapshot", user=None), 401, "unauthorized")


def test_garbage_token_is_401_invalid_token(api: Api) -> None:
    r = api.client.get("/api/v1/snapshot", headers={"Authorization": "Bearer not.a.token"})
    assert_problem(r, 401, "invalid_token")
    other_key = jwt.encode({"sub": "admin", "role": "admin", "branch": "jkt-sudirman", "exp": int(time.time()) + 600},
                           b"x" * 32, algorithm="HS256")  # fmt: skip
    assert_problem(api.client.get("/api/v1/snapshot", headers={"Authorization": f"Bearer {other_key}"}), 401,
                   "invalid_token")  # fmt: skip


def _crafted(data_dir: Path, **claims: Any) -> str:
    now = int(time.time())
    base = {"sub": "admin", "role": "admin", "branch": "jkt-sudirman", "counters": [], "iat": now, "exp": now + 600}
    return jwt.encode({**base, **claims}, (data_dir / "token.key").read_bytes(), algorithm="HS256")


def test_expired_token_is_401_token_expired(api: Api, data_dir: Path) -> None:
    token = _crafted(data_dir, iat=int(time.time()) - 7200, exp=int(time.time()) - 60)
    with api.unchanged():
        r = api.client.post("/api/v1/tickets", json={"service_id": "teller"},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert_problem(r, 401, "token_expired")


def test_token_for_another_branch_is_403(api: Api, data_dir: Path) -> None:
    token = _crafted(data_dir, branch="other")
    with api.unchanged():
        r = api.client.post("/api/v1/tickets", json={"service_id": "teller"},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert_problem(r, 403, "wrong_branch")


def test_login_and_throttle(api: Api) -> None:
    r = api.post("/auth/token", {"username": "agent1", "password": "demo"}, user=None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    token = body["access_token"]
    assert api.client.get("/api/v1/snapshot", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    for _ in range(LOGIN_MAX_FAILURES):
        assert_problem(api.post("/auth/token", {"username": "agent1", "password": "wrong"}, user=None), 401,
                       "invalid_credentials")  # fmt: skip
    r = api.post("/auth/token", {"username": "agent1", "password": "demo"}, user=None)
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["code"] == "too_many_attempts"


def test_a_changed_or_disabled_account_retires_its_tokens_at_once(api: Api, data_dir: Path) -> None:
    def login(user: str, password: str) -> dict[str, str]:
        r = api.post("/auth/token", {"username": user, "password": password}, user=None)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    old = login("agent1", "demo")
    assert api.client.get("/api/v1/snapshot", headers=old).status_code == 200
    # Another process (the technician's CLI) gives agent1 a new password: the old token stops working at once.
    out = run_cli("users", "add", "agent1", "--role", "agent", "--counters", "1,2", "--password", "new-secret-1",
                  "--data-dir", str(data_dir))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_problem(api.client.get("/api/v1/snapshot", headers=old), 401, "token_revoked")
    fresh = login("agent1", "new-secret-1")
    assert api.client.get("/api/v1/snapshot", headers=fresh).status_code == 200
    # An admin disables the account (the staff admin page's write): its tokens are refused, then so is a login.
    api.client.app.state["appliance"].service.submit_store(
        lambda conn: save_user(conn, "agent1", None, "agent", ["1", "2"], False, datetime.now(UTC))
    ).result(timeout=10)
    assert_problem(api.client.get("/api/v1/snapshot", headers=fresh), 401, "token_revoked")
    assert_problem(api.post("/auth/token", {"username": "agent1", "password": "new-secret-1"}, user=None), 401,
                   "invalid_credentials")  # fmt: skip
    # A token for an account that does not exist (e.g. deleted, or minted elsewhere with this key) is refused too.
    ghost = {"Authorization": f"Bearer {_crafted(data_dir, sub='ghost')}"}
    assert_problem(api.client.get("/api/v1/snapshot", headers=ghost), 401, "token_revoked")


def test_devices_renew_their_token_and_staff_do_not(api: Api, data_dir: Path) -> None:
    run_cli("users", "add", "kiosk-9", "--role", "device", "--password", "kiosk-secret-9", "--data-dir", str(data_dir))
    r = api.post("/auth/token", {"username": "kiosk-9", "password": "kiosk-secret-9"}, user=None)
    old = {"Authorization": f"Bearer {r.json()['access_token']}"}
    renewed = api.client.post("/api/v1/auth/refresh", headers=old)
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["expires_in"] == 7 * 24 * 3600
    fresh = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.client.get("/api/v1/snapshot", headers=fresh).status_code == 200
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"]) == ("kiosk-9", "device")
    assert_problem(api.client.post("/api/v1/auth/refresh", headers=api.h("agent1")), 403, "forbidden")
    assert_problem(api.client.post("/api/v1/auth/refresh"), 401, "unauthorized")
    # A disabled device cannot renew: revocation is never outlived.
    api.client.app.state["appliance"].service.submit_store(
        lambda conn: save_user(conn, "kiosk-9", None, "device", [], False, datetime.now(UTC))
    ).result(timeout=10)
    assert_problem(api.client.post("/api/v1/auth/refresh", headers=fresh), 401, "device_unknown")


def test_unknown_user_is_invalid_credentials(api: Api) -> None:
    assert_problem(api.post("/auth/token", {"username": "ghost", "password": "demo"}, user=None), 401,
                   "invalid_credentials")  # fmt: skip


def test_agent_may_only_use_assigned_counters(api: Api) -> None:
    t = api.enqueue("teller")
    with api.unchanged():
        assert_problem(api.call_next("3", user="agent1"), 403, "counter_not_assigned")
        assert_problem(api.put("/counters/3/presence", {"status": "break"}, user="agent1"), 403,
                       "counter_not_assigned")  # fmt: skip
        assert_problem(api.act(t["ticket_id"], "hold", user="agent1"), 422, "counter_required")
    assert api.call_next_ok("2", user="agent1")["ticket_id"] == t["ticket_id"]


def test_agent_cannot_touch_tickets_of_services_their_counter_does_not_serve(api: Api) -> None:
    teller = api.enqueue("teller")
    with api.unchanged():
        r = api.act(teller["ticket_id"], "hold", user="agent3", counter_id="4")
        assert_problem(r, 403, "service_not_assigned")
        r = api.act(teller["ticket_id"], "cancel", user="agent4", counter_id="6")
        assert_problem(r, 403, "service_not_assigned")
        r = api.act(teller["ticket_id"], "call", user="agent3", counter_id="4")
        assert r.status_code in (403, 409), r.text


def test_agent_cannot_change_config(api: Api) -> None:
    doc, etag = api.config()
    with api.unchanged():
        assert_problem(api.put("/config", doc, user="agent1", headers={"If-Match": etag}), 403, "forbidden")
        assert_problem(api.put("/config", doc, user="supervisor", headers={"If-Match": etag}), 403, "forbidden")


# ---------------------------------------------------------------------------------------------------------------
# Configuration document
# ---------------------------------------------------------------------------------------------------------------


def test_config_etag_and_optimistic_concurrency(api: Api) -> None:
    r = api.get("/config")
    assert r.status_code == 200
    assert r.headers["etag"] == '"1"'
    doc = r.json()
    assert doc["version"] == 1
    r = api.put("/config", doc, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    with api.unchanged():
        body = assert_problem(api.put("/config", doc, headers={"If-Match": '"1"'}), 412, "version_conflict")
        assert body["current_version"] == 2
        # without If-Match the document's own `version` (1) is the base: stale as well
        assert_problem(api.put("/config", doc), 412, "version_conflict")
    assert api.get("/config").headers["etag"] == '"2"'
    assert len(api.events("config.applied")) == 2


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["counters"][0].update(services=["nope"]), "unknown service"),
        (lambda d: d["services"][0].update(prefix="a1"), "prefix"),
        (lambda d: d["services"].append(dict(d["services"][0])), "duplicate"),
    ],
)
def test_invalid_config_is_422_with_errors(api: Api, mutate: Any, where: str) -> None:
    doc, etag = api.config()
    mutate(doc)
    with api.unchanged():
        body = assert_problem(api.put("/config", doc, headers={"If-Match": etag}), 422, "invalid_config")
    assert body["errors"], body


def test_config_malformed_json_and_bad_if_match(api: Api) -> None:
    with api.unchanged():
        assert_problem(api.put("/config", b'{"tenant_id": ', headers={"If-Match": '"1"'}), 400, "malformed_json")
        doc, _ = api.config()
        assert_problem(api.put("/config", doc, headers={"If-Match": "abc"}), 400, "bad_if_match")


def test_config_route_accepts_documents_above_the_command_limit(api: Api) -> None:
    """The config route allows up to 1 MiB although commands are limited to 64 KiB."""
    doc, etag = api.config()
    import json

    padded = json.dumps(doc, indent=1) + " " * (100 * 1024)
    r = api.put("/config", padded, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2


def test_health_needs_no_auth(api: Api) -> None:
    r = api.get("/health", user=None)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["branch_id"] == "jkt-sudirman"


def test_a_locked_out_user_does_not_lock_out_colleagues_on_the_same_pc(api: Api) -> None:
    for _ in range(LOGIN_MAX_FAILURES):
        api.post("/auth/token", {"username": "agent1", "password": "wrong"}, user=None)
    assert api.post("/auth/token", {"username": "agent1", "password": "demo"}, user=None).status_code == 429
    assert api.post("/auth/token", {"username": "agent2", "password": "demo"}, user=None).status_code == 200


def test_malformed_and_missing_bodies_have_precise_codes(api: Api) -> None:
    for raw in (b'{"service_id":', b"{bad}", b'{"service_id": "teller"} x'):
        r = api.client.post(
            "/api/v1/tickets", content=raw, headers={**api.h("admin"), "content-type": "application/json"}
        )
        assert_problem(r, 400, "malformed_json")
    r = api.client.post("/api/v1/tickets", content=b"", headers={**api.h("admin"), "content-type": "application/json"})
    assert assert_problem(r, 400, "invalid_body")["detail"] == "a JSON request body is required"
    r = api.client.put("/api/v1/config", content=b'{"x":', headers=api.h("admin"))
    assert_problem(r, 400, "malformed_json")


def test_bad_filters_are_refused(api: Api) -> None:
    assert_problem(api.get("/tickets?status=bogus"), 400, "invalid_parameter")
    assert_problem(api.get("/tickets?area=nowhere"), 404, "unknown_area")
    assert_problem(api.get("/snapshot?service_id=nope"), 404, "unknown_service")
    assert_problem(api.get("/counters?area=zzz"), 404, "unknown_area")
    assert_problem(api.get("/events?area=zzz"), 404, "unknown_area")


def test_resume_points_out_of_range(api: Api) -> None:
    assert_problem(api.get("/events?after=99999999999999999999999"), 400, "invalid_parameter")
    huge = {"Last-Event-ID": "9" * 30}
    assert_problem(api.get("/events", headers=huge), 400, "bad_last_event_id")
    seq = api.snapshot()["seq"]
    problem = assert_problem(api.get(f"/events?after={seq + 5}"), 409, "resume_point_ahead")
    assert problem["seq"] == seq
    assert_problem(api.get("/events", headers={"Last-Event-ID": str(seq + 1)}), 409, "resume_point_ahead")


def test_config_replacement_is_audited_with_origin(api: Api, data_dir: Path) -> None:
    doc = api.get("/config").json()
    r = api.put("/config", {**doc, "name": "Audited"}, headers={"If-Match": '"1"', "User-Agent": "hq-script/1.0"})
    assert r.status_code == 200, r.text
    refused = api.put("/config", {**doc, "name": "Stale"}, headers={"If-Match": '"1"'})
    assert refused.status_code == 412
    conn = sqlite3.connect(data_dir / "qms.sqlite3")
    rows = conn.execute("SELECT actor, role, action, ip, user_agent, seq FROM audit").fetchall()
    conn.close()
    assert len(rows) == 1  # the refused attempt changed nothing and is not an action
    actor, role, action, ip, agent, seq = rows[0]
    assert (actor, role, action, agent) == ("admin", "admin", "config_replace", "hq-script/1.0")
    assert ip
    assert seq == api.snapshot()["seq"]
