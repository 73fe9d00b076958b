"""Supervisor from HQ (US-AGENT-008): a branch's floor from the hub's replica of its log — counters with
presence and the ticket each is calling, each service's line — in both languages; another tenant's branch is 404."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient

from cloud.admin.floor import floor
from cloud.apply import Incoming, apply_batch
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.cloud.branch_events import make_branch_events, subject


def test_the_floor_shows_counters_and_lines_read_only(store_url: str, tmp_path: Path) -> None:
    log = make_branch_events(tmp_path / "edge", "jkt-sudirman", tickets=20)
    engine = create_store_engine(store_url)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    with engine.connect() as conn:
        view = floor(conn, "acme", "jkt-sudirman", "en")
    lines = {s.service_id: s for s in view.services}
    assert lines["teller"].waiting == 11  # as the console's live queue counts it
    assert lines["teller"].numbers[0].startswith("A")
    calling = {c.counter_id: c.ticket_status for c in view.counters if c.ticket}
    assert calling == {"2": "called", "4": "called"}  # counter 1 completed its ticket
    assert view.liveness.state == "never connected"  # no heartbeat in this replay: HQ says so
    # names for people, not ids: the branch's, and each live ticket's service and counter
    assert view.branch_name
    assert view.branch_name != "jkt-sudirman"
    assert {t.service_name for t in view.tickets} <= {s.name for s in view.services}
    assert "teller" not in {t.service_name for t in view.tickets}
    assert {t.counter_name for t in view.tickets if t.counter_id} <= {c.name for c in view.counters}
    add_accounts(engine, "ira")
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        sign_in(client, "ira")  # an auditor: floor.read
        en = client.get("/admin/supervisor/acme/jkt-sudirman", params={"lang": "en"})
        assert en.status_code == 200
        assert re.search(r'data-counter="2" data-presence="\w+"><td>Loket 2</td>', en.text)
        assert 'data-action="closed"' not in en.text  # an auditor sees, but cannot act
        assert 'http-equiv="refresh"' not in en.text  # kept current by its stream, not by reloading
        assert 'data-live-url="/admin/supervisor/acme/jkt-sudirman/live?lang=en"' in en.text
        assert view.branch_name in en.text
        assert " UTC" not in en.text  # times in the branch's zone, named
        assert "Asia/Jakarta" in en.text
        idn = client.get("/admin/supervisor/acme/jkt-sudirman", params={"lang": "id"}).text
        assert "Kehadiran" in idn
        assert "Tunggu terlama" in idn
        assert client.get("/admin/supervisor/beta/jkt-sudirman").status_code == 404
        assert client.get("/admin/supervisor/acme/no-such-branch").status_code == 404
        assert 'data-branch="jkt-sudirman"' in client.get("/admin/supervisor").text
