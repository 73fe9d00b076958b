"""HQ console accounts against the real app and a real store (SQLite, PostgreSQL): argon2 logins, disabled accounts,
tenant scoping of the page and its JSON, back-off, the `--console-password` fallback, and no secret in the logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.apply import Incoming, apply_batch
from cloud.hq_users import disable_user, upsert_user
from cloud.store import create_store_engine, hq_users
from cloud.web import console_auth
from cloud.web.app import CloudSettings, create_app
from sync.relay import event_subject
from tests.cloud.branch_events import make_branch_events

VIEWER_PW = "viewer-pass-1234"
ADMIN_PW = "admin-pass-56789"
SHARED_PW = "shared-hq-password"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Incoming]]:
    """Two tenants' branches as their relays ship them: acme/jkt-sudirman and globex/sby-tunjungan."""
    tmp = tmp_path_factory.mktemp("branches")
    acme = make_branch_events(tmp / "acme", "jkt-sudirman", tickets=6)
    globex = make_branch_events(tmp / "globex", "sby-tunjungan", tickets=3)
    return {
        "acme": [Incoming(event_subject("acme", "jkt-sudirman"), o.payload) for o in acme],
        "globex": [Incoming(event_subject("globex", "sby-tunjungan"), o.payload) for o in globex],
    }


@pytest.fixture
def hub(store_url: str, shipped: dict[str, list[Incoming]]) -> str:
    """A store with both tenants' events and three accounts: an acme viewer, an all-tenant admin, a globex viewer."""
    engine = create_store_engine(store_url)
    for batch in shipped.values():
        apply_batch(engine, batch)
    upsert_user(engine, "ana", VIEWER_PW, "hq_viewer", ["acme"])
    upsert_user(engine, "root", ADMIN_PW, "hq_admin", ["*"])
    upsert_user(engine, "gus", VIEWER_PW, "hq_viewer", ["globex"])
    engine.dispose()
    return store_url


def branch_ids(response: httpx.Response) -> set[str]:
    return {b["branch_id"] for b in response.json()["branches"]}


def test_accounts_open_the_console_with_their_password_only(hub: str) -> None:
    with TestClient(app=create_app(CloudSettings(db_url=hub))) as client:
        assert client.get("/api/v1/branches").status_code == 401
        assert client.get("/api/v1/branches").headers["www-authenticate"].startswith("Basic")
        assert client.get("/api/v1/branches", auth=("ana", "wrong-password")).status_code == 401
        assert client.get("/api/v1/branches", auth=("nobody", VIEWER_PW)).status_code == 401
        assert client.get("/api/v1/branches", auth=("ana", ADMIN_PW)).status_code == 401
        assert client.get("/api/v1/branches", auth=("ana", VIEWER_PW)).status_code == 200
        assert client.get("/", auth=("root", ADMIN_PW)).status_code == 200
        assert client.get("/api/v1/health").status_code == 200  # monitoring stays open
        assert client.get("/t/not-a-token").status_code == 404  # public: a plain 404, not a login challenge


def test_the_stored_hash_is_argon2id(hub: str) -> None:
    engine = create_store_engine(hub)
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(hq_users.c.username, hq_users.c.password_hash)).all())
    engine.dispose()
    assert set(hashes) == {"ana", "root", "gus"}
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert VIEWER_PW not in hashes["ana"]


def test_each_account_sees_only_its_tenants_in_the_page_and_the_json(hub: str) -> None:
    with TestClient(app=create_app(CloudSettings(db_url=hub))) as client:
        ana = client.get("/api/v1/branches", auth=("ana", VIEWER_PW))
        gus = client.get("/api/v1/branches", auth=("gus", VIEWER_PW))
        root = client.get("/api/v1/branches", auth=("root", ADMIN_PW))
        ana_page = client.get("/", params={"lang": "en"}, auth=("ana", VIEWER_PW)).text
        root_page = client.get("/", auth=("root", ADMIN_PW)).text
    assert branch_ids(ana) == {"jkt-sudirman"}
    assert branch_ids(gus) == {"sby-tunjungan"}
    assert branch_ids(root) == {"jkt-sudirman", "sby-tunjungan"}
    assert ana.json()["viewer"] == {"username": "ana", "role": "auditor", "tenants": ["acme"]}
    assert root.json()["viewer"]["tenants"] == ["*"]
    # The cross-branch counts are scoped too: another tenant's events are not even counted.
    assert ana.json()["total_events"] + gus.json()["total_events"] == root.json()["total_events"]
    assert ana.json()["total_events"] < root.json()["total_events"]
    assert "jkt-sudirman" in ana_page
    assert "sby-tunjungan" not in ana_page
    assert "Signed in as <strong>ana</strong>" in ana_page
    assert "jkt-sudirman" in root_page
    assert "sby-tunjungan" in root_page


def test_a_disabled_or_changed_account_stops_working_at_once(hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = counting_password_checks(monkeypatch)
    with TestClient(app=create_app(CloudSettings(db_url=hub))) as client:
        for _ in range(3):  # a page and its follow-up requests: argon2 once, then the short cache
            assert client.get("/api/v1/branches", auth=("ana", VIEWER_PW)).status_code == 200
        assert len(checks) == 1
        engine = create_store_engine(hub)
        assert disable_user(engine, "ana")
        assert client.get("/api/v1/branches", auth=("ana", VIEWER_PW)).status_code == 401  # cached, still refused
        assert client.get("/api/v1/branches", auth=("root", ADMIN_PW)).status_code == 200
        upsert_user(engine, "root", "a-new-admin-password", "hq_admin", ["*"])
        assert client.get("/api/v1/branches", auth=("root", ADMIN_PW)).status_code == 401  # old password, cached
        assert client.get("/api/v1/branches", auth=("root", "a-new-admin-password")).status_code == 200
        upsert_user(engine, "ana", VIEWER_PW, "hq_viewer", ["globex"])  # re-adding enables and re-scopes
        assert branch_ids(client.get("/api/v1/branches", auth=("ana", VIEWER_PW))) == {"sby-tunjungan"}
        engine.dispose()


def test_unknown_users_cost_the_same_argon2_work(hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = counting_password_checks(monkeypatch)
    with TestClient(app=create_app(CloudSettings(db_url=hub))) as client:
        assert client.get("/api/v1/branches", auth=("nobody", VIEWER_PW)).status_code == 401
        assert client.get("/api/v1/branches", auth=("ana", "wrong-password")).status_code == 401
    assert len(checks) == 2
    assert checks[0] is None  # verified against a dummy hash, not skipped
    assert checks[1] is not None


def test_failed_logins_back_off_per_username(hub: str) -> None:
    with TestClient(app=create_app(CloudSettings(db_url=hub))) as client:
        for _ in range(console_auth.LOGIN_MAX_FAILURES):
            assert client.get("/api/v1/branches", auth=("ana", "wrong-password")).status_code == 401
        throttled = client.get("/api/v1/branches", auth=("ana", VIEWER_PW))  # even the right password waits
        assert throttled.status_code == 429
        assert 0 < int(throttled.headers["retry-after"]) <= console_auth.LOGIN_WINDOW_SECONDS
        assert client.get("/api/v1/branches", auth=("root", ADMIN_PW)).status_code == 200  # others still log in


def test_failed_logins_back_off_per_client_address(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = create_store_engine(url)
    upsert_user(engine, "root", ADMIN_PW, "hq_admin", ["*"])
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=url))) as client:
        for i in range(console_auth.LOGIN_MAX_FAILURES_PER_ADDRESS):
            assert client.get("/", auth=(f"guess{i}", "wrong-password")).status_code == 401
        throttled = client.get("/", auth=("root", ADMIN_PW))
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0


def test_accounts_replace_the_shared_password(hub: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="qms.cloud.web")
    with TestClient(app=create_app(CloudSettings(db_url=hub, console_password=SHARED_PW))) as client:
        assert client.get("/api/v1/branches", auth=("hq", SHARED_PW)).status_code == 401
        assert client.get("/api/v1/branches", auth=("root", ADMIN_PW)).status_code == 200
    assert "--console-password is ignored" in caplog.text


def test_the_shared_password_works_while_no_account_exists(tmp_path: Path) -> None:
    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", console_password=SHARED_PW)
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/api/v1/branches", auth=("hq", SHARED_PW)).status_code == 200
        assert client.get("/api/v1/branches", auth=("hq", "wrong")).status_code == 401
        engine = create_store_engine(settings.db_url)
        upsert_user(engine, "root", ADMIN_PW, "hq_admin", ["*"])  # the first account closes the shared door
        engine.dispose()
        assert client.get("/api/v1/branches", auth=("hq", SHARED_PW)).status_code == 401
        assert client.get("/api/v1/branches", auth=("root", ADMIN_PW)).status_code == 200


def test_an_open_console_says_so_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="qms.cloud.web")
    with TestClient(app=create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.sqlite3'}"))) as client:
        assert client.get("/api/v1/branches").status_code == 200
    assert "OPEN to anyone" in caplog.text


def test_no_password_reaches_the_logs(hub: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(app=create_app(CloudSettings(db_url=hub, console_password=SHARED_PW))) as client:
        client.get("/", auth=("ana", VIEWER_PW))
        client.get("/", auth=("ana", "wrong-password"))
        client.get("/", auth=(ADMIN_PW, ADMIN_PW))  # a password typed into the name box
        for _ in range(console_auth.LOGIN_MAX_FAILURES + 1):
            client.get("/", auth=("gus", "typo-password-x"))
    assert "refused" in caplog.text
    assert "throttled" in caplog.text
    for secret in (VIEWER_PW, ADMIN_PW, SHARED_PW, "wrong-password", "typo-password-x"):
        assert secret not in caplog.text


def counting_password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Record the stored hash of every argon2 verification the console runs."""
    seen: list[str | None] = []
    real: Callable[[str | None, str], bool] = console_auth.check_password

    def check(stored_hash: str | None, password: str) -> bool:
        seen.append(stored_hash)
        return real(stored_hash, password)

    monkeypatch.setattr(console_auth, "check_password", check)
    return seen
