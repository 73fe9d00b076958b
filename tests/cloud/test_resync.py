"""Forks and their repair at the hub, on SQLite and PostgreSQL: a redelivery with the stored hash is a duplicate, a
different event under a known seq marks the branch `chain_broken` (fork) and stops it; `resync_branch` drops the
hub's copy from a seq on and rebuilds the derived rows, so re-applying the appliance's log gives what a fresh hub
would hold."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.apply import Incoming, apply_batch, fork_problem
from cloud.cli import app as cloud_cli
from cloud.resync import ResyncRefused, resync_branch
from cloud.store import branches, create_store_engine, events, number_leases, parked, ticket_links, tickets
from edge.demo import demo_config
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.contract import GENESIS_HASH
from sync.relay import Outgoing
from tests.cloud.branch_events import TENANT, make_branch_events, subject

BRANCH = "jkt-sudirman"


@dataclass(frozen=True)
class Fork:
    """Two logs of one branch sharing `base`: `original` went on, then the appliance was restored to `base` and
    wrote `restored` (different events under the same seqs)."""

    base: list[Outgoing]
    original: list[Outgoing]
    restored: list[Outgoing]

    @property
    def at(self) -> int:
        """The first seq where the two logs differ."""
        return len(self.base) + 1


def _go_on(data_dir: Path, steps: list[c.Command]) -> list[Outgoing]:
    service = QueueService(data_dir)
    service.start()
    try:
        for step in steps:
            service.execute(step)
        return list(service.read(lambda conn: read_outgoing(conn, 0, 1_000_000)))
    finally:
        service.stop()


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> Fork:
    """The original timeline adds tickets, a number lease and a configuration version 2; the restored one only
    different tickets (so a leftover of the original would show in the projection or the config version)."""
    root = tmp_path_factory.mktemp("fork")
    base = make_branch_events(root / "edge", tickets=6)
    shutil.copytree(root / "edge", root / "backup")
    config = msgspec.structs.replace(demo_config(), branch_id=BRANCH)
    original = _go_on(root / "edge", [
        *[c.Enqueue(service_id="teller") for _ in range(8)],
        c.LeaseNumbers(device_id="kiosk-1", service_id="teller", count=5),
        c.ApplyConfig(actor="test", config=config, base_version=1, source="test"),
        c.CallNext(counter_id="3"),
    ])  # fmt: skip
    restored = _go_on(root / "backup", [c.Enqueue(service_id="cs") for _ in range(4)])
    assert len(original) > len(restored) > len(base)
    gone = {json.loads(o.payload)["type"] for o in original[len(base) :]}
    assert {"numbers.leased", "config.applied", "ticket.called"} <= gone
    return Fork(base=base, original=original, restored=restored)


def incoming(items: list[Outgoing]) -> list[Incoming]:
    return [Incoming(subject(BRANCH), o.payload) for o in items]


def hash_of(item: Outgoing) -> str:
    return str(json.loads(item.payload)["hash"])


def branch_row(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(branches).where(branches.c.branch_id == BRANCH)).one()


def stored_hashes(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        query = sa.select(events.c.seq, events.c.hash).where(events.c.branch_id == BRANCH).order_by(events.c.seq)
        return [(seq, h) for seq, h in conn.execute(query).all()]


def parked_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(parked)).scalar_one())


def projection(engine: sa.Engine) -> dict[str, Any]:
    """Everything the hub derives for the branch (the tracking row without its clocks and counters of redeliveries)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(branches).where(branches.c.branch_id == BRANCH)).one()._asdict()
        derived = {
            t.name: sorted(tuple(r) for r in conn.execute(sa.select(t).where(t.c.branch_id == BRANCH)).all())
            for t in (tickets, ticket_links, number_leases)
        }
        stored = conn.execute(
            sa.select(events.c.seq, events.c.event_id, events.c.type, events.c.hash, events.c.body)
            .where(events.c.branch_id == BRANCH)
            .order_by(events.c.seq)
        ).all()
    for volatile in ("duplicates", "last_received_at", "updated_at"):
        row.pop(volatile)
    return {"branch": row, **derived, "events": [tuple(r) for r in stored]}


def test_a_redelivery_with_the_stored_hash_is_a_duplicate(store_url: str, fork: Fork) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    again = apply_batch(engine, incoming(fork.original[3:12]))
    assert (again.applied, again.duplicates, again.problems) == (0, 9, [])
    row = branch_row(engine)
    assert (row.status, row.problem, row.duplicates) == ("ok", None, 9)


def test_a_different_event_under_a_known_seq_is_a_fork(store_url: str, fork: Fork) -> None:
    """The restored appliance's events all carry seqs the hub has: once they were dropped as duplicates."""
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    result = apply_batch(engine, incoming(fork.restored))
    assert result.applied == 0
    assert result.problems == [f"{BRANCH}: {fork_problem(fork.at)}"]
    row = branch_row(engine)
    assert (row.status, row.problem) == ("chain_broken", fork_problem(fork.at))
    assert row.problem == (
        f"seq {fork.at} differs from the stored event: the branch's log was restored or rewritten (fork)"
    )
    # Nothing more is applied for the branch: not the original's own later events, not new ones of the restored log.
    later = _sealed_after(fork.original[-1], 1)
    assert apply_batch(engine, incoming(later)).applied == 0
    assert stored_hashes(engine) == [(o.seq, hash_of(o)) for o in fork.original]
    assert branch_row(engine).problem == fork_problem(fork.at)


def test_a_fork_above_the_hub_high_water_mark_in_one_batch(store_url: str, fork: Fork) -> None:
    """Two versions of the same new seq in one batch (both timelines in the stream) cannot both be right."""
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.base))
    mixed = [fork.original[fork.at - 1], fork.restored[fork.at - 1]]
    result = apply_batch(engine, incoming(mixed))
    assert result.applied == 0
    assert branch_row(engine).problem == fork_problem(fork.at)


def test_a_fork_mixed_with_new_events_parks_them(store_url: str, fork: Fork) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.base + fork.restored[len(fork.base) : len(fork.base) + 2]))
    result = apply_batch(engine, incoming(fork.original))
    assert (result.applied, result.parked) == (0, len(fork.original) - len(fork.base) - 2)
    assert branch_row(engine).problem == fork_problem(fork.at)


def test_resync_then_the_appliance_log_equals_a_fresh_hub(store_url: str, fork: Fork, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    apply_batch(engine, incoming(fork.restored))  # fork: chain_broken, nothing parked (all were below next_seq)
    apply_batch(engine, incoming(_sealed_after(fork.original[-1], 2)))  # above the high-water mark: parked
    assert parked_count(engine) == 2

    report = resync_branch(engine, TENANT, BRANCH, fork.at)
    assert (report.status_before, report.problem_before) == ("chain_broken", fork_problem(fork.at))
    assert (report.events_dropped, report.last_dropped) == (len(fork.original) - len(fork.base), len(fork.original))
    assert (report.parked_dropped, report.events_kept) == (2, len(fork.base))
    row = branch_row(engine)
    assert (row.status, row.problem, row.next_seq, row.events) == ("ok", None, fork.at, len(fork.base))
    assert row.last_hash == hash_of(fork.base[-1])
    assert row.config_version == 1  # the original's version 2 is gone with its event
    assert parked_count(engine) == 0

    resent = apply_batch(engine, incoming(fork.restored))  # the appliance ships again from the fork
    assert (resent.applied, resent.duplicates, resent.problems) == (len(fork.restored) - len(fork.base), len(fork.base),
                                                                    [])  # fmt: skip
    fresh = create_store_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    apply_batch(fresh, incoming(fork.restored))
    assert projection(engine) == projection(fresh)
    assert stored_hashes(engine) == [(o.seq, hash_of(o)) for o in fork.restored]


def test_resync_from_one_rebuilds_everything(store_url: str, fork: Fork, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    report = resync_branch(engine, TENANT, BRANCH, 1)
    assert (report.events_dropped, report.events_kept, report.tickets) == (len(fork.original), 0, 0)
    row = branch_row(engine)
    assert (row.next_seq, row.last_hash, row.events, row.config_version, row.last_event_at) == (
        1, GENESIS_HASH, 0, None, None)  # fmt: skip
    with engine.connect() as conn:
        for table in (tickets, ticket_links, number_leases, events):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    apply_batch(engine, incoming(fork.restored))
    fresh = create_store_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    apply_batch(fresh, incoming(fork.restored))
    assert projection(engine) == projection(fresh)


def test_resync_keeps_what_it_keeps(store_url: str, fork: Fork, tmp_path: Path) -> None:
    """Resyncing the original log at its own fork point and re-applying it is a no-op for the projection."""
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    before = projection(engine)
    resync_branch(engine, TENANT, BRANCH, fork.at)
    apply_batch(engine, incoming(fork.original[fork.at - 1 :]))
    assert projection(engine) == before


def test_resync_refuses_out_of_range_and_unknown_branches(store_url: str, fork: Fork) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.base))
    next_seq = len(fork.base) + 1
    for bad in (0, -3, next_seq + 1):
        with pytest.raises(ResyncRefused, match=f"between 1 and {next_seq}"):
            resync_branch(engine, TENANT, BRANCH, bad)
    with pytest.raises(ResyncRefused, match="no branch"):
        resync_branch(engine, "other-tenant", BRANCH, 1)
    with pytest.raises(ResyncRefused, match="no branch"):
        resync_branch(engine, TENANT, "bdg-dago", 1)
    at_end = resync_branch(engine, TENANT, BRANCH, next_seq)  # allowed: drops nothing, clears a problem
    assert (at_end.events_dropped, at_end.events_kept) == (0, len(fork.base))


def test_a_dry_run_changes_nothing(store_url: str, fork: Fork) -> None:
    engine = create_store_engine(store_url)
    apply_batch(engine, incoming(fork.original))
    apply_batch(engine, incoming(fork.restored))
    before = projection(engine)
    report = resync_branch(engine, TENANT, BRANCH, fork.at, dry_run=True)
    assert (report.dry_run, report.events_dropped, report.events_kept) == (
        True, len(fork.original) - len(fork.base), len(fork.base))  # fmt: skip
    assert projection(engine) == before


def test_the_resync_command(tmp_path: Path, fork: Fork) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    apply_batch(engine, incoming(fork.original))
    apply_batch(engine, incoming(fork.restored))
    runner = CliRunner()
    args = ["branch", "resync", TENANT, BRANCH, "--db-url", url]
    dry = runner.invoke(cloud_cli, [*args, "--from-seq", str(fork.at), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    dropped = len(fork.original) - len(fork.base)
    assert f"would drop {dropped} event(s) (seq {fork.at}..{len(fork.original)})" in dry.output
    assert branch_row(engine).status == "chain_broken"
    done = runner.invoke(cloud_cli, [*args, "--from-seq", str(fork.at)])
    assert done.exit_code == 0, done.output
    assert f"was chain_broken ({fork_problem(fork.at)})" in done.output
    assert f"next seq {len(fork.original) + 1} -> {fork.at}, link ok" in done.output
    assert f"qms-edge replication resend --from-seq {fork.at}" in done.output
    assert branch_row(engine).status == "ok"
    refused = runner.invoke(cloud_cli, [*args, "--from-seq", "0"])
    assert refused.exit_code == 1
    assert "refused: --from-seq must be between 1 and" in refused.output
    missing = runner.invoke(cloud_cli, args)
    assert missing.exit_code != 0  # --from-seq is required


def _sealed_after(last: Outgoing, n: int) -> list[Outgoing]:
    """`n` further events chained after `last` (copies of it with new ids), as a branch going on would send."""
    from sync.contract import canonical_encoder, chain_hash

    out, prev = [], json.loads(last.payload)
    for _ in range(n):
        seq = prev["seq"] + 1
        body = {**prev, "seq": seq, "event_id": f"e-{seq}", "prev_hash": prev["hash"], "hash": ""}
        body["hash"] = chain_hash(body["prev_hash"], canonical_encoder.encode(body))
        out.append(Outgoing(seq=seq, payload=json.dumps(body).encode(), occurred_at=0.0))
        prev = body
    return out
