"""Central staff accounts (US-ADMIN-003) over a real nats-server with per-branch credentials: an account made at HQ
signs in at the real appliance (its hash travelled, never the password), is disabled from HQ, while the appliance's
own accounts keep working; the form checks the appliance's rules and never shows a password or hash back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from edge.demo import DEMO_PASSWORD
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, event_rows, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
PAGE = f"/admin/staff/{TENANT}/{BRANCH}"
SITI = "siti-password-1"


def login(appliance: RunningAppliance, username: str, password: str) -> int:
    """The appliance's answer to a staff sign-in."""
    return httpx.post(
        f"{appliance.api}/auth/token", json={"username": username, "password": password}, timeout=10
    ).status_code


def user_row(tmp_path: Path, username: str) -> tuple[int, ...] | None:
    """The appliance's `active` flag of a user (None: no such user); polled instead of signing in, which the
    appliance throttles after a few failures."""
    rows = event_rows(tmp_path / "edge", "SELECT active FROM users WHERE username = ?", (username,))
    return tuple(rows[0]) if rows else None


def test_an_account_made_at_hq_signs_in_at_the_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = issue(engine, keys, TENANT, BRANCH)
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    add_accounts(engine, "ana")
    engine.dispose()
    seed_demo(tmp_path / "edge")
    for name, value in (("QMS_NATS_URL", server.url), ("QMS_TENANT", TENANT), ("QMS_NATS_NKEY", str(issued.seed_file))):
        monkeypatch.setenv(name, value)
    settings = CloudSettings(
        db_url=store_url, nats_servers=(server.url,), nats_options={"nkeys_seed": str(keys / HUB_KEY)}, keys_dir=keys
    )
    try:
        with TestClient(app=create_app(settings)) as client, RunningAppliance(tmp_path / "edge") as appliance:
            sign_in(client, "ana")
            wait_until(lambda: 'value="1"' in client.get(PAGE).text, what="the branch's counters at HQ")
            short = client.post(
                f"{PAGE}?lang=en",
                data={"username": "siti", "role": "agent", "counters": ["1"], "password": "short", "active": "on"},
            )
            assert short.status_code == 400
            assert "at least 10 characters" in short.text
            unknown = client.post(
                f"{PAGE}?lang=en",
                data={"username": "siti", "role": "agent", "counters": ["99"], "password": SITI, "active": "on"},
            )
            assert "Unknown counter at this branch." in unknown.text
            assert SITI not in unknown.text  # a password is never sent back

            made = client.post(
                f"{PAGE}?lang=en",
                data={"username": "siti", "role": "agent", "counters": ["1"], "password": SITI, "active": "on"},
                follow_redirects=True,
            )
            assert "Sent to the branch: v1" in made.text
            assert "$argon2id$" not in made.text
            wait_until(lambda: user_row(tmp_path, "siti") == (1,), what="siti at the branch")
            assert login(appliance, "siti", SITI) == 200
            assert login(appliance, "agent1", DEMO_PASSWORD) == 200  # the appliance's own accounts stay
            audited = event_rows(tmp_path / "edge", "SELECT actor, action FROM audit WHERE action = 'staff_sync'")
            assert audited == [("hq", "staff_sync")]

            # Disabled at HQ (no new password: the hash stays): refused at the branch.
            client.post(f"{PAGE}?lang=en", data={"username": "siti", "role": "agent", "counters": ["1"]})
            wait_until(lambda: user_row(tmp_path, "siti") == (0,), what="siti disabled at the branch")
            assert login(appliance, "siti", SITI) == 401
            trail = client.get("/admin/audit", params={"action": "staff.update"}).text
            assert "password_changed" in trail
            assert SITI not in client.get("/admin/audit").text
    finally:
        server.stop()
