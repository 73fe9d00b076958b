"""End to end with real processes: nats-server (the branch's and the hub's NKeys), `qms-edge serve` shipping a real
appliance's events, `qms-cloud serve` consuming them and dispatching, and an SMTP relay with STARTTLS from a test CA.

A ticket with a phone and an e-mail → the created e-mail (number, branch, service, status link); the queue moves →
"3 to go" once; called while the relay is down → retries, then sent; a permanent refusal → dead, replayed from the
console → sent; the hub killed mid-dispatch and restarted → nothing lost; the one message the relay had already taken
when the hub died arrives again with the same Message-ID (SMTP's at-least-once window, documented)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.notify.providers import email as email_provider
from cloud.notify.tables import outbox
from cloud.store import create_store_engine
from tests.support.appliance import RunningAppliance, free_port, mint_token, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

from .smtp_server import SmtpServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
USERS = [("agent1", "agent", ["1", "2", "3"]), ("sup", "supervisor", [])]
ADMIN, PASSWORD = "hq-admin", "correct horse battery"


class Hub:
    """`qms-cloud serve` as a subprocess that can be killed (SIGKILL) and started again on the same port."""

    def __init__(self, tmp_path: Path, db_url: str, nats_url: str, keys: Path) -> None:
        self.tmp_path, self.db_url, self.nats_url, self.keys = tmp_path, db_url, nats_url, keys
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Hub:
        log = (self.tmp_path / "cloud.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url", self.db_url, "--nats-url",
             self.nats_url, "--nats-nkey", str(self.keys / HUB_KEY), "--keys-dir", str(self.keys), "--port",
             str(self.port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()

        def consuming() -> bool:
            try:
                return httpx.get(f"{self.base}/api/v1/health", timeout=2).json()["consuming"] is True
            except httpx.HTTPError:
                return self.proc is None or self.proc.poll() is not None

        wait_until(consuming, timeout=120, what="qms-cloud serve")  # importing the hub took 36 s at load 13
        assert self.proc.poll() is None, (self.tmp_path / "cloud.log").read_text()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, a `sending` row stays behind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None


@contextmanager
def console(hub: Hub) -> Iterator[httpx.Client]:
    """An HQ admin signed in to the console through its sign-in page (session + CSRF token)."""
    with httpx.Client(base_url=hub.base, timeout=10) as client:
        page = client.get("/signin", headers={"accept": "text/html"})
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        signed = client.post("/signin", data={"username": ADMIN, "password": PASSWORD, "_csrf_token": token.group(1),
                                              "next": "/"})  # fmt: skip
        assert signed.status_code in (200, 303), signed.text
        client.headers["X-CSRFToken"] = client.get("/api/v1/me").json()["csrf_token"]
        yield client


def outbox_rows(engine: sa.Engine, **where: Any) -> list[Any]:
    query = sa.select(outbox).order_by(outbox.c.id)
    for column, value in where.items():
        query = query.where(outbox.c[column] == value)
    with engine.connect() as conn:
        return list(conn.execute(query))


def test_notifications_end_to_end(tmp_path: Path, smtp_server: SmtpServer) -> None:  # noqa: PLR0915  # one story in order: the processes start once
    keys, db_url = tmp_path / "keys", f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(db_url)
    seed_file = issue(engine, keys, TENANT, BRANCH).seed_file
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    upsert_user(engine, ADMIN, PASSWORD, "tenant_admin", [TENANT])
    hub = Hub(tmp_path, db_url, server.url, keys)
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, "email", "email", smtp_server.settings, email_provider.SECRETS)
        policy.save(conn, TENANT, policy.TenantPolicy(public_url=hub.base))
    try:
        hub.start()
        seed_demo(tmp_path / "edge", users=USERS)
        args = ("--nats-url", server.url, "--tenant", TENANT, "--nats-nkey", str(seed_file))
        with RunningAppliance(tmp_path / "edge", args=args) as appliance:
            agent = {"Authorization": f"Bearer {mint_token(tmp_path / 'edge', 'agent1', users=USERS)}"}
            api = httpx.Client(base_url=appliance.api, headers=agent, timeout=10)

            def ticket(**body: Any) -> dict[str, Any]:
                answer = api.post("/tickets", json={"service_id": "teller", "channel": "kiosk", **body})
                assert answer.status_code == 201, answer.text
                return dict(answer.json())

            def call(counter: str) -> dict[str, Any]:
                current = api.get("/tickets", params={"status": "called"}).json()
                for held in [t for t in current.get("tickets", current) if t.get("counter_id") == counter]:
                    api.post(f"/tickets/{held['ticket_id']}/start", json={"counter_id": counter})
                    api.post(f"/tickets/{held['ticket_id']}/complete", json={"counter_id": counter})
                answer = api.post(f"/counters/{counter}/call-next", json={})
                assert answer.status_code == 200, answer.text
                return dict(answer.json()["ticket"])

            ahead = [ticket() for _ in range(5)]
            mine = ticket(phone="081234567890", email="andi@example.com", lang="en", notify_opt_in=True)
            created = smtp_server.wait_for(1)[0]
            assert created.recipients == ["andi@example.com"]
            assert mine["ticket_number"] in created.message["Subject"]
            assert "Bank Demo - KCP Sudirman" in created.text
            assert "Teller" in created.text
            assert "5 people ahead" in created.text
            assert f"{hub.base}/t/" in created.text  # the status link, signed with the branch's key
            # the queue moves: 5 → 3 ahead: "3 to go"; 3 → 2 ahead: nothing more
            call("1")
            call("2")
            to_go = smtp_server.wait_for(2)[1]
            assert to_go.message["Subject"].startswith("3 to go")
            call("3")
            wait_until(lambda: outbox_rows(engine, ticket_id=ahead[2]["ticket_id"], trigger="ticket.called"),
                       what="the third call at the hub")  # fmt: skip
            assert len(outbox_rows(engine, ticket_id=mine["ticket_id"], trigger="ticket.to_go")) == 1
            # the relay goes down; the ticket is called; the hub retries until it is back
            smtp_server.stop()
            call("1")
            call("2")
            assert call("3")["ticket_id"] == mine["ticket_id"]

            def failed_once() -> bool:
                rows = outbox_rows(engine, ticket_id=mine["ticket_id"], trigger="ticket.called")
                return bool(rows) and rows[0].status == "failed" and rows[0].attempts >= 1

            wait_until(failed_once, what="a failed attempt while the relay is down")
            smtp_server.start()
            wait_until(lambda: outbox_rows(engine, ticket_id=mine["ticket_id"], trigger="ticket.called")[0].status
                       == "sent", timeout=60, what="the called e-mail after the relay came back")  # fmt: skip
            called = [m for m in smtp_server.messages if "is called" in (m.message["Subject"] or "")]
            assert len(called) == 1
            assert "Loket 3" in called[0].text
            # a permanent refusal: dead, then replayed from the console
            smtp_server.fail_with("550 5.1.1 mailbox unavailable")
            refused = ticket(email="budi@example.com")
            wait_until(lambda: [r for r in outbox_rows(engine, ticket_id=refused["ticket_id"]) if r.status == "dead"],
                       what="the refused e-mail in the DLQ")  # fmt: skip
            (dead,) = [r for r in outbox_rows(engine, ticket_id=refused["ticket_id"]) if r.status == "dead"]
            smtp_server.fail_with(None)
            with console(hub) as hq:
                dlq = hq.get("/api/v1/notify/dlq").json()["messages"]
                assert [m["id"] for m in dlq] == [dead.id]
                assert dlq[0]["recipient"] == "b***@example.com"
                assert hq.post(f"/api/v1/notify/messages/{dead.id}/replay").json() == {"replayed": True}
            wait_until(lambda: any(m.recipients == ["budi@example.com"] for m in smtp_server.messages),
                       what="the replayed e-mail")  # fmt: skip
            # the hub dies while the relay holds a message; after a restart nothing is lost
            before = len(smtp_server.messages)
            arrived = smtp_server.slow_down(30.0)
            last = ticket(email="citra@example.com")
            assert arrived.wait(30), "the relay never saw the message"
            hub.kill()
            (stuck,) = outbox_rows(engine, ticket_id=last["ticket_id"], trigger="ticket.created")
            assert stuck.status == "sending"
            smtp_server.slow_down(0.0)
            with engine.begin() as conn:  # the lease runs out while the hub is down (instead of waiting a minute)
                past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
                conn.execute(sa.update(outbox).where(outbox.c.id == stuck.id).values(lease_until=past))
            hub.start()
            wait_until(lambda: outbox_rows(engine, ticket_id=last["ticket_id"], trigger="ticket.created")[0].status
                       == "sent", timeout=60, what="the message after the restart")  # fmt: skip
            after = smtp_server.wait_for(before + 1, timeout=40)
            for_citra = [m for m in after if m.recipients == ["citra@example.com"]]
            assert 1 <= len(for_citra) <= 2  # the relay may have kept the first copy: at-least-once, same id
            assert len({m.message["Message-ID"] for m in for_citra}) == 1
            ids = [m.message["Message-ID"] for m in after if m.recipients != ["citra@example.com"]]
            assert len(ids) == len(set(ids))  # every other message exactly once
            api.close()
    finally:
        hub.stop()
        server.stop()
        engine.dispose()
