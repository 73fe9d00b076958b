"""Branches at HQ (US-ADMIN-001): the form's inline validation in both languages, create -> NATS key + one-time
enrolment code -> `POST /api/v1/enrol` (once, expiring), retire instead of delete while services are active, every step
audited, another tenant's branch 404 (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from cloud.admin.audit import verify
from cloud.admin.branches import new_enrolment_code
from cloud.credentials import public_key_of
from cloud.store import config_versions, create_store_engine, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from sync.contract_config import config_hash
from tests.cloud.admin.conftest import add_accounts, sign_in

FORM = {
    "tenant": "acme",
    "branch_id": "jkt-kuningan",
    "name": "KCP Kuningan",
    "timezone": "Asia/Jakarta",
    "address": "Jl. HR Rasuna Said 1, Jakarta",
    "open_mon": "08:00",
    "close_mon": "15:00",
    "open_sat": "09:00",
    "close_sat": "12:00",
    "areas": "f1: Lantai 1\nf2: Lantai 2",
}
CODE = re.compile(r"<code>([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})</code>")


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The hub app, signed in as a platform admin."""
    engine = create_store_engine(store_url)
    add_accounts(engine, "root")
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as c:
        sign_in(c, "root")
        yield c


def test_the_form_shows_each_error_beside_its_field_in_both_languages(client: TestClient) -> None:
    bad = {
        **FORM,
        "branch_id": "Not Valid",
        "name": "",
        "timezone": "Mars/Olympus",
        "open_mon": "15:00",
        "close_mon": "08:00",
        "areas": "no colon here",
    }
    en = client.post("/admin/branches?lang=en", data=bad)
    assert en.status_code == 400
    for field, words in (
        ("branch_id", "lower-case letters"),
        ("name", "A name is required"),
        ("timezone", "Unknown time zone"),
        ("hours_mon", "before the closing time"),
        ("areas", "Each line: id: name"),
    ):
        assert re.search(rf'id="error-{field}">[^<]*{words}', en.text), field
    assert 'value="Not Valid" aria-invalid="true"' in en.text  # what was typed stays in the form
    idn = client.post("/admin/branches?lang=id", data=bad)
    assert "Zona waktu tidak dikenal." in idn.text
    assert "Nama wajib diisi" in idn.text


def test_create_enrol_once_retire_and_delete(client: TestClient, store_url: str, tmp_path: Path) -> None:
    created = client.post("/admin/branches?lang=en", data=FORM)
    assert created.status_code == 201, created.text
    match = CODE.search(created.text)
    assert match, created.text
    code = match.group(1)
    assert "shown only once" in created.text
    step = created.text.split('id="nats-step"', 1)[1].split("</div>", 1)[0]  # what the admin must run, exactly
    assert f"qms-cloud branch users --keys-dir {tmp_path / 'keys'} --auth-out nats-auth.conf" in step
    assert "nats-server --signal reload" in step
    assert client.post("/admin/branches?lang=en", data=FORM).status_code == 400  # the id exists now

    seed_file = tmp_path / "keys" / "acme.jkt-kuningan.nk"
    page = client.get("/admin/branches/acme/jkt-kuningan?lang=en")
    assert "KCP Kuningan" in page.text
    assert 'value="09:00"' in page.text
    assert code not in page.text  # shown once, never again

    enrolled = client.post("/api/v1/enrol", json={"code": code.lower()})  # typed by hand: case does not matter
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert (body["tenant"], body["branch_id"]) == ("acme", "jkt-kuningan")
    assert body["nats_seed"] == seed_file.read_text().strip()
    assert public_key_of(seed_file).startswith("U")
    assert body["config"] is None  # nothing distributed yet
    assert enrolled.headers["cache-control"] == "no-store"
    again = client.post("/api/v1/enrol", json={"code": code})
    assert again.status_code == 404
    assert client.post("/api/v1/enrol", json={"code": "AAAA-BBBB-CCCC-DDDD"}).status_code == 404
    assert client.post("/api/v1/enrol", content=b"{not json").status_code == 400
    assert client.post("/api/v1/enrol", json={"code": 7}).status_code == 400

    engine = create_store_engine(store_url)
    with engine.begin() as conn:  # a code issued 25 hours ago has expired
        old, _ = new_enrolment_code(
            conn, "acme", "jkt-kuningan", actor="ana", source_ip=None, now=datetime.now(UTC) - timedelta(hours=25)
        )
    assert client.post("/api/v1/enrol", json={"code": old}).status_code == 404

    # Active services in its configuration: delete is refused, retire works.
    doc = msgspec.structs.replace(demo_config(), tenant_id="acme", branch_id="jkt-kuningan", version=1)
    with engine.begin() as conn:
        conn.execute(
            config_versions.insert().values(
                tenant_id="acme",
                branch_id="jkt-kuningan",
                version=1,
                doc=msgspec.json.encode(doc).decode(),
                config_hash=config_hash(doc),
                created_at=utcnow_iso(),
            )
        )
    refused = client.post("/admin/branches/acme/jkt-kuningan/delete?lang=en", follow_redirects=True)
    assert "retire it instead" in refused.text
    assert "teller" in refused.text
    retired = client.post("/admin/branches/acme/jkt-kuningan/retire?lang=en", follow_redirects=True)
    assert "retired" in retired.text
    assert 'id="reactivate"' in retired.text

    client.post("/admin/branches?lang=en", data={**FORM, "branch_id": "typo-branch"})
    gone = client.post("/admin/branches/acme/typo-branch/delete?lang=en", follow_redirects=True)
    assert "typo-branch" not in gone.text
    assert client.get("/admin/branches/acme/typo-branch").status_code == 404

    actions = re.findall(r'data-action="([^"]+)"', client.get("/admin/audit").text)
    for action in ("branch.create", "branch.enrolment_code", "branch.enrolled", "branch.retire", "branch.delete"):
        assert action in actions
    assert verify(engine).ok
    engine.dispose()


def test_another_tenants_branch_is_404_and_an_auditor_cannot_change_it(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    add_accounts(engine, "ana", "ira")
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        assert client.post("/admin/branches", data=FORM).status_code in (401, 303)  # not signed in
        sign_in(client, "ana")
        assert client.post("/admin/branches", data=FORM).status_code == 201
        beta = client.post("/admin/branches", data={**FORM, "tenant": "beta"})
        assert beta.status_code == 400
        assert "error-tenant" in beta.text
        assert client.get("/admin/branches/beta/jkt-kuningan").status_code == 404
        sign_in(client, "ira")
        assert client.get("/admin/branches/acme/jkt-kuningan").status_code == 200
        assert client.post("/admin/branches/acme/jkt-kuningan/retire").status_code == 403


def test_a_doubled_field_or_a_control_character_is_a_400_and_creates_nothing(
    client: TestClient, store_url: str, tmp_path: Path
) -> None:
    """A form with a field twice (a list at the parser) or a NUL in a text (PostgreSQL refuses it in a string) was a
    500, and the NUL one after the branch's NATS key had been issued."""
    doubled = "&".join(f"{k}={v}" for k, v in {**FORM, "branch_id": "jkt-dua"}.items()) + "&branch_id=jkt-tiga"
    answer = client.post(
        "/admin/branches?lang=en",
        content=doubled.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400, answer.text
    for field in ("name", "address", "areas"):
        value = "f1: Lantai\x001" if field == "areas" else "KCP\x00Kuningan"
        answer = client.post("/admin/branches?lang=en", data={**FORM, field: value})
        assert answer.status_code == 400, (field, answer.text)
        assert f'id="error-{field}"' in answer.text
    assert not (tmp_path / "keys" / "acme.jkt-kuningan.nk").exists()
    assert "jkt-kuningan" not in client.get("/api/v1/branches").text
