"""Services and counters edited at HQ reach a real appliance over a real nats-server (US-ADMIN-002/003, 006): the
hub's console (its own consumer and NATS connection) distributes the form's edit, the appliance applies it, and the
console shows the branch running it; a local edit at the branch makes HQ's stale edit a conflict, not an overwrite;
with approvals on, nothing is distributed until a second person approves; history shows the diff and rolls back."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.audit import verify
from cloud.store import config_versions, create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.contract_config import BranchConfig, config_decoder
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
PAGE = f"/admin/config/{TENANT}/{BRANCH}"


def running_at_branch(appliance: RunningAppliance) -> BranchConfig:
    """The document the appliance runs."""
    r = httpx.get(f"{appliance.api}/config", headers=appliance.headers("admin"), timeout=5)
    r.raise_for_status()
    return config_decoder.decode(r.content)


def hub_runs(client: TestClient, version: int) -> bool:
    """Whether the console says the branch runs `version`."""
    return f"v{version} (" in re.sub(r"\s+", " ", client.get(PAGE).text.split('id="running"', 1)[1][:200])


def distributed(store_url: str) -> list[int]:
    """The versions HQ stored for the branch."""
    engine = create_store_engine(store_url)
    with engine.connect() as conn:
        found = list(conn.execute(sa.select(config_versions.c.version).order_by(config_versions.c.version)).scalars())
    engine.dispose()
    return found


@pytest.fixture
def setup(tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A running appliance linked to the hub (the console app with its consumer), its v1 reported at HQ."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    add_accounts(engine, "ana", "budi")
    engine.dispose()
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    with TestClient(app=create_app(settings)) as client, RunningAppliance(tmp_path / "edge") as appliance:
        sign_in(client, "ana")
        wait_until(lambda: hub_runs(client, 1), what="v1 at the console")
        yield client, appliance, store_url


def test_an_hq_edit_is_applied_at_the_branch_and_shown_running(setup: Any) -> None:
    client, appliance, store_url = setup
    page = client.get(PAGE, params={"lang": "en"})
    assert 'data-service="teller"' in page.text
    base = re.search(r'name="base_version" value="(\d+)"', page.text)
    assert base
    assert base.group(1) == "1"

    # An invalid edit is refused inline with the appliance's own rule, and nothing is distributed.
    bad = client.post(
        f"{PAGE}/service?lang=en",
        data={"id": "loans", "name": "Kredit", "prefix": "A", "sla_minutes": "20", "active": "on", "base_version": "1"},
    )
    assert bad.status_code == 400
    assert "prefix 'A' already used by" in html.unescape(bad.text)
    assert distributed(store_url) == []

    done = client.post(
        f"{PAGE}/service?lang=en",
        data={
            "id": "loans",
            "name": "Kredit",
            "name_en": "Loans",
            "prefix": "K",
            "sla_minutes": "20",
            "active": "on",
            "base_version": "1",
        },
        follow_redirects=True,
    )
    assert done.status_code == 200, done.text
    assert "Distributed v2" in done.text
    wait_until(lambda: running_at_branch(appliance).service("loans") is not None, what="loans at the branch")
    assert running_at_branch(appliance).service("loans").names == {"en": "Loans"}  # type: ignore[union-attr]
    wait_until(lambda: hub_runs(client, 2), what="the console shows v2 running")
    shown = client.get(PAGE, params={"lang": "en"}).text
    assert 'data-service="loans"' in shown
    assert '<span class="add">+' in shown  # the history's diff

    # A counter edited at HQ serves the new service.
    counter = client.post(
        f"{PAGE}/counter?lang=en",
        data={"id": "9", "name": "Loket 9", "services": ["loans"], "active": "on", "base_version": "2"},
        follow_redirects=False,
    )
    assert counter.status_code == 303
    wait_until(lambda: running_at_branch(appliance).counter("9") is not None, what="counter 9 at the branch")

    # Roll back to v2's content: a new version (v4) without counter 9.
    wait_until(lambda: hub_runs(client, 3), what="v3 at the console")
    back = client.post(f"{PAGE}/rollback/2?lang=en", follow_redirects=False)
    assert back.status_code == 303
    wait_until(lambda: running_at_branch(appliance).counter("9") is None, what="rolled back at the branch")
    assert running_at_branch(appliance).version == 4
    actions = re.findall(r'data-action="([^"]+)"', client.get("/admin/audit").text)
    assert actions.count("config.distribute") == 3
    assert "config.applied" in actions  # the branch's side, replicated
    engine = create_store_engine(store_url)
    assert verify(engine).ok
    engine.dispose()


def test_a_local_edit_at_the_branch_is_detected_not_overwritten(setup: Any) -> None:
    client, appliance, store_url = setup
    v1 = running_at_branch(appliance)
    local = msgspec.structs.replace(v1, name="KCP Sudirman (edited at the branch)")
    r = httpx.put(
        f"{appliance.api}/config", content=msgspec.json.encode(local), headers=appliance.headers("admin"), timeout=5
    )
    assert r.status_code == 200, r.text
    wait_until(lambda: hub_runs(client, 2), what="the local v2 reported to HQ")

    # HQ's form was loaded at v1: its edit is a conflict, shown, and nothing goes out.
    stale = client.post(
        f"{PAGE}/service?lang=en",
        data={"id": "loans", "name": "Kredit", "prefix": "K", "active": "on", "base_version": "1"},
    )
    assert stale.status_code == 409
    assert "Conflict" in stale.text
    assert "edited at the branch and HQ has never seen it" in stale.text
    assert distributed(store_url) == []
    assert running_at_branch(appliance).name == local.name

    # Reloaded (base v2, with the branch's edit in it), the same edit goes through and keeps the local change.
    fresh = client.post(
        f"{PAGE}/service?lang=en",
        data={"id": "loans", "name": "Kredit", "prefix": "K", "active": "on", "base_version": "2"},
        follow_redirects=False,
    )
    assert fresh.status_code == 303
    wait_until(lambda: running_at_branch(appliance).service("loans") is not None, what="loans at the branch")
    assert running_at_branch(appliance).name == local.name


def test_with_approvals_a_change_waits_for_a_second_person(setup: Any) -> None:
    client, appliance, store_url = setup
    assert (
        client.post(
            f"/admin/approvals/settings/{TENANT}?lang=en", data={"approvals": "on"}, follow_redirects=False
        ).status_code
        == 303
    )
    asked = client.post(
        f"{PAGE}/service?lang=en",
        data={"id": "loans", "name": "Kredit", "prefix": "K", "active": "on", "base_version": "1"},
        follow_redirects=True,
    )
    assert "Change waiting for approval" in asked.text
    assert distributed(store_url) == []
    page = client.get("/admin/approvals", params={"lang": "en"})
    request_id = re.search(r'data-request="([0-9a-f]+)" data-status="pending"', page.text)
    assert request_id
    assert '+      "id": "loans"' in html.unescape(page.text)  # the diff against the base version
    own = client.post(f"/admin/approvals/{request_id.group(1)}/approve?lang=en", follow_redirects=True)
    assert "You cannot approve your own request." in own.text
    assert distributed(store_url) == []
    assert running_at_branch(appliance).service("loans") is None

    sign_in(client, "budi")
    approved = client.post(f"/admin/approvals/{request_id.group(1)}/approve?lang=en", follow_redirects=True)
    assert approved.status_code == 200
    assert f'data-request="{request_id.group(1)}" data-status="approved"' in approved.text
    assert distributed(store_url) == [2]
    wait_until(lambda: running_at_branch(appliance).service("loans") is not None, what="loans after approval")
    again = client.post(f"/admin/approvals/{request_id.group(1)}/reject?lang=en", follow_redirects=True)
    assert "Already approved." in again.text
    actions = re.findall(r'data-action="([^"]+)"', client.get("/admin/audit").text)
    for action in ("tenant.approvals", "config.request", "config.approve"):
        assert action in actions
