"""The notify console and webhook routes through the real hub app: write-only provider secrets, templates with a
preview and SMS segments, the message log and DLQ with replay, tenant scope, 400 problem+json for bad bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.hq_users import upsert_user
from cloud.notify.tables import providers
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.identity.conftest import csrf_of, sign_in
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.cloud_hub import wait_until

PASSWORD = "correct horse battery"
Hub = tuple[TestClient, sa.Engine]


def assert_problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 refusal like every other of the hub's: type, title, status, detail and the stable `code`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["type"] == f"urn:qms:problem:{body['code']}", body
    assert (body["status"], body["code"]) == (status, code), body
    assert body["title"], body
    assert body["detail"], body
    return body


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """The hub app over a fresh SQLite store with its dispatcher running, signed in as the tenant's admin (unsafe
    methods carry the session's CSRF token); another tenant's admin exists too."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    upsert_user(engine, "acme-admin", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "other-admin", PASSWORD, "tenant_admin", ["other"])
    with TestClient(app=create_app(CloudSettings(db_url=url)), base_url="http://hub.test") as client:
        assert sign_in(client, "acme-admin", PASSWORD).status_code == 303
        client.headers["X-CSRFToken"] = csrf_of(client)
        yield client, engine
    engine.dispose()


def test_provider_secrets_are_write_only(hub: Hub, smtp_server: SmtpServer) -> None:
    client, engine = hub
    saved = client.put(f"/api/v1/notify/providers/email?tenant={TENANT}",
                       json={"provider": "email", "settings": smtp_server.settings})  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert saved.json()["channels"]["email"]["settings"]["password"] == "••••"
    assert smtp_server.settings["password"] not in saved.text
    masked = {**smtp_server.settings, "password": "••••"}
    again = client.put(
        f"/api/v1/notify/providers/email?tenant={TENANT}", json={"provider": "email", "settings": masked}
    )
    assert again.status_code == 200
    with engine.connect() as conn:
        stored = conn.execute(sa.select(providers.c.settings)).scalar_one()
    assert smtp_server.settings["password"] in stored  # kept, not overwritten with the mask
    wrong = client.put(f"/api/v1/notify/providers/sms?tenant={TENANT}", json={"provider": "email", "settings": {}})
    assert_problem(wrong, 400, "provider_not_for_channel")
    page = client.get(f"/notify/settings?tenant={TENANT}&lang=en")
    assert page.status_code == 200
    assert smtp_server.settings["password"] not in page.text
    assert "••••" in page.text


def test_malformed_bodies_are_400_problem_json(hub: Hub) -> None:
    client, _ = hub
    for method, path in (("PUT", "/api/v1/notify/settings"), ("PUT", "/api/v1/notify/providers/email"),
                         ("POST", "/api/v1/notify/templates/preview"),
                         ("PUT", "/api/v1/notify/templates/ticket.called/sms/id")):  # fmt: skip
        for body in (b"{", b'{"to_go_threshold": "x"}', b"[]"):
            answer = client.request(method, f"{path}?tenant={TENANT}", content=body,
                                    headers={"content-type": "application/json"})  # fmt: skip
            assert_problem(answer, 400, "invalid_body")
    settings = client.put(f"/api/v1/notify/settings?tenant={TENANT}", json={"to_go_threshold": 2,
                          "to_go_by_service": {"cs": 4}, "whatsapp_fallback": "email"})  # fmt: skip
    assert settings.status_code == 200
    assert settings.json()["policy"]["to_go_by_service"] == {"cs": 4}


def test_template_editor_preview_and_segments(hub: Hub) -> None:
    client, _ = hub
    preview = client.post(
        "/api/v1/notify/templates/preview", json={"body": "Nomor {{ ticket_number }} ke {{ counter_name }} {{ nama }}"}
    )
    assert preview.json() == {"ok": True, "text": "Nomor A012 ke Loket 3", "subject": None, "chars": 21,
                              "segments": {"encoding": "gsm7", "units": 21, "segments": 1}}  # fmt: skip
    emoji = client.post("/api/v1/notify/templates/preview", json={"body": "Giliran Anda 🎉 " + "x" * 60})
    assert emoji.json()["segments"] == {"encoding": "ucs2", "units": 76, "segments": 2}
    broken = client.put(f"/api/v1/notify/templates/ticket.called/sms/id?tenant={TENANT}", json={"body": "{{ oops"})
    assert_problem(broken, 400, "template_invalid")
    ok = client.put(f"/api/v1/notify/templates/ticket.called/sms/id?tenant={TENANT}",
                    json={"body": "Silakan ke {{ counter_name }}, nomor {{ ticket_number }}"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    listed = client.get(f"/api/v1/notify/templates?tenant={TENANT}").json()["templates"]
    mine = [t for t in listed if (t["trigger"], t["channel"], t["lang"]) == ("ticket.called", "sms", "id")]
    assert mine[0]["custom"] is True
    assert (
        client.put(f"/api/v1/notify/templates/ticket.nope/sms/id?tenant={TENANT}", json={"body": "x"}).status_code
        == 404
    )
    for lang in ("id", "en"):
        page = client.get(f"/notify/templates?tenant={TENANT}&lang={lang}&channel=sms&trigger=ticket.called&tlang=id")
        assert page.status_code == 200
        assert "Silakan ke Loket 3, nomor A012" in page.text
    assert client.delete(f"/api/v1/notify/templates/ticket.called/sms/id?tenant={TENANT}").status_code == 200


def test_log_dlq_replay_and_tenant_scope(
    hub: Hub,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    client, engine = hub
    client.put(
        f"/api/v1/notify/providers/email?tenant={TENANT}", json={"provider": "email", "settings": smtp_server.settings}
    )
    smtp_server.fail_with("550 5.1.1 no such mailbox")
    branch = Branch(tmp_path / "edge", engine)
    try:
        ticket = branch.enqueue("teller", email="rina@example.com", phone="081234567890")
        branch.ship()
    finally:
        branch.stop()

    def dead() -> list[dict[str, object]]:
        return [r for r in rows(engine, ticket_id=ticket) if r["status"] == "dead"]

    (row,) = wait_until(dead, what="the message in the DLQ")
    dlq = client.get("/api/v1/notify/dlq").json()["messages"]
    assert [m["id"] for m in dlq] == [row["id"]]
    assert dlq[0]["recipient"] == "r***@example.com"
    assert "rina@example.com" not in client.get("/notify/dlq?lang=en").text
    log = client.get(
        "/api/v1/notify/messages", params={"status": "dead", "channel": "email", "branch_id": branch.branch_id}
    )
    assert [m["id"] for m in log.json()["messages"]] == [row["id"]]
    assert client.get("/api/v1/notify/messages", params={"channel": "sms"}).json()["messages"] == []
    for lang in ("id", "en"):
        assert client.get(f"/notify/messages?lang={lang}").status_code == 200
    # another tenant's account (HTTP Basic, its own client: no session cookie) sees nothing of it
    other = TestClient(app=client.app, base_url="http://hub.test")
    assert other.get("/api/v1/notify/dlq", auth=("other-admin", PASSWORD)).json()["messages"] == []
    assert other.get(f"/api/v1/notify/messages?tenant={TENANT}", auth=("other-admin", PASSWORD)).status_code == 404
    assert other.get(f"/api/v1/notify/messages/{row['id']}/attempts", auth=("other-admin", PASSWORD)).status_code == 404
    assert other.get(f"/api/v1/notify/settings?tenant={TENANT}", auth=("other-admin", PASSWORD)).status_code == 404
    attempts = client.get(f"/api/v1/notify/messages/{row['id']}/attempts")
    assert [a["outcome"] for a in attempts.json()["attempts"]] == ["permanent"]
    smtp_server.fail_with(None)
    assert client.post(f"/api/v1/notify/messages/{row['id']}/replay").json() == {"replayed": True}
    again = assert_problem(client.post(f"/api/v1/notify/messages/{row['id']}/replay"), 409, "not_dead")
    assert str(row["id"]) in again["detail"]
    smtp_server.wait_for(1)
    assert smtp_server.messages[0].recipients == ["rina@example.com"]


def test_webhooks_unknown_or_unsigned(hub: Hub) -> None:
    client, _ = hub
    assert client.post(f"/api/v1/notify/webhooks/nope/{TENANT}", content=b"{}").status_code == 404
    assert client.post(f"/api/v1/notify/webhooks/twilio/{TENANT}", content=b"{}").status_code == 404  # not configured


def test_webhook_and_tenant_refusals_are_problems_with_a_code(hub: Hub) -> None:
    client, engine = hub
    whatsapp = {"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"}
    assert client.put(f"/api/v1/notify/providers/whatsapp?tenant={TENANT}",
                      json={"provider": "whatsapp", "settings": whatsapp}).status_code == 200  # fmt: skip
    unsigned = client.post(f"/api/v1/notify/webhooks/whatsapp/{TENANT}", content=b"{}")
    assert_problem(unsigned, 400, "invalid_webhook")
    handshake = {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "42"}
    assert_problem(client.get(f"/api/v1/notify/webhooks/whatsapp/{TENANT}", params=handshake), 403,
                   "verification_failed")  # fmt: skip
    upsert_user(engine, "two-tenants", PASSWORD, "tenant_admin", [TENANT, "other"])
    both = TestClient(app=client.app, base_url="http://hub.test")
    assert_problem(both.get("/api/v1/notify/settings", auth=("two-tenants", PASSWORD)), 400, "tenant_required")


@pytest.mark.parametrize("outbox_id", ["99999999999999999999999", "9223372036854775808", "-1", "0"])
def test_an_out_of_range_message_id_is_404_not_500(hub: Hub, outbox_id: str) -> None:
    """SQLite's integers stop at 2**63-1: a bigger id in the path must be "no such message", not an overflow."""
    client, _ = hub
    assert client.get(f"/api/v1/notify/messages/{outbox_id}/attempts").status_code == 404
    assert client.post(f"/api/v1/notify/messages/{outbox_id}/replay").status_code == 404
    assert client.post(f"/notify/messages/{outbox_id}/replay", follow_redirects=False).status_code == 404


def _audit_rows(engine: sa.Engine) -> list[dict[str, object]]:
    from cloud.admin.tables import hub_audit

    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(hub_audit).order_by(hub_audit.c.seq))]


@pytest.mark.parametrize("lang", ["id", "en"])
def test_settings_are_edited_in_forms_and_audited(hub: Hub, smtp_server: SmtpServer, lang: str) -> None:
    """The settings page edits the policy and each channel's provider in plain forms; secrets are write-only (never
    shown back, kept when the field is left empty); every change is one hub audit entry without the secret."""
    client, engine = hub
    page = client.get(f"/notify/settings?tenant={TENANT}&lang={lang}")
    assert 'action="/notify/settings?' in page.text
    assert 'name="to_go_threshold"' in page.text
    form = {"enabled": "on", "channel.email": "on", "channel.sms": "on", "trigger.ticket.called": "on",
            "to_go_threshold": "5", "whatsapp_fallback": "email", "retention_days": "14", "max_attempts": "4",
            "public_url": "https://q.example.com"}  # fmt: skip
    saved = client.post(f"/notify/settings?tenant={TENANT}&lang={lang}", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    rules = client.get(f"/api/v1/notify/settings?tenant={TENANT}").json()["policy"]
    assert rules["to_go_threshold"] == 5
    assert rules["channels"] == {"email": True, "sms": True, "whatsapp": False, "push": False}
    assert rules["triggers"]["ticket.called"] is True
    assert rules["triggers"]["ticket.created"] is False
    assert (rules["whatsapp_fallback"], rules["retention_days"]) == ("email", 14)
    bad = client.post(f"/notify/settings?tenant={TENANT}", data={**form, "to_go_threshold": "500"})
    assert_problem(bad, 400, "invalid_settings")
    assert_problem(client.post(f"/notify/settings?tenant={TENANT}", data={**form, "retention_days": "x"}), 400,
                   "invalid_settings")  # fmt: skip
    settings = {k: str(v) for k, v in smtp_server.settings.items() if v is not None}
    provider = client.post(f"/notify/settings/providers/email?tenant={TENANT}&lang={lang}",
                           data={"provider": "email", **settings}, follow_redirects=False)  # fmt: skip
    assert provider.status_code == 303, provider.text
    again = client.post(f"/notify/settings/providers/email?tenant={TENANT}",
                        data={"provider": "email", **settings, "password": ""}, follow_redirects=False)  # fmt: skip
    assert again.status_code == 303
    with engine.connect() as conn:
        stored = conn.execute(sa.select(providers.c.settings)).scalar_one()
    assert settings["password"] in stored  # left empty: kept
    page = client.get(f"/notify/settings?tenant={TENANT}&lang={lang}")
    assert settings["password"] not in page.text
    assert 'name="password"' in page.text
    assert client.post(f"/notify/settings/providers/email/delete?tenant={TENANT}",
                       follow_redirects=False).status_code == 303  # fmt: skip
    audit = _audit_rows(engine)
    actions = [(r["action"], r["target"]) for r in audit if str(r["action"]).startswith("notify.")]
    assert actions == [("notify.policy", None), ("notify.provider", "email"), ("notify.provider", "email"),
                       ("notify.provider_delete", "email")]  # fmt: skip
    assert all(
        r["actor"] == "acme-admin" and r["tenant_id"] == TENANT for r in audit if r["action"] != "console.sign_in"
    )
    assert settings["password"] not in json.dumps([{k: str(v) for k, v in r.items()} for r in audit])


def test_settings_forms_need_manage_and_the_tenant(hub: Hub) -> None:
    client, _ = hub
    other = client.post("/notify/settings?tenant=other", data={"to_go_threshold": "3"})
    assert other.status_code == 404
    api = client.put(f"/api/v1/notify/settings?tenant={TENANT}", json={"to_go_threshold": 2})
    assert api.status_code == 200
    assert [r["action"] for r in _audit_rows(hub[1]) if r["action"] == "notify.policy"] == ["notify.policy"]


@pytest.fixture
def any_store_hub(store_url: str) -> Iterator[Hub]:
    """The hub app over SQLite or PostgreSQL, signed in as the tenant's admin (as `hub`)."""
    engine = create_store_engine(store_url)
    upsert_user(engine, "acme-admin", PASSWORD, "tenant_admin", [TENANT])
    with TestClient(app=create_app(CloudSettings(db_url=store_url)), base_url="http://hub.test") as client:
        assert sign_in(client, "acme-admin", PASSWORD).status_code == 303
        client.headers["X-CSRFToken"] = csrf_of(client)
        yield client, engine
    engine.dispose()


def test_a_nul_in_a_template_or_a_log_filter_is_refused_not_a_500(any_store_hub: Hub) -> None:
    """PostgreSQL refuses NUL in text: a wording with one and the log's or DLQ's filters with one were 500s."""
    client, _ = any_store_hub
    saved = client.put(f"/api/v1/notify/templates/ticket.called/sms/id?tenant={TENANT}",
                       json={"body": "Nomor {{ ticket_number }}\x00"})  # fmt: skip
    assert saved.status_code == 400, saved.text
    assert saved.headers["content-type"].startswith("application/problem+json")
    for path in ("/api/v1/notify/messages", "/api/v1/notify/dlq"):
        for name in ("trigger", "channel", "branch_id", "status"):
            listed = client.get(path, params={"tenant": TENANT, name: "a\x00b"})
            # refused at the hub's door (cloud/ops/web.py: a NUL anywhere in the address) before the route runs
            assert listed.status_code == 400, (path, name, listed.text)
            assert listed.headers["content-type"].startswith("application/problem+json")
