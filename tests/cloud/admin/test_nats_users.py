"""A branch created at HQ connects with no operator step: where the hub operates nats-server (QMS_NATS_AUTH_FILE,
QMS_NATS_PID_FILE) it rewrites the users include and reloads the server itself on create, enrol, re-key, retire and
delete. Real nats-server (started with the include and a pid file), a hub served by uvicorn, the console over HTTP
as an HQ admin, `qms-edge enrol` and a real appliance whose relay ships events; a retired branch is refused after
the automatic reload; a failing reload is shown in words with the manual commands and logged, nothing else breaks;
two rewrites never interleave (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cloud.admin.audit import verify
from cloud.admin.nats_users import NATS_USERS_LOCK, Target, sync
from cloud.admin.tables import hub_audit
from cloud.cli import app as cloud_cli
from cloud.credentials import HUB_KEY, public_key_of, write_authorization
from cloud.store import create_store_engine, events
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, run_cli, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.support.providers.hub import served

TENANT, BRANCH = "acme", "jkt-kuningan"
FORM = {"tenant": TENANT, "branch_id": BRANCH, "name": "KCP Kuningan", "timezone": "Asia/Jakarta"}
CODE = re.compile(r"<code>([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})</code>")


def actions(engine: Engine) -> list[tuple[str, str]]:
    """The rewrites recorded in the audit log: (action, reason)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(hub_audit.c.action, hub_audit.c.after)
            .where(hub_audit.c.action.like("nats.users%"))
            .order_by(hub_audit.c.seq)
        ).all()
    return [(r.action, msgspec.json.decode(r.after)["reason"]) for r in rows]


def hub_seqs(engine: Engine) -> list[int]:
    """The seqs the hub stored for the branch."""
    with engine.connect() as conn:
        q = sa.select(events.c.seq).where(events.c.tenant_id == TENANT, events.c.branch_id == BRANCH)
        return list(conn.execute(q.order_by(events.c.seq)).scalars())


def take_ticket(appliance: RunningAppliance) -> None:
    """A customer takes a ticket at the appliance."""
    r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"}, headers=appliance.headers("admin"))
    assert r.status_code == 201, r.text


async def connects(server: NatsServer, seed: Path) -> str:
    """`ok`, or the server's refusal of this seed."""
    try:
        nc = await nats.connect(server.url, nkeys_seed=str(seed), allow_reconnect=False, connect_timeout=5)
    except Exception as exc:  # nats-py raises the server's -ERR as one of several types
        return str(exc) or type(exc).__name__
    await nc.close()
    return "ok"


def reloads(server_dir: Path) -> int:
    """How many times nats-server says it reloaded its configuration."""
    return sum(p.read_text().count("Reloaded server configuration") for p in server_dir.glob("nats-*.log"))


@pytest.mark.slow
def test_a_branch_created_in_the_console_connects_and_a_retired_one_is_refused(  # noqa: PLR0915 - one story
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    add_accounts(engine, "root")
    keys, nats_dir = tmp_path / "keys", tmp_path / "nats"
    auth, pid = nats_dir / "auth.conf", nats_dir / "nats.pid"
    nats_dir.mkdir()
    write_authorization(engine, keys, auth)  # what `qms-cloud branch users` writes before any branch: the hub only
    server = NatsServer(nats_dir, config=f'pid_file: "{pid}"\ninclude "auth.conf"\n').start()
    monkeypatch.setenv("QMS_NATS_AUTH_FILE", str(auth))
    monkeypatch.setenv("QMS_NATS_PID_FILE", str(pid))
    settings = CloudSettings(
        db_url=store_url, keys_dir=keys, nats_servers=(server.url,), nats_options={"nkeys_seed": str(keys / HUB_KEY)}
    )
    edge = tmp_path / "edge"
    seed_demo(edge, msgspec.structs.replace(demo_config(), tenant_id=TENANT, branch_id=BRANCH))
    try:
        with served(create_app(settings)) as hub, httpx.Client(base_url=hub, timeout=30) as console:
            sign_in(console, "root")  # type: ignore[arg-type]  # an httpx client, as the TestClient is
            created = console.post("/admin/branches?lang=en", data=FORM)
            assert created.status_code == 201, created.text
            assert 'id="nats-users" data-ok="yes"' in created.text
            assert "NATS users updated at" in created.text
            assert "connects with no manual step" in created.text
            assert 'id="nats-step"' not in created.text  # nothing for the operator to run
            seed = keys / f"{TENANT}.{BRANCH}.nk"
            assert public_key_of(seed) in auth.read_text()
            wait_until(lambda: reloads(nats_dir) >= 1, what="nats-server reloaded")
            match = CODE.search(created.text)
            assert match

            enrolled = run_cli("enrol", "--hub", hub, "--code", match.group(1), "--data-dir", str(edge))
            assert enrolled.returncode == 0, enrolled.stderr
            env = dict(
                line.split("=", 1) for line in (edge / "cloud.env").read_text().splitlines() if "=" in line
            )  # what the appliance's unit reads (EnvironmentFile=)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            assert env["QMS_NATS_URL"] == server.url
            with RunningAppliance(edge) as appliance:
                take_ticket(appliance)
                wait_until(lambda: len(hub_seqs(engine)) >= 2, what="the branch's events at the hub")  # config + ticket

                retired = console.post(f"/admin/branches/{TENANT}/{BRANCH}/retire?lang=en", follow_redirects=True)
                assert retired.status_code == 200
                assert 'id="nats-users" data-ok="yes"' in retired.text
                assert public_key_of(seed) not in auth.read_text()
                wait_until(lambda: reloads(nats_dir) >= 3, what="nats-server reloaded without the branch")
                refused = asyncio.run(connects(server, seed))
                assert "authorization" in refused.lower(), refused
                shipped = len(hub_seqs(engine))
                take_ticket(appliance)  # taken while refused: kept at the branch, shipped after reactivation

                reactivated = console.post(f"/admin/branches/{TENANT}/{BRANCH}/reactivate?lang=en")
                assert reactivated.status_code == 303
                wait_until(lambda: len(hub_seqs(engine)) > shipped, timeout=60, what="the backlog after reactivation")
                assert asyncio.run(connects(server, seed)) == "ok"
    finally:
        server.stop()
    assert actions(engine) == [
        ("nats.users_updated", "branch.create"),
        ("nats.users_updated", "branch.enrolled"),
        ("nats.users_updated", "branch.retire"),
        ("nats.users_updated", "branch.reactivate"),
    ]
    assert verify(engine).ok
    engine.dispose()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not nats-server (a stale pid file names it): it must survive."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_failing_reload_is_shown_with_the_manual_commands_and_nothing_else_breaks(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    sleeper: subprocess.Popen[bytes],
) -> None:  # fmt: skip
    auth, pid = tmp_path / "auth.conf", tmp_path / "nats.pid"
    monkeypatch.setenv("QMS_NATS_AUTH_FILE", str(auth))
    monkeypatch.setenv("QMS_NATS_PID_FILE", str(pid))  # nats-server never wrote it
    engine = create_store_engine(store_url)
    add_accounts(engine, "root")
    write_authorization(engine, tmp_path / "keys", auth)  # current at start: the hub has nothing to catch up on
    caplog.set_level(logging.ERROR, logger="qms.cloud.nats_users")
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        sign_in(client, "root")
        created = client.post("/admin/branches?lang=en", data=FORM)
        assert created.status_code == 201, created.text  # the branch exists, its code is shown
        code = CODE.search(created.text)
        assert code
        assert 'id="nats-users" data-ok="no"' in created.text
        assert f"nats-server not reloaded: the pid file {pid} does not exist" in created.text
        step = created.text.split('id="nats-step"', 1)[1].split("</div>", 1)[0]
        assert f"--auth-out {auth}" in step
        assert f"nats-server --signal reload={pid}" in step
        assert public_key_of(tmp_path / "keys" / f"{TENANT}.{BRANCH}.nk") in auth.read_text()  # written all the same
        assert any("nats-server not reloaded" in r.getMessage() for r in caplog.records)

        listed = client.get("/admin/branches?lang=id")
        assert "Pengguna NATS TIDAK diperbarui pada" in listed.text
        assert f"nats-server tidak dimuat ulang: berkas pid {pid} tidak ada" in listed.text  # the reason in Indonesian
        assert 'id="nats-step"' in listed.text

        pid.write_text(f"{sleeper.pid}\n")  # a stale pid file: another program has that pid now
        enrolled = client.post("/api/v1/enrol", json={"code": code.group(1)})
        assert enrolled.status_code == 201, enrolled.text
        assert sleeper.poll() is None  # never signalled
        page = client.get(f"/admin/branches/{TENANT}/{BRANCH}?lang=en")
        assert "is &#39;sleep&#39;, not nats-server: a stale pid file" in page.text
    assert [a for a, _ in actions(engine)] == ["nats.users_failed", "nats.users_failed"]
    assert verify(engine).ok

    # The command line says the same and fails.
    args = ["--db-url", store_url, "--keys-dir", str(tmp_path / "keys"), "--auth-out", str(auth)]
    out = CliRunner().invoke(cloud_cli, ["branch", "users", *args, "--pid-file", str(pid)])
    assert out.exit_code == 1
    assert "not nats-server: a stale pid file" in out.output
    engine.dispose()


def test_rewrites_are_idempotent_and_wait_for_each_other(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    target = Target(tmp_path / "auth.conf")
    first = sync(engine, tmp_path / "keys", target, actor="test", reason="first")
    assert first.ok
    assert first.changed
    text = target.auth_file.read_text()
    again = sync(engine, tmp_path / "keys", target, actor="test", reason="again")
    assert again.ok
    assert not again.changed
    assert target.auth_file.read_text() == text

    done: list[Any] = []
    with engine.begin() as conn:  # another replica is rewriting: it holds the lock
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": NATS_USERS_LOCK})
        worker = threading.Thread(
            target=lambda: done.append(sync(engine, tmp_path / "keys", target, actor="test", reason="waits"))
        )
        worker.start()
        worker.join(timeout=1.0)  # bounded: it must still be waiting for the lock
        assert worker.is_alive()
        assert not done
    worker.join(timeout=30)
    assert done
    assert done[0].ok
    assert verify(engine).ok
    engine.dispose()


def test_a_new_key_replaces_the_old_one_in_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    auth, keys = tmp_path / "auth.conf", tmp_path / "keys"
    monkeypatch.setenv("QMS_NATS_AUTH_FILE", str(auth))  # no pid file: the operator's own watcher reloads
    monkeypatch.delenv("QMS_NATS_PID_FILE", raising=False)
    engine = create_store_engine(store_url)
    add_accounts(engine, "root")
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=keys))) as client:
        wait_until(lambda: auth.exists() and actions(engine), what="the missing include written at start")
        sign_in(client, "root")
        assert client.post("/admin/branches?lang=en", data=FORM).status_code == 201
        old = public_key_of(keys / f"{TENANT}.{BRANCH}.nk")
        assert old in auth.read_text()
        rekeyed = client.post(f"/admin/branches/{TENANT}/{BRANCH}/rekey?lang=en")
        assert rekeyed.status_code == 200, rekeyed.text
        assert CODE.search(rekeyed.text)  # the appliance enrols again for its new seed
        assert "File written; reload nats-server yourself" in rekeyed.text
        new = public_key_of(keys / f"{TENANT}.{BRANCH}.nk")
        assert new != old
        text = auth.read_text()
        assert new in text
        assert old not in text
        deleted = client.post(f"/admin/branches/{TENANT}/{BRANCH}/delete?lang=en", follow_redirects=False)
        assert deleted.status_code == 303
        assert new not in auth.read_text()
    # the hub wrote the missing include when it started, then once per change
    reasons = [reason for _, reason in actions(engine)]
    assert reasons == ["the include was out of date", "branch.create", "branch.rekey", "branch.delete"]
    engine.dispose()
