"""Applying replicated events to the cloud store, on SQLite and PostgreSQL: exactly once, in order, gaps and broken
chains reported, impersonation refused, several appliers at once."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.apply import Incoming, apply_batch, subject_branch, verify_link
from cloud.store import branches, create_store_engine, events, parked, tickets
from sync.contract import canonical_encoder, chain_hash
from sync.relay import Outgoing, event_subject
from tests.cloud.branch_events import make_branch_events, subject


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """One branch's real log (config.applied, tickets, calls, a completion)."""
    return make_branch_events(tmp_path_factory.mktemp("edge"))


def incoming(items: list[Outgoing], branch: str = "jkt-sudirman") -> list[Incoming]:
    return [Incoming(subject(branch), o.payload) for o in items]


def branch_row(engine: sa.Engine, branch_id: str = "jkt-sudirman") -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(branches).where(branches.c.branch_id == branch_id)).one()


def stored_seqs(engine: sa.Engine, branch_id: str = "jkt-sudirman") -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.seq).where(events.c.branch_id == branch_id).order_by(
            events.c.seq)).scalars())  # fmt: skip


def test_subject_grammar() -> None:
    assert subject_branch("qms.evt.acme.jkt-sudirman") == ("acme", "jkt-sudirman")
    assert subject_branch("qms.evt.acme") is None
    assert subject_branch("other.evt.acme.b") is None


def test_applies_in_order_exactly_once(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    first = apply_batch(engine, incoming(log))
    again = apply_batch(engine, incoming(log[:10]))  # a redelivery
    assert (first.applied, first.duplicates) == (len(log), 0)
    assert (again.applied, again.duplicates) == (0, 10)
    assert stored_seqs(engine) == list(range(1, len(log) + 1))
    row = branch_row(engine)
    assert (row.status, row.next_seq, row.events, row.duplicates) == ("ok", len(log) + 1, len(log), 10)
    assert row.last_hash == json.loads(log[-1].payload)["hash"]
    assert row.config_version == 1
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(tickets.c.status, sa.func.count()).group_by(tickets.c.status)).all())
    assert counts == {"waiting": 17, "called": 2, "done": 1}


def test_out_of_order_is_parked_until_the_gap_fills(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(log[:3]))
    later = apply_batch(engine, incoming(log[6:]))
    assert (later.applied, later.parked) == (0, len(log) - 6)
    row = branch_row(engine)
    assert (row.status, row.problem) == ("gap", "missing seq 4..6")
    assert stored_seqs(engine) == [1, 2, 3]
    filled = apply_batch(engine, incoming(log[3:6]))
    assert filled.applied == len(log) - 3
    assert stored_seqs(engine) == list(range(1, len(log) + 1))
    assert branch_row(engine).status == "ok"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(parked)).scalar_one() == 0


def test_a_broken_hash_chain_stops_the_branch(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    forged = json.loads(log[4].payload)
    forged["ticket_number"] = "Z999"  # content no longer matches its hash
    tampered = [*log[:4], Outgoing(seq=5, payload=json.dumps(forged).encode(), occurred_at=0.0), *log[5:]]
    result = apply_batch(engine, incoming(tampered))
    assert result.applied == 4
    row = branch_row(engine)
    assert row.status == "chain_broken"
    assert "seq 5: hash does not match" in row.problem
    assert stored_seqs(engine) == [1, 2, 3, 4]
    # The genuine event does not silently heal it either: the branch waits for an operator.
    apply_batch(engine, incoming(log[4:]))
    assert branch_row(engine).status == "chain_broken"
    assert stored_seqs(engine) == [1, 2, 3, 4]


def test_an_event_that_does_not_link_is_reported(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    relinked = json.loads(log[2].payload)
    relinked["prev_hash"] = "f" * 64
    result = apply_batch(engine, incoming([*log[:2], Outgoing(3, json.dumps(relinked).encode(), 0.0)]))
    assert result.applied == 2
    assert "prev_hash does not link" in branch_row(engine).problem


def test_an_event_on_another_branchs_subject_is_refused(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    result = apply_batch(engine, incoming(log[:3], branch="bdg-dago"))
    assert (result.applied, result.refused) == (0, 3)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 0


def test_an_event_naming_another_tenant_is_refused(store_url: str, log: list[Outgoing]) -> None:
    engine = create_store_engine(store_url)
    claims = [json.loads(o.payload) | {"tenant_id": "beta"} for o in log[:2]]
    result = apply_batch(engine, [Incoming(subject(), json.dumps(c).encode()) for c in claims])
    assert (result.applied, result.refused) == (0, 2)
    assert "tenant 'beta'" in result.problems[0]


def test_the_same_branch_id_in_two_tenants_is_two_branches(store_url: str, log: list[Outgoing], tmp_path: Path) -> None:
    """beta's jkt-sudirman (another appliance, another log) never touches acme's jkt-sudirman."""
    beta = make_branch_events(tmp_path / "beta", tickets=5)
    engine = create_store_engine(store_url)
    acme_result = apply_batch(engine, incoming(log))
    beta_result = apply_batch(engine, [Incoming(event_subject("beta", "jkt-sudirman"), o.payload) for o in beta])
    assert (acme_result.applied, beta_result.applied) == (len(log), len(beta))
    assert acme_result.problems == beta_result.problems == []
    with engine.connect() as conn:
        rows = {r.tenant_id: r for r in conn.execute(sa.select(branches)).all()}
        per_tenant = dict(
            conn.execute(sa.select(tickets.c.tenant_id, sa.func.count()).group_by(tickets.c.tenant_id)).all()
        )
    assert rows["acme"].status == rows["beta"].status == "ok"
    assert (rows["acme"].events, rows["beta"].events) == (len(log), len(beta))
    assert per_tenant == {"acme": 20, "beta": 5}


def test_two_branches_are_tracked_separately(store_url: str, log: list[Outgoing], tmp_path: Path) -> None:
    other = make_branch_events(tmp_path / "other", branch_id="bdg-dago", tickets=5)
    engine = create_store_engine(store_url)
    apply_batch(engine, [*incoming(log), *incoming(other, branch="bdg-dago")])
    assert stored_seqs(engine) == list(range(1, len(log) + 1))
    assert stored_seqs(engine, "bdg-dago") == list(range(1, len(other) + 1))


def test_concurrent_appliers_keep_exactly_once(store_url: str, log: list[Outgoing]) -> None:
    """Several consumers get overlapping, shuffled batches at once: the result is the log, once, in order."""
    engine = create_store_engine(store_url)
    rng = random.Random(7)
    batches = [incoming(log[i : i + 4]) for i in range(0, len(log), 4)] * 2
    rng.shuffle(batches)
    errors: list[BaseException] = []

    def worker(mine: list[list[Incoming]]) -> None:
        try:
            for batch in mine:
                apply_batch(engine, batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert stored_seqs(engine) == list(range(1, len(log) + 1))
    row = branch_row(engine)
    assert (row.status, row.events) == ("ok", len(log))


def _sealed(fields: dict[str, object], seq: int, prev_hash: str) -> Outgoing:
    """An event sealed the way the edge seals one: hash over the sorted-key JSON with an empty `hash`."""
    body = {**fields, "seq": seq, "prev_hash": prev_hash, "hash": ""}
    body["hash"] = chain_hash(prev_hash, canonical_encoder.encode(body))
    return Outgoing(seq=seq, payload=json.dumps(body).encode(), occurred_at=0.0)


def test_events_from_a_newer_appliance_are_kept_and_chain_checked(store_url: str, log: list[Outgoing]) -> None:
    """An unknown event type and an extra field on a known type (both allowed by the contract's evolution rules)."""
    engine = create_store_engine(store_url)
    last = json.loads(log[-1].payload)
    future = _sealed({"type": "numbers.leased_v9", "branch_id": "jkt-sudirman", "event_id": "e-future",
                      "occurred_at": last["occurred_at"], "actor": "system", "request_id": None,
                      "ticket_id": None, "block": [1, 2, 3]}, len(log) + 1, last["hash"])  # fmt: skip
    created = {k: v for k, v in json.loads(log[1].payload).items() if k != "hash"}
    extra = _sealed({**created, "event_id": "e-extra", "ticket_id": "t-extra", "kiosk_id": "k1"}, len(log) + 2,
                    json.loads(future.payload)["hash"])  # fmt: skip
    result = apply_batch(engine, incoming([*log, future, extra]))
    assert (result.applied, result.refused) == (len(log) + 2, 0)
    row = branch_row(engine)
    assert (row.status, row.next_seq) == ("ok", len(log) + 3)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(events.c.seq, events.c.type).where(events.c.seq > len(log))).all())
        body = conn.execute(sa.select(events.c.body).where(events.c.seq == len(log) + 1)).scalar_one()
    assert stored == {len(log) + 1: "numbers.leased_v9", len(log) + 2: "ticket.created"}
    assert json.loads(body)["block"] == [1, 2, 3]
    tampered = json.loads(extra.payload)
    tampered["kiosk_id"] = "k2"  # the extra field is covered by the hash too
    prev = json.loads(future.payload)["hash"]
    assert verify_link(extra.payload, prev) is None
    assert verify_link(json.dumps(tampered).encode(), prev) == "hash does not match the event's content"
