"""A restored appliance forks its branch's history, the hub says so at once, and the operator's two commands repair it.

Real processes throughout: nats-server, `qms-cloud serve` (console + durable consumers), `qms-edge serve` with its
relay, and the `qms-edge backup` / `restore` / `replication resend` and `qms-cloud branch resync` command lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.apply import fork_problem
from cloud.store import branches, events, tickets
from tests.support.appliance import RunningAppliance, event_rows, free_port, run_cli, seed_demo, terminate
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"


class Hub:
    """`qms-cloud serve` as a subprocess on a SQLite store the test reads directly."""

    def __init__(self, tmp_path: Path, nats_url: str) -> None:
        self.db_url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
        self.port = free_port()
        self.log_path = tmp_path / "cloud.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*qms_cloud(), "serve", "--db-url", self.db_url, "--nats-url", nats_url, "--port", str(self.port),
             "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.engine = sa.create_engine(self.db_url)

        def consuming() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"qms-cloud serve exited:\n{self.log_path.read_text()}")
            try:
                return bool(httpx.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2).json()["consuming"])
            except httpx.HTTPError:
                return False

        wait_until(consuming, timeout=90, what="qms-cloud serve")

    def branch(self) -> Any:
        """The branch's tracking row (None before its first event)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(branches).where(branches.c.branch_id == BRANCH)).one_or_none()

    def hashes(self) -> list[tuple[int, str]]:
        """(seq, hash) of every event the hub stored for the branch."""
        with self.engine.connect() as conn:
            query = sa.select(events.c.seq, events.c.hash).where(events.c.branch_id == BRANCH).order_by(events.c.seq)
            return [(int(s), str(h)) for s, h in conn.execute(query).all()]

    def ticket_ids(self) -> set[str]:
        """The tickets of the hub's projection for the branch."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.branch_id == BRANCH)).scalars())

    def stop(self) -> None:
        """Stop the process and release the store."""
        terminate(self.proc, 15)
        self._log.close()
        self.engine.dispose()


def qms_cloud(*args: str) -> list[str]:
    """`qms-cloud ARGS` as a subprocess command line."""
    return [sys.executable, "-c", "from cloud.cli import app; app()", *args]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command line and capture its output (the caller checks the exit code)."""
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def hub(tmp_path: Path, nats_server: NatsServer) -> Iterator[Hub]:
    running = Hub(tmp_path, nats_server.url)
    try:
        yield running
    finally:
        running.stop()


def issue(appliance: RunningAppliance, service_id: str, n: int) -> int:
    """Issue `n` tickets over the API; returns the appliance's log position afterwards."""
    for _ in range(n):
        r = httpx.post(f"{appliance.api}/tickets", json={"service_id": service_id},
                       headers=appliance.headers("agent1"), timeout=10)  # fmt: skip
        assert r.status_code == 201, r.text
    return int(httpx.get(f"{appliance.api}/health", timeout=5).json()["seq"])


def appliance_hashes(data_dir: Path) -> list[tuple[int, str]]:
    return [(int(s), str(h)) for s, h in event_rows(data_dir, "SELECT seq, hash FROM events ORDER BY seq")]


def test_a_restored_appliance_is_reported_as_a_fork_and_repaired(
    tmp_path: Path, hub: Hub, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "edge"
    seed_demo(data)
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    backup = tmp_path / "backup.sqlite3"

    with RunningAppliance(data) as appliance:
        at_backup = issue(appliance, "teller", 5)
        wait_until(lambda: (b := hub.branch()) and b.next_seq > at_backup, what="the first tickets at the hub")
        done = run_cli("backup", str(backup), "--data-dir", str(data))
        assert done.returncode == 0, done.stderr
        high_water = issue(appliance, "teller", 4)  # the history the hub keeps but the appliance will lose
        wait_until(lambda: hub.branch().next_seq > high_water, what="the later tickets at the hub")
    lost = hub.ticket_ids()

    restored = run_cli("restore", str(backup), "--yes", "--data-dir", str(data))
    assert restored.returncode == 0, restored.stderr
    assert "qms-edge replication resend" in restored.stdout

    with RunningAppliance(data) as appliance:
        started = time.monotonic()
        head = issue(appliance, "cs", 2)  # new, different events under seqs the hub already has
        assert head < high_water
        broken = wait_until(lambda: (b := hub.branch()).status == "chain_broken" and b, timeout=20, what="the fork")
        noticed = time.monotonic() - started
        fork_at = at_backup + 1
        assert broken.problem == fork_problem(fork_at)
        assert noticed < 10, f"the fork was reported after {noticed:.1f}s"
        assert hub.hashes()[:at_backup] == appliance_hashes(data)[:at_backup]
        assert hub.hashes()[fork_at - 1] != appliance_hashes(data)[fork_at - 1]

        # The operator: the hub first, then the appliance (both while they run).
        resync_args = ("branch", "resync", TENANT, BRANCH, "--from-seq", str(fork_at), "--db-url", hub.db_url)
        dry = run(qms_cloud(*resync_args, "--dry-run"))
        assert dry.returncode == 0, dry.stderr
        assert f"would drop {high_water - at_backup} event(s) (seq {fork_at}..{high_water})" in dry.stdout
        resync = run(qms_cloud(*resync_args))
        assert resync.returncode == 0, resync.stderr
        assert f"qms-edge replication resend --from-seq {fork_at}" in resync.stdout
        resend = run_cli("replication", "resend", "--from-seq", str(fork_at), "--data-dir", str(data))
        assert resend.returncode == 0, resend.stderr
        assert f"seq {fork_at}..{head} will be shipped again" in resend.stdout
        head = issue(appliance, "teller", 1)  # live traffic goes on meanwhile

        def repaired() -> bool:
            branch = hub.branch()
            return branch.status == "ok" and branch.next_seq == head + 1

        wait_until(repaired, timeout=30, what="the hub to hold the appliance's log again")
        replication = httpx.get(f"{appliance.api}/replication", headers=appliance.headers("admin"), timeout=5).json()
        assert (replication["resend_epoch"], replication["lag_events"]) == (1, 0)

    assert hub.hashes() == appliance_hashes(data)  # exactly the appliance's log, seq by seq
    branch = hub.branch()
    assert (branch.status, branch.problem, branch.events) == ("ok", None, head)
    created = {r[0] for r in event_rows(data, "SELECT ticket_id FROM events WHERE type = 'ticket.created'")}
    assert hub.ticket_ids() == created
    assert lost - created  # the lost timeline's tickets are gone from the hub's queue
