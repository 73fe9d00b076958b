"""A real hub, a real appliance and a real OpenID provider for staff sign-in through the hub (tests only).

The hub is uvicorn on a free port (`localhost`, so its cookies are not the appliance's on `127.0.0.1`) over SQLite
with a real nats-server holding per-branch NKey credentials; the appliance is `qms-edge serve` linked to both; the
staff accounts are made in the hub's console form and reach the appliance as hashes over NATS, as in production.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from oidc_provider_mock import User, run_server_in_thread  # type: ignore[import-untyped]
from sqlalchemy.engine import Engine

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.identity import sso
from cloud.identity.staff_sso import signing_key
from cloud.identity.tables import sso_flows
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.staff_sso import StaffAssertion, sign_assertion
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, event_rows, free_port, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

TENANT, BRANCH = "acme", "jkt-sudirman"
STAFF_PAGE = f"/admin/staff/{TENANT}/{BRANCH}"
IDP_USERS = [
    User(sub="siti", claims={"email": "siti@acme.example", "preferred_username": "siti", "groups": ["staff"]}),
    User(sub="rudi", claims={"email": "rudi@acme.example", "preferred_username": "rudi", "groups": ["staff"]}),
    User(sub="dewi", claims={"email": "dewi@acme.example", "preferred_username": "dewi", "groups": ["staff"]}),
]


@dataclass
class Rig:
    """What a test drives."""

    hub: str
    appliance: RunningAppliance
    engine: Engine
    keys: Path
    console: httpx.Client
    server: uvicorn.Server

    def assertion(self, nonce: str, *, branch: str = BRANCH, age: int = 0, username: str = "siti") -> str:
        """An assertion signed with the hub's real key (to present what the hub would never issue)."""
        now = int(time.time()) - age
        claims = StaffAssertion(tenant=TENANT, branch_id=branch, username=username, role="agent", counters=["1"],
                                nonce=nonce, jti=f"t{now}{branch}", iat=now, exp=now + 90, idp="oidc")  # fmt: skip
        return sign_assertion(claims, signing_key(self.keys))

    def pending_nonce(self) -> str:
        """The nonce of the appliance's sign-in the hub holds as a ticket (its browser has not come yet)."""
        with self.engine.connect() as conn:
            query = sa.select(sso_flows.c.nonce).where(sso_flows.c.protocol == "staff")
            return str(conn.execute(query.order_by(sso_flows.c.created_at.desc()).limit(1)).scalar_one())

    def staff_audit(self) -> list[tuple[str, str, str]]:
        """The appliance's sign-in audit: (actor, action, detail)."""
        sql = "SELECT actor, action, detail FROM audit WHERE action IN ('login', 'login_failed') ORDER BY rowid"
        return [(r[0], r[1], r[2]) for r in event_rows(self.appliance.data_dir, sql)]


def authorize(location: str, sub: str) -> str:
    """The provider's consent form, answered as `sub`: the redirect back to the hub."""
    answer = httpx.post(location, data={"sub": sub}, follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def start(browser: httpx.Client, appliance: RunningAppliance) -> httpx.Response:
    """The sign-in page's SSO button."""
    return browser.get(f"{appliance.base_url}/staff/sso/start", follow_redirects=False, timeout=15)


def sso_sign_in(browser: httpx.Client, appliance: RunningAppliance, sub: str) -> tuple[str, str]:
    """Through the hub and the IdP as `sub`: (the callback URL the hub sent the browser to, where that led)."""
    to_hub = start(browser, appliance)
    assert to_hub.status_code == 303, to_hub.text
    to_idp = browser.get(to_hub.headers["location"], follow_redirects=False, timeout=15)
    assert to_idp.status_code == 303, to_idp.text
    back = authorize(to_idp.headers["location"], sub)
    to_appliance = browser.get(back, follow_redirects=False, timeout=15)
    assert to_appliance.status_code == 303, to_appliance.text
    callback = str(to_appliance.headers["location"])
    assert urlsplit(callback).netloc == urlsplit(appliance.base_url).netloc, callback
    return callback, landing(browser, callback)


def landing(browser: httpx.Client, callback: str) -> str:
    """Where the appliance sends the browser after its callback."""
    done = browser.get(callback, follow_redirects=False, timeout=15)
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


def tampered(callback: str) -> str:
    """The callback with one byte of the assertion's claims changed (the role, re-encoded)."""
    text = callback.split("assertion=", 1)[1]
    body, signature = text.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return callback.split("assertion=", 1)[0] + f"assertion={forged}.{signature}"


def add_staff(console: httpx.Client, username: str, active: bool) -> None:
    """A central staff account made in the hub's console form."""
    data = {"username": username, "role": "agent", "counters": ["1"], "password": f"{username}-password-1"}
    made = console.post(STAFF_PAGE, data={**data, **({"active": "on"} if active else {})}, follow_redirects=True)
    assert made.status_code == 200, made.text


@contextmanager
def staff_sso_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """Hub + nats-server + OIDC provider + appliance, acme's OIDC configured ("Acme ID"), accounts siti (active)
    and rudi (disabled) made at HQ and arrived at the branch; dewi exists at the IdP only."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = issue(engine, keys, TENANT, BRANCH)
    nats = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    add_accounts(engine, "ana")
    seed_demo(tmp_path / "edge")
    with run_server_in_thread(
        require_nonce=True, user_claims=IDP_USERS, access_token_max_age=timedelta(minutes=5)
    ) as idp:
        settings = sso.IdpSettings(
            roles={"qms-admins": "tenant_admin"}, issuer=f"http://localhost:{idp.server_port}", client_id="qms-hub",
            client_secret="hub-client-secret", display_name="Acme ID",
        )  # fmt: skip
        sso.save(engine, TENANT, "oidc", settings, datetime.now(UTC))
        port = free_port()
        hub_settings = CloudSettings(db_url=store_url, nats_servers=(nats.url,),
                                     nats_options={"nkeys_seed": str(keys / HUB_KEY)}, keys_dir=keys)  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(create_app(hub_settings), host="127.0.0.1", port=port,
                                               log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, what="the hub to listen")
        hub = f"http://localhost:{port}"
        appliance = RunningAppliance(tmp_path / "edge")
        env = {"QMS_NATS_URL": nats.url, "QMS_TENANT": TENANT, "QMS_NATS_NKEY": str(issued.seed_file),
               "QMS_HUB_URL": hub, "QMS_PUBLIC_URL": appliance.base_url}  # fmt: skip
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        console = httpx.Client(base_url=hub, timeout=15)
        try:
            with appliance:
                sign_in(console, "ana")  # type: ignore[arg-type]  # an httpx client like the TestClient
                wait_until(lambda: 'value="1"' in console.get(STAFF_PAGE).text, what="the branch's counters at HQ")
                add_staff(console, "siti", active=True)
                add_staff(console, "rudi", active=False)
                rows = "SELECT username, active FROM users WHERE username IN ('siti', 'rudi') ORDER BY username"
                managed = appliance.data_dir / "staff.json"
                wait_until(lambda: event_rows(appliance.data_dir, rows) == [("rudi", 0), ("siti", 1)]
                           and "siti" in managed.read_text(), what="the accounts at the branch")  # fmt: skip
                yield Rig(hub, appliance, engine, keys, console, server)
        finally:
            console.close()
            server.should_exit = True
            thread.join(10)
            nats.stop()
            engine.dispose()
