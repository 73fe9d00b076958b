"""Staff sign-in through the hub, fast and in-process: the shared signed messages (sync/staff_sso.py: each refusal,
and junk never crashes the parser) and the hub's `/sso/staff/begin` (only a request signed by the branch's own NKey,
recent, returning to an appliance callback, for a tenant with an IdP; the ticket it gives is single use)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

from cloud.credentials import issue, new_seed
from cloud.identity import sso
from cloud.store import create_store_engine
from sync.staff_sso import (
    SsoMessageRefused,
    StaffAssertion,
    StaffSsoRequest,
    request_claims,
    sign_assertion,
    sign_request,
    verify_assertion,
)
from tests.cloud.identity.conftest import Clock

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
NOW = 1_800_000_000


def assertion(**changes: object) -> StaffAssertion:
    fields: dict[str, object] = {"tenant": "acme", "branch_id": "jkt-sudirman", "username": "siti", "role": "agent",
                                 "counters": ["1"], "nonce": "n" * 32, "jti": "j1", "iat": NOW, "exp": NOW + 90,
                                 "idp": "oidc"}  # fmt: skip
    return StaffAssertion(**{**fields, **changes})  # type: ignore[arg-type]


def check(text: str, *, branch: str = "jkt-sudirman", nonce: str = "n" * 32, now: int = NOW + 10) -> StaffAssertion:
    return verify_assertion(text, PUBLIC, tenant="acme", branch_id=branch, nonce=nonce, now=now)


def test_an_assertion_verifies_only_where_when_and_for_whom_it_was_made() -> None:
    text = sign_assertion(assertion(), KEY)
    assert check(text).username == "siti"
    refusals = {
        "wrong_branch": lambda: check(text, branch="bdg-dago"),
        "nonce": lambda: check(text, nonce="m" * 32),
        "expired": lambda: check(text, now=NOW + 90),
        "signature": lambda: check(sign_assertion(assertion(), Ed25519PrivateKey.generate())),
    }
    for code, attempt in refusals.items():
        with pytest.raises(SsoMessageRefused) as refused:
            attempt()
        assert refused.value.code == code
    body, signature = text.split(".")
    with pytest.raises(SsoMessageRefused, match="signature"):
        check(f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}")  # one byte of the claims
    with pytest.raises(ValueError, match="120"):
        sign_assertion(assertion(exp=NOW + 121), KEY)  # the hub cannot make a long-lived one


@given(st.text(max_size=300))
def test_junk_never_crashes_the_parsers(text: str) -> None:
    with pytest.raises(SsoMessageRefused):
        check(text)
    with pytest.raises(SsoMessageRefused):
        request_claims(text)


@pytest.fixture
def staff_hub(client: TestClient, identity_store: str, tmp_path: Path, clock: Clock) -> tuple[TestClient, bytes, bytes]:
    """acme/jkt-sudirman and globex/sby-tunjungan with NKey credentials, acme's OIDC (globex has no IdP); the hub's
    keys in tmp_path; real time."""
    clock.now = datetime.now(UTC)
    client.app.state["keys_dir"] = tmp_path
    engine = create_store_engine(identity_store)
    seed = issue(engine, tmp_path, "acme", "jkt-sudirman").seed_file.read_bytes()
    globex = issue(engine, tmp_path, "globex", "sby-tunjungan").seed_file.read_bytes()
    settings = sso.IdpSettings(roles={"g": "auditor"}, issuer="http://127.0.0.1:9", client_id="qms-hub",
                               display_name="Acme ID")  # fmt: skip
    sso.save(engine, "acme", "oidc", settings, clock.now)
    engine.dispose()
    return client, seed, globex


def begin(client: TestClient, seed: bytes, **changes: object) -> tuple[int, dict[str, object]]:
    back = "http://10.0.0.5:8080/staff/sso/callback"
    fields: dict[str, object] = {"tenant": "acme", "branch_id": "jkt-sudirman", "nonce": "n" * 32, "return_to": back,
                                 "issued_at": int(time.time())}  # fmt: skip
    request = StaffSsoRequest(**{**fields, **changes})  # type: ignore[arg-type]
    answer = client.post("/sso/staff/begin", json={"request": sign_request(request, seed)})
    return answer.status_code, answer.json()


def test_begin_takes_only_the_branchs_own_recent_request(staff_hub: tuple[TestClient, bytes, bytes]) -> None:
    client, seed, globex = staff_hub
    status, body = begin(client, seed)
    assert status == 200, body
    assert body["idp"] == "Acme ID"
    assert len(bytes.fromhex(str(body["public_key"]))) == 32
    ticket = parse_qs(urlsplit(str(body["go"])).query)["t"][0]

    other_seed, _ = new_seed()
    cases = {
        "signature": begin(client, other_seed),  # another branch's (or anybody's) key
        "expired": begin(client, seed, issued_at=int(time.time()) - 3600),
        "malformed": begin(client, seed, return_to="http://evil.example/steal"),
        "no_idp": begin(client, globex, tenant="globex", branch_id="sby-tunjungan"),
        "other_branch": begin(client, globex),  # globex's key naming acme's branch
    }
    statuses = {code: (status, body.get("code")) for code, (status, body) in cases.items()}
    assert statuses == {"signature": (403, "signature"), "expired": (400, "expired"), "malformed": (400, "malformed"),
                        "no_idp": (404, "no_idp"), "other_branch": (403, "signature")}  # fmt: skip
    garbage = client.post("/sso/staff/begin", json={"request": "not.signed"})
    assert garbage.status_code == 400
    assert garbage.headers["content-type"].startswith("application/problem+json")

    first = client.get(f"/sso/staff/go?t={ticket}", follow_redirects=False)
    again = client.get(f"/sso/staff/go?t={ticket}", follow_redirects=False)
    assert "already+used" not in first.headers["location"]
    assert "already" in again.headers["location"]  # single use
