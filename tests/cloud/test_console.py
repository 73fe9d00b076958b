"""The HQ console page and its JSON twin over a store filled with real replicated events (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient

from cloud.apply import Incoming, apply_batch
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.relay import event_subject
from tests.cloud.branch_events import make_branch_events, subject


def test_console_shows_branches_queues_and_event_counts(store_url: str, tmp_path: Path) -> None:
    one = make_branch_events(tmp_path / "one", "jkt-sudirman", tickets=20)
    two = make_branch_events(tmp_path / "two", "bdg-dago", tickets=4)
    engine = create_store_engine(store_url)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in one])
    apply_batch(engine, [Incoming(subject("bdg-dago"), o.payload) for o in two[:2] + two[3:]])  # seq 3 missing
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        data = client.get("/api/v1/branches").json()
        page = client.get("/", params={"lang": "en"})
    by_id = {b["branch_id"]: b for b in data["branches"]}
    assert by_id["jkt-sudirman"]["link"] == "ok"
    assert by_id["jkt-sudirman"]["events"] == len(one)
    assert by_id["jkt-sudirman"]["config_version"] == 1
    assert by_id["jkt-sudirman"]["queue"]["teller"] == {"waiting": 11, "called": 1, "serving": 0}
    assert by_id["bdg-dago"]["link"] == "gap"
    assert by_id["bdg-dago"]["problem"] == "missing seq 3..3"
    assert by_id["bdg-dago"]["parked"] == len(two) - 3
    counts = {row["type"]: row["count"] for row in data["event_counts"]}
    assert counts["ticket.created"] == 20 + 1  # bdg-dago: config.applied, then one ticket before the gap
    assert data["total_events"] == len(one) + 2
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    for text in ("jkt-sudirman", "bdg-dago", "missing seq 3..3", "ticket.created", "runs v1"):
        assert text in page.text


def test_console_requires_the_password_when_one_is_set(tmp_path: Path) -> None:
    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", console_password="s3cret")
    with TestClient(app=create_app(settings)) as client:
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert client.get("/api/v1/branches", auth=("hq", "wrong")).status_code == 401
        assert client.get("/api/v1/branches", headers={"Authorization": "Basic !!!"}).status_code == 401
        assert client.get("/api/v1/branches", auth=("hq", "s3cret")).status_code == 200
        assert client.get("/", auth=("hq", "s3cret")).status_code == 200
        assert client.get("/api/v1/health").status_code == 200  # monitoring stays open


def test_console_names_each_queue_by_tenant_and_branch(store_url: str, tmp_path: Path) -> None:
    """Two tenants with the same branch id: each live-queue row says whose branch it is (not `jkt-sudirman` twice)."""
    events = make_branch_events(tmp_path / "one", "jkt-sudirman", tickets=5)
    engine = create_store_engine(store_url)
    for tenant in ("acme", "beta"):
        apply_batch(engine, [Incoming(event_subject(tenant, "jkt-sudirman"), o.payload) for o in events])
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        page = client.get("/").text
    queues = page.split('id="queues"', 1)[1].split("</table>", 1)[0]
    # each row: the branch's name (from what it runs) with whose branch it is, and the service's name, not its id
    rows = re.findall(r"<tr data-tenant=\"(\w+)\" data-branch=\"([\w-]+)\"><td>([^<]+) <small[^>]*>([^<]+)</small>"
                      r"</td><td>Teller</td>", queues)  # fmt: skip
    assert sorted(rows) == [
        ("acme", "jkt-sudirman", "Bank Demo - KCP Sudirman", "acme.jkt-sudirman"),
        ("beta", "jkt-sudirman", "Bank Demo - KCP Sudirman", "beta.jkt-sudirman"),
    ]
    listed = page.split('id="branches"', 1)[1].split("</table>", 1)[0]
    assert "+00:00" not in listed  # times in the branch's zone, not raw UTC stamps


def test_a_basic_header_with_non_ascii_bytes_is_refused_not_a_500(tmp_path: Path) -> None:
    """`Authorization: Basic \\xe9\\xe9` (Latin-1 bytes, not base64) crashed the console guard with a 500."""
    headers = {"Authorization": b"Basic \xe9\xe9\xe9"}
    with TestClient(app=create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'open.sqlite3'}"))) as client:
        assert client.get("/api/v1/branches", headers=headers).status_code == 200  # an open console ignores it
        assert client.get("/", headers=headers).status_code == 200
    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'closed.sqlite3'}", console_password="s3cret")
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/api/v1/branches", headers=headers).status_code == 401
        assert client.get("/", headers=headers).status_code == 401
