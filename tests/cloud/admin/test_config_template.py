"""A service applied as a template to several branches at once (US-ADMIN-002): each branch gets its own version,
checked on its own; a branch whose configuration would break is skipped, not half-changed (real nats-server)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.apply import Incoming, apply_batch
from cloud.store import config_versions, create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.contract_config import config_decoder
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.cloud.branch_events import make_branch_events, subject
from tests.support.nats_server import NatsServer

BRANCHES = ("jkt-sudirman", "bdg-dago", "sby-darmo")
PROFILE = {"tenant": "acme", "name": "KCP", "timezone": "Asia/Jakarta"}


def test_a_service_goes_to_the_chosen_branches_each_checked(tmp_path: Path, nats_server: NatsServer) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    for branch in BRANCHES:
        log = make_branch_events(tmp_path / branch, branch, tickets=4)
        apply_batch(engine, [Incoming(subject(branch), o.payload) for o in log])
    add_accounts(engine, "ana")
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    with TestClient(app=create_app(settings)) as client:
        sign_in(client, "ana")
        for branch in BRANCHES:
            assert client.post("/admin/branches", data={**PROFILE, "branch_id": branch}).status_code == 201
        page = client.get("/admin/config/acme/jkt-sudirman", params={"lang": "en"}).text
        assert 'name="apply_to" value="bdg-dago"' in page
        # sby-darmo already uses prefix K for a service of its own: the template cannot go there.
        darmo = client.get("/admin/config/acme/sby-darmo").text
        assert "data-service" in darmo
        taken = client.post(
            "/admin/config/acme/sby-darmo/service",
            data={"id": "kredit", "name": "Kredit", "prefix": "K", "active": "on", "base_version": "1"},
            follow_redirects=False,
        )
        assert taken.status_code == 303
        done = client.post(
            "/admin/config/acme/jkt-sudirman/service?lang=en",
            data={
                "id": "forex",
                "name": "Valas",
                "prefix": "K",
                "active": "on",
                "base_version": "1",
                "apply_to": ["bdg-dago", "sby-darmo"],
            },
            follow_redirects=False,
        )
        assert done.status_code == 303
        shown = client.get(done.headers["location"]).text
        assert 'data-branch="bdg-dago">bdg-dago → Distributed v2' in shown
        assert "sby-darmo → refused" in shown
        # A change refused at the first branch goes nowhere else.
        bad = client.post(
            "/admin/config/acme/jkt-sudirman/service?lang=en",
            data={
                "id": "gold",
                "name": "Emas",
                "prefix": "A",
                "active": "on",
                "base_version": "2",
                "apply_to": ["bdg-dago"],
            },
            follow_redirects=False,
        )
        assert bad.status_code == 400
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(config_versions.c.branch_id, config_versions.c.version, config_versions.c.doc).order_by(
                config_versions.c.branch_id, config_versions.c.version
            )
        ).all()
    engine.dispose()
    services = {(b, v): [s.id for s in config_decoder.decode(doc).services] for b, v, doc in rows}
    assert services[("jkt-sudirman", 2)][-1] == "forex"
    assert services[("bdg-dago", 2)][-1] == "forex"
    assert ("sby-darmo", 3) not in services  # refused there: its v2 (kredit, prefix K) stays the newest
    assert services[("sby-darmo", 2)][-1] == "kredit"
    assert msgspec.json.decode(rows[0].doc)["branch_id"] == "bdg-dago"
