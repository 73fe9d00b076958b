"""Notification benchmarks: `ticket.called` committed on the appliance → the provider (an SMTP relay with STARTTLS)
received the message, at 100 calls/s through the real relay, nats-server, the hub as its own process (`qms-cloud
serve`, as in production: consumer, triggers in its transaction, dispatcher) and the provider; then the dispatcher's
throughput draining a backlog.

Budget (ARCHITECTURE.md): called → provider request received, p99 ≤ 1 s at 100 calls/s (link up).

Per stage, for every call: committed → stored in JetStream (the relay; NATS's own timestamp) → the hub's trigger
wrote its outbox row (the consumer's pull and the apply up to the triggers) → the dispatcher claimed it (the rest of
the apply, the commit, the wake-up) → the provider received it (claim, render, SMTP) → the hub recorded it sent.

`QMS_BENCH_NOTIFY_BASELINE=DIR` (a tree holding another version's `cloud/` and `sync/`, e.g. `git archive <commit>
cloud sync | tar -x -C DIR`) measures that hub too, alternating with this one on the same box in the same run, and
prints the ratio: the box is noisy, so only figures from one run compare.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
import sqlalchemy as sa

from cloud.consumer import ensure_stream
from cloud.notify import policy
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.providers import email as email_provider
from cloud.notify.tables import attempts, outbox
from cloud.store import branches, create_store_engine
from edge.engine import commands as c
from edge.replication import ServiceSource
from edge.service import QueueService
from sync.relay import STREAM, LinkSettings, Relay
from tests.support.appliance import free_port
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresCluster

from ._support import SERVICE_ID, bench_line, many_counters_config, percentile

TENANT, BRANCH = "acme", "jkt-sudirman"
CALLS = 500
RATE = 100.0  # calls per second
BACKLOG = 1000
COUNTERS = CALLS  # one call per counter: nothing completes, so no "called" message is superseded mid-run
BASELINE_ENV = "QMS_BENCH_NOTIFY_BASELINE"
STORE_ENV = "QMS_BENCH_NOTIFY_STORE"  # `postgresql`: the hub's store on a throwaway PostgreSQL (production's store)
PAIRS = 2  # with a baseline: before/after rounds, alternating
ONLY_CALLED = {"ticket.created": False, "ticket.to_go": False, "ticket.called": True, "ticket.recalled": False}
STAGES = ("relay", "consumer", "commit_wake", "claim_send", "record")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


class SmtpRelay:
    """The SMTP relay (STARTTLS, test CA) in a process of its own, as a real provider is: its journal says what
    arrived and when (wall clock, comparable with the appliance's commit times)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cloud.notify.smtp_server", str(directory),
                                      str(free_port())])  # fmt: skip
        wait_until((directory / "settings.json").exists, 30, 0.05, "the SMTP relay")
        self.settings = json.loads((directory / "settings.json").read_text())

    def journal(self) -> list[tuple[float, str]]:
        """(received at, subject) of every accepted message."""
        path = self.dir / "journal.tsv"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [(float(at), subject) for at, subject, _id in (line.split("\t") for line in lines)]

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: len(self.journal()) >= count, timeout, 0.05, f"{count} e-mails at the relay")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class HubProcess:
    """`qms-cloud serve` as a subprocess (from `tree` when given: another version's `cloud/` and `sync/`)."""

    def __init__(self, directory: Path, db_url: str, nats_url: str, tree: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = directory / f"hub-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url", db_url,
                 "--nats-url", nats_url, "--port", str(self.port), "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory,
            )  # fmt: skip
        wait_until(self._ready, 90, 0.1, "qms-cloud serve")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"qms-cloud serve exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            health = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(health.get("consuming") and health.get("nats_connected"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _make_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream())
    finally:
        await nc.close()


class _Called(msgspec.Struct):
    type: str
    ticket_id: str | None = None


async def _stored_at(url: str) -> dict[str, float]:
    """ticket id → when JetStream stored its `ticket.called` (the server's clock: this machine's)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(STREAM)).state.last_seq
        found: dict[str, float] = {}
        for seq in range(1, last + 1):
            msg = await js.get_msg(STREAM, seq)
            event = msgspec.json.decode(msg.data or b"{}", type=_Called)
            if event.type == "ticket.called" and event.ticket_id and msg.time is not None:
                found[event.ticket_id] = msg.time.timestamp()
        return found
    finally:
        await nc.close()


def _configure(engine: sa.Engine, smtp: SmtpRelay, triggers: dict[str, bool]) -> None:
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, "email", "email", smtp.settings, email_provider.SECRETS)
        policy.save(conn, TENANT, policy.TenantPolicy(triggers=triggers))  # type: ignore[arg-type]


def _stamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class Round:
    """One latency round's figures (milliseconds)."""

    label: str
    total: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})


def _latency_round(directory: Path, label: str, tree: Path | None, db_url: str) -> Round:  # noqa: PLR0915  # one setup, one run
    """Fresh NATS, SMTP relay, appliance and hub; the created tickets shipped and applied first (steady state),
    then CALLS calls at RATE; every call's path through the stages."""
    directory.mkdir(parents=True)
    server = NatsServer(directory / "nats").start()
    smtp = SmtpRelay(directory / "smtp")
    service = QueueService(directory / "edge")
    service.start()
    loop = asyncio.new_event_loop()
    hub: HubProcess | None = None
    try:
        asyncio.run(_make_stream(server.url))
        service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(COUNTERS, digits=4), base_version=0))
        tickets = [service.execute(c.Enqueue(actor="bench", service_id=SERVICE_ID, email=f"c{i}@example.com")).response
                   for i in range(CALLS)]  # fmt: skip
        engine = create_store_engine(db_url)
        _configure(engine, smtp, ONLY_CALLED)
        hub = HubProcess(directory, db_url, server.url, tree)
        relay = Relay(LinkSettings(servers=(server.url,), tenant=TENANT, branch_id=BRANCH), ServiceSource(service),
                      cursor=0, batch_size=1000)  # fmt: skip
        service.subscribe_commits(lambda _events: relay.notify())
        head = service.read(lambda conn: conn.execute("SELECT max(seq) FROM events").fetchone()[0])
        committed: dict[str, float] = {}

        def applied() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(branches.c.events), 0))).scalar_one())

        async def run_calls() -> None:
            relay.start()
            await asyncio.to_thread(wait_until, lambda: applied() >= head, 60, 0.05, "the created tickets at the hub")
            started = time.perf_counter()
            for i, ticket in enumerate(tickets):
                await asyncio.sleep(max(0.0, started + i / RATE - time.perf_counter()))
                await asyncio.to_thread(service.execute, c.CallTicket(actor="bench", ticket_id=ticket["ticket_id"],
                                                                      counter_id=str(i + 1)))  # fmt: skip
                committed[ticket["ticket_id"]] = time.time()
            await asyncio.to_thread(smtp.wait_for, CALLS, 120)
            await relay.stop()

        loop.run_until_complete(run_calls())
        received = {}
        number = re.compile(r"Nomor (\S+) dipanggil")
        by_number = {t["ticket_number"]: t["ticket_id"] for t in tickets}
        for at, subject in smtp.journal():
            if (found := number.search(subject)) and found.group(1) in by_number:
                received[by_number[found.group(1)]] = at
        stored = asyncio.run(_stored_at(server.url))
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.ticket_id, outbox.c.created_at, outbox.c.sent_at, attempts.c.started_at)
                .join(attempts, sa.and_(attempts.c.outbox_id == outbox.c.id, attempts.c.attempt == 1))
                .where(outbox.c.trigger == "ticket.called")
            ).all()  # fmt: skip
        engine.dispose()
        result = Round(label)
        timeline = []
        for r in rows:
            if r.ticket_id not in committed or r.ticket_id not in received:
                continue
            points = [committed[r.ticket_id], stored.get(r.ticket_id), _stamp(r.created_at), _stamp(r.started_at),
                      received[r.ticket_id], _stamp(r.sent_at)]  # fmt: skip
            timeline.append(points)
            result.total.append((received[r.ticket_id] - committed[r.ticket_id]) * 1000)
            for stage, (a, b) in zip(STAGES, itertools.pairwise(points), strict=True):
                if a is not None and b is not None:
                    result.stages[stage].append((b - a) * 1000)
        (directory / "timeline.json").write_text(json.dumps(sorted(timeline, key=lambda p: p[0])))
        return result
    finally:
        if hub is not None:
            hub.stop()
        loop.close()
        service.stop()
        smtp.stop()
        server.stop()


def _report(result: Round) -> None:
    total = result.total
    bench_line(hub=result.label, store=os.environ.get(STORE_ENV) or "sqlite",
               called_to_provider_p50_ms=percentile(total, 50), called_to_provider_p99_ms=percentile(total, 99),
               budget="<= 1000", max_ms=max(total, default=float("nan")), calls=len(total), rate_per_s=RATE,
               load_1min=os.getloadavg()[0])  # fmt: skip
    figures: dict[str, object] = {"hub": result.label}
    for stage in STAGES:
        figures[f"{stage}_p50_ms"] = percentile(result.stages[stage], 50)
        figures[f"{stage}_p99_ms"] = percentile(result.stages[stage], 99)
    bench_line(**figures)


def test_called_to_provider_latency(tmp_path: Path) -> None:
    """The latency budget, with the hub as its own process; against a baseline hub too when one is given."""
    baseline = os.environ.get(BASELINE_ENV)
    plan: list[tuple[str, Path | None]] = [("this", None)]
    if baseline:
        plan = [entry for _ in range(PAIRS) for entry in (("baseline", Path(baseline)), ("this", None))]
    results: dict[str, list[Round]] = {}
    cluster = PostgresCluster().start() if os.environ.get(STORE_ENV) == "postgresql" else None
    try:
        for i, (label, tree) in enumerate(plan):
            db_url = f"sqlite:///{tmp_path / f'cloud-{i}.sqlite3'}"
            if cluster is not None:
                admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "bench_{i}"'))
                admin.dispose()
                db_url = cluster.url.rsplit("/", 1)[0] + f"/bench_{i}"
            result = _latency_round(tmp_path / f"round-{i}", label, tree, db_url)
            _report(result)
            results.setdefault(label, []).append(result)
    finally:
        if cluster is not None:
            cluster.stop()
    merged = {label: Round(label, [v for r in rounds for v in r.total],
                           {s: [v for r in rounds for v in r.stages[s]] for s in STAGES})
              for label, rounds in results.items()}  # fmt: skip
    if baseline:
        before, after = merged["baseline"], merged["this"]
        for result in (before, after):
            _report(result)
        bench_line(p50_ratio=percentile(after.total, 50) / percentile(before.total, 50),
                   p99_ratio=percentile(after.total, 99) / percentile(before.total, 99),
                   rounds_each=PAIRS)  # fmt: skip
    assert all(len(r.total) == CALLS for rounds in results.values() for r in rounds)


def _start_dispatcher(hub: CloudHub) -> Dispatcher:
    async def start() -> Dispatcher:
        dispatcher = Dispatcher(hub.engine)
        dispatcher.start()
        return dispatcher

    return asyncio.run_coroutine_threadsafe(start(), hub.loop).result(10)


def _stop_dispatcher(hub: CloudHub, dispatcher: Dispatcher) -> None:
    asyncio.run_coroutine_threadsafe(dispatcher.stop(), hub.loop).result(30)


def test_dispatch_throughput(tmp_path: Path, nats_server: NatsServer) -> None:
    """A backlog of created messages at the hub, drained by one dispatcher (consumer and dispatcher in process)."""
    asyncio.run(_make_stream(nats_server.url))
    smtp = SmtpRelay(tmp_path / "smtp")
    service = QueueService(tmp_path / "edge")
    service.start()
    service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(10, digits=4), base_version=0))
    loop = asyncio.new_event_loop()
    try:
        with CloudHub(f"sqlite:///{tmp_path / 'cloud.sqlite3'}", nats_server.url, workers=1) as hub:
            _configure(hub.engine, smtp, {**ONLY_CALLED, "ticket.created": True})
            for i in range(BACKLOG):
                service.execute(c.Enqueue(actor="bench", service_id=SERVICE_ID, email=f"b{i}@example.com"))

            def pending() -> int:
                with hub.engine.connect() as conn:
                    return int(
                        conn.execute(sa.select(sa.func.count()).where(outbox.c.status == "pending")).scalar_one()
                    )

            relay = Relay(LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH),
                          ServiceSource(service), cursor=0, batch_size=1000)  # fmt: skip

            async def ship() -> None:
                relay.start()
                await asyncio.to_thread(wait_until, lambda: pending() >= BACKLOG, 120, 0.1, "the backlog at the hub")
                await relay.stop()

            loop.run_until_complete(ship())
            started = time.perf_counter()
            dispatcher = _start_dispatcher(hub)
            smtp.wait_for(BACKLOG, 300)
            seconds = time.perf_counter() - started
            _stop_dispatcher(hub, dispatcher)
            bench_line(dispatch_messages_per_s=BACKLOG / seconds, messages=BACKLOG, seconds=seconds,
                       channel="email (STARTTLS, pooled connections)", load_1min=os.getloadavg()[0])  # fmt: skip
    finally:
        loop.close()
        service.stop()
        smtp.stop()
