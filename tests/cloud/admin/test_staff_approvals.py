"""Staff-account changes under approvals (US-ADMIN-006 with US-ADMIN-003), over a real nats-server: with the tenant's
switch on, an account made at HQ becomes a change request (its password already only a hash, never shown), is
neither stored nor sent to the branch until a different person approves it, and an approval that would overwrite a
later change of the same account is refused; every step audited."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import msgspec
import nats
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.tables import change_requests, staff_accounts
from cloud.apply import Incoming, apply_batch
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.relay import config_key
from sync.staff import STAFF_BUCKET, StaffDocument
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.cloud.branch_events import make_branch_events, subject
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
PAGE = f"/admin/staff/{TENANT}/{BRANCH}"
SITI = "siti-password-1"


def published(url: str) -> StaffDocument | None:
    """The branch's staff document in the `qms_staff` bucket, as the branch would read it (None: nothing yet)."""

    async def read() -> StaffDocument | None:
        nc = await nats.connect(url)
        try:
            bucket = await nc.jetstream().key_value(STAFF_BUCKET)
            try:
                entry = await bucket.get(config_key(TENANT, BRANCH))
            except nats.js.errors.KeyNotFoundError:
                return None
            return msgspec.json.decode(entry.value or b"", type=StaffDocument)
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_staff_change_waits_for_a_second_person(store_url: str, tmp_path: Path, nats_server: NatsServer) -> None:
    engine = create_store_engine(store_url)
    log = make_branch_events(tmp_path / "edge", BRANCH, tickets=2)
    apply_batch(engine, [Incoming(subject(BRANCH), o.payload) for o in log])
    add_accounts(engine, "ana", "budi")
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    try:
        with TestClient(app=create_app(settings)) as client:
            sign_in(client, "ana")
            wait_until(lambda: client.app.state.get("admin_js") is not None, what="the hub's NATS link")
            client.post("/admin/approvals/settings/acme", data={"approvals": "on"})
            siti = {"username": "siti", "role": "agent", "counters": ["1"], "password": SITI, "active": "on"}
            filed = client.post(f"{PAGE}?lang=en", data=siti, follow_redirects=False)
            request_id = re.search(r"requested=(\w+)", filed.headers["location"]).group(1)  # type: ignore[union-attr]
            shown = client.get(filed.headers["location"]).text
            assert "Change waiting for approval:" in shown
            with engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(staff_accounts)).scalar_one() == 0
                stored = conn.execute(sa.select(change_requests.c.doc).where(change_requests.c.id == request_id))
                doc = json.loads(stored.scalar_one())
            assert doc["password_hash"].startswith("$argon2id$")
            assert SITI not in json.dumps(doc)
            assert published(nats_server.url) is None  # nothing reached the branch

            queue = client.get("/admin/approvals", params={"lang": "en"}).text
            row = queue.split(f'data-request="{request_id}"', 1)[1].split("</tr>", 1)[0]
            assert "+ role: &#34;agent&#34;" in row or '+ role: "agent"' in row
            assert "+ password: (new)" in row
            assert "argon2" not in queue
            own = client.post(f"/admin/approvals/{request_id}/approve?lang=en", follow_redirects=True)
            assert "You cannot approve your own request." in own.text

            sign_in(client, "budi")
            client.post(f"/admin/approvals/{request_id}/approve", follow_redirects=False)
            doc_now = published(nats_server.url)
            assert doc_now is not None
            assert [(a.username, a.role, a.password_hash[:10]) for a in doc_now.accounts] == [
                ("siti", "agent", "$argon2id$")
            ]

            # A second request for siti, then a direct change of siti with the switch off: approving the request
            # would overwrite that change, so it is refused and the account stays as changed.
            sign_in(client, "ana")
            later = client.post(f"{PAGE}?lang=en", data={**siti, "role": "supervisor", "password": ""},
                                follow_redirects=False)  # fmt: skip
            stale = re.search(r"requested=(\w+)", later.headers["location"]).group(1)  # type: ignore[union-attr]
            client.post("/admin/approvals/settings/acme", data={})
            client.post(f"{PAGE}?lang=en", data={**siti, "role": "admin", "password": ""})
            sign_in(client, "budi")
            refused = client.post(f"/admin/approvals/{stale}/approve?lang=en", follow_redirects=True)
            assert "The account changed after the request was made" in refused.text
            assert [(a.username, a.role) for a in published(nats_server.url).accounts] == [("siti", "admin")]  # type: ignore[union-attr]

            trail = client.get("/admin/audit", params={"lang": "en"}).text
            for action in ("staff.request", "staff.approve", "staff.create", "staff.update"):
                assert f'data-action="{action}"' in trail, action
            assert "argon2" not in trail
            assert SITI not in trail
    finally:
        engine.dispose()
