"""Live configuration changes (US-ADMIN-007 and the ApplyConfig rules)."""

from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from edge.engine import commands as c
from edge.engine.decide import no_ticket_reason
from sync.contract import ConfigApplied
from tests.edge.engine.conftest import Engine, ctr, svc, with_counter, with_service, without_service


def test_first_config_is_version_1_and_creates_counters(engine: Engine) -> None:
    assert engine.version == 1
    e, *opened = engine.events  # the harness's agents then sign in to every counter
    assert isinstance(e, ConfigApplied)
    assert e.version == 1
    assert set(engine.state.counters) == {"1", "2", "3", "4", "5", "6"}
    assert [(p.status, p.previous) for p in opened] == [("available", "closed")] * 6  # type: ignore[attr-defined]
    assert engine.state.branch_id == "jkt-sudirman"


def test_grace_period_change_applies_to_the_next_call_without_restart(engine: Engine) -> None:
    a = engine.enqueue("teller")
    b = engine.enqueue("teller")
    engine.call_next("1")
    (e,) = engine.reconfigure(with_service(engine.config, "teller", grace_seconds=30))
    assert e.version == 2
    assert engine.config.service("teller").grace_seconds == 30
    # The ticket already called keeps its deadline; the next call uses the new grace period.
    assert engine.ticket(a.ticket_id).no_show_deadline == engine.now + timedelta(seconds=120)
    engine.call_next("2")
    assert engine.ticket(b.ticket_id).no_show_deadline == engine.now + timedelta(seconds=30)
    engine.advance(31)
    events = engine.tick_all()
    assert [e.ticket_id for e in events] == [b.ticket_id]
    engine.assert_replays()


def test_no_show_policy_change_applies_to_the_next_no_show(engine: Engine) -> None:
    a = engine.enqueue("teller")
    engine.call_next("1")
    engine.reconfigure(with_service(engine.config, "teller", no_show_policy="return", max_returns=1))
    assert engine.types(engine.run(c.NoShow(ticket_id=a.ticket_id))) == ["ticket.no_show", "ticket.returned"]
    assert engine.ticket(a.ticket_id).status == "waiting"
    engine.reconfigure(with_service(engine.config, "teller", no_show_policy="no_show"))
    engine.call_next("1")
    assert engine.types(engine.run(c.NoShow(ticket_id=a.ticket_id))) == ["ticket.no_show"]
    engine.assert_replays()


def test_grace_per_service(engine: Engine) -> None:
    cfg = with_service(engine.config, "cs", grace_seconds=10)
    engine.reconfigure(with_service(cfg, "teller", grace_seconds=600))
    t = engine.enqueue("teller")
    s = engine.enqueue("cs")
    engine.call_next("1")
    engine.call_next("5")
    engine.advance(11)
    assert [e.ticket_id for e in engine.tick_all() if e.ticket_id] == [s.ticket_id, s.ticket_id]  # cs returns
    assert engine.ticket(t.ticket_id).status == "called"


def test_stale_base_version_refused(engine: Engine) -> None:
    err = engine.refuse(c.ApplyConfig(config=engine.config, base_version=0), "version_conflict")
    assert err.status in (409, 412)
    assert err.extra["current_version"] == 1
    engine.reconfigure(engine.config)
    engine.refuse(c.ApplyConfig(config=engine.config, base_version=1), "version_conflict")


def test_explicit_version_must_be_newer(engine: Engine) -> None:
    engine.refuse(c.ApplyConfig(config=engine.config, base_version=None, version=1), "version_conflict")
    (e,) = engine.run(c.ApplyConfig(config=engine.config, base_version=None, version=7, source="cloud"))
    assert e.version == 7
    assert e.source == "cloud"
    assert engine.version == 7


def test_invalid_config_refused(engine: Engine) -> None:
    bad = replace(engine.config, counters=[*engine.config.counters, ctr("7", ["ghost"])])
    err = engine.refuse(c.ApplyConfig(config=bad, base_version=1), "invalid_config")
    assert err.status == 422
    assert any("ghost" in m for m in err.extra["errors"])
    dup = replace(engine.config, services=[*engine.config.services, svc("x", "A")])
    engine.refuse(c.ApplyConfig(config=dup, base_version=1), "invalid_config")
    tz = replace(engine.config, timezone="Mars/Olympus")
    engine.refuse(c.ApplyConfig(config=tz, base_version=1), "invalid_config")
    other_branch = replace(engine.config, branch_id="elsewhere")
    engine.refuse(c.ApplyConfig(config=other_branch, base_version=1), "invalid_config")
    bad_prio = with_service(engine.config, "cs", default_priority=1)
    engine.refuse(c.ApplyConfig(config=bad_prio, base_version=1), "invalid_config")


def test_removing_a_service_with_active_tickets_refused(engine: Engine) -> None:
    t = engine.enqueue("loan")
    err = engine.refuse(c.ApplyConfig(config=without_service(engine.config, "loan"), base_version=1), "invalid_config")
    assert any("loan" in m for m in err.extra["errors"])
    engine.run(c.Cancel(ticket_id=t.ticket_id))
    engine.reconfigure(without_service(engine.config, "loan"))
    assert engine.config.service("loan") is None
    engine.refuse(c.Enqueue(service_id="loan"), "unknown_service")


def test_removing_a_counter_holding_a_ticket_refused(engine: Engine) -> None:
    engine.enqueue("loan")
    engine.call_next("6")
    smaller = replace(engine.config, counters=[k for k in engine.config.counters if k.id != "6"])
    engine.refuse(c.ApplyConfig(config=smaller, base_version=1), "invalid_config")


def test_removing_a_counter_with_a_targeted_ticket_refused(engine: Engine) -> None:
    t = engine.enqueue("loan")
    engine.run(c.Transfer(ticket_id=t.ticket_id, to_counter_id="6"))
    smaller = replace(engine.config, counters=[k for k in engine.config.counters if k.id != "6"])
    engine.refuse(c.ApplyConfig(config=smaller, base_version=1), "invalid_config")


def test_removed_counter_disappears_and_added_counter_starts_closed(engine: Engine) -> None:
    cfg = replace(engine.config, counters=[*[k for k in engine.config.counters if k.id != "6"], ctr("7", ["loan"])])
    engine.reconfigure(cfg)
    assert "6" not in engine.state.counters
    assert engine.counter("7").presence == "closed"  # nobody has signed in to it yet
    engine.refuse(c.CallNext(counter_id="6"), "counter_not_found")
    t = engine.enqueue("loan")
    assert engine.call_next("7").ticket_id == t.ticket_id
    engine.assert_replays()


def test_deactivating_a_service_keeps_its_queue_callable(engine: Engine) -> None:
    t = engine.enqueue("cs")
    engine.reconfigure(with_service(engine.config, "cs", active=False))
    engine.refuse(c.Enqueue(service_id="cs"), "service_inactive")
    assert engine.call_next("5").ticket_id == t.ticket_id


def test_deactivated_counter_is_unavailable(engine: Engine) -> None:
    engine.enqueue("teller")
    engine.reconfigure(with_counter(engine.config, "1", active=False))
    assert engine.decide(c.CallNext(counter_id="1")) == []
    assert no_ticket_reason(engine.state, "1", engine.now) == "counter_unavailable"


def test_presence_survives_a_config_change(engine: Engine) -> None:
    engine.set_presence("2", "break")
    engine.reconfigure(with_service(engine.config, "teller", grace_seconds=60))
    assert engine.counter("2").presence == "break"


def test_unhold_policy_change_applies_on_next_unhold(fifo) -> None:
    a = fifo.enqueue("s")
    b = fifo.enqueue("s")
    fifo.run(c.Hold(ticket_id=a.ticket_id))
    fifo.reconfigure(with_service(fifo.config, "s", unhold_position="end"))
    fifo.run(c.Unhold(ticket_id=a.ticket_id))
    assert fifo.call_next("c1").ticket_id == b.ticket_id


def test_prefix_used_today_cannot_pass_to_another_service(engine: Engine) -> None:
    """Giving today's `A` to another service would issue a second A001 today; tomorrow it may."""
    engine.run(c.Enqueue(service_id="teller"))
    config = engine.config
    swapped = [
        replace(s, prefix="X") if s.id == "teller" else replace(s, prefix="A") if s.id == "cs" else s
        for s in config.services
    ]
    err = engine.refuse(c.ApplyConfig(config=replace(config, services=swapped), base_version=config.version))
    assert err.code == "invalid_config"
    assert any("reassigned from tomorrow" in e for e in err.extra["errors"])  # type: ignore[union-attr]
    engine.advance(hours=24)
    engine.run(c.ApplyConfig(config=replace(config, services=swapped), base_version=config.version))
    assert engine.run(c.Enqueue(service_id="cs"))[0].ticket_number == "A001"
