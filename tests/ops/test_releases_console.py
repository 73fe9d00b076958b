"""`qms-cloud release` and the console's releases page (US-ADMIN-010): a bundle of wheels is signed and registered,
rolled out to a canary branch from the command line, shown per branch in Indonesian and English, and published to
the rest of the tenant from the page's form; the signature verifies with the public key the hub hands appliances."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.credentials import issue
from cloud.hq_users import upsert_user
from cloud.identity import sessions
from cloud.releases import signing
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from cloud.web.console_auth import ConsoleAuth
from edge import updates


def test_release_publish_rollout_page_and_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(db)
    for branch in ("jkt-sudirman", "bdg-dago"):
        issue(engine, tmp_path / "keys", "acme", branch)
    upsert_user(engine, "root", "a-long-password-1", "platform_admin", ["*"])
    wheel = tmp_path / "qms-0.3.0-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel bytes")
    key = tmp_path / "release.key"
    cli = CliRunner()
    made = cli.invoke(cloud_app, ["release", "publish", "0.3.0", str(wheel), "--key", str(key),
                                  "--bundles-dir", str(tmp_path / "releases"), "--db-url", db])  # fmt: skip
    assert made.exit_code == 0, made.output
    public = updates.load_public_key(key.with_suffix(".pub").read_bytes())
    assert updates.verify_bundle(tmp_path / "releases" / "0.3.0", public).version == "0.3.0"
    monkeypatch.setenv(signing.KEY_ENV, str(key))
    assert signing.release_public_pem() == key.with_suffix(".pub").read_text()  # what enrolment hands out
    out = cli.invoke(cloud_app, ["release", "rollout", "0.3.0", "--tenant", "acme", "--wave", "canary",
                                 "--branch", "jkt-sudirman", "--db-url", db])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "to 1 branches: jkt-sudirman" in out.output
    refused = cli.invoke(cloud_app, ["release", "rollout", "9.9.9", "--tenant", "acme", "--wave", "rest",
                                     "--db-url", db])  # fmt: skip
    assert refused.exit_code == 1

    app = create_app(CloudSettings(db_url=db))
    auth: ConsoleAuth = app.state["console_auth"]
    grant = sessions.SessionGrant("root", "platform_admin", None, None, "session")
    raw = sessions.start(auth.engine, grant, auth.clock(), auth.policy, "test")
    headers = {"cookie": f"qms_session={raw}", "x-csrftoken": sessions.csrf_token_of(raw)}
    with TestClient(app=app) as client:
        en = client.get("/releases?lang=en", headers=headers)
        assert en.status_code == 200, en.text
        assert "Software releases" in en.text
        row = re.search(r'data-branch="acme/jkt-sudirman">(.*?)</tr>', en.text, re.S)
        assert row
        assert "0.3.0" in row.group(1)
        assert "Canary" in row.group(1)
        other = re.search(r'data-branch="acme/bdg-dago">(.*?)</tr>', en.text, re.S)
        assert other
        assert "0.3.0" not in other.group(1)
        idn = client.get("/releases?lang=id", headers=headers)
        assert "Rilis perangkat lunak" in idn.text
        assert "Kanari" in idn.text
        posted = client.post("/releases/publish?lang=en", headers=headers, follow_redirects=False,
                             data={"version": "0.3.0", "tenant": "acme", "wave": "rest", "branches": ""})  # fmt: skip
        assert posted.status_code == 303, posted.text
        assert "done=1" in posted.headers["location"]
        after = client.get("/releases?lang=en", headers=headers).text
        other = re.search(r'data-branch="acme/bdg-dago">(.*?)</tr>', after, re.S)
        assert other
        assert "0.3.0" in other.group(1)
        assert "The rest" in other.group(1)
    status = cli.invoke(cloud_app, ["release", "status", "--db-url", db])
    assert "acme/bdg-dago\t0.3.0\trest" in status.output
    engine.dispose()
