"""Console sign-in against the real app and store (SQLite, PostgreSQL): the id/en page, session cookie flags,
CSRF on unsafe methods, fixation, sign-out, idle and absolute expiry on an injected clock, lockout, revocation on
account change, and a browser sent to /signin instead of a Basic prompt."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.hq_users import disable_user, upsert_user
from cloud.identity import sessions
from cloud.identity.tables import hq_sessions
from cloud.store import create_store_engine
from tests.cloud.identity.conftest import PASSWORD, Clock, audit_trail, csrf_of, form_token, sign_in

HTML = {"accept": "text/html"}


def test_the_signin_page_in_both_languages(client: TestClient) -> None:
    indonesian = client.get("/signin", headers=HTML)
    assert indonesian.status_code == 200
    assert 'lang="id"' in indonesian.text
    assert "Kata sandi" in indonesian.text
    assert indonesian.headers["cache-control"] == "no-store"
    english = client.get("/signin?lang=en", headers=HTML)
    assert 'lang="en"' in english.text
    assert "Password" in english.text
    assert "Sign in" in english.text
    switched = client.get("/lang/en?next=/signin", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/signin"
    assert "Sign in to the HQ console" in client.get("/signin").text  # the cookie keeps the choice
    assert client.get("/lang/en?next=//evil.example/x", follow_redirects=False).headers["location"] == "/"


def test_sign_in_sets_a_hardened_session_cookie_and_opens_the_console(client: TestClient) -> None:
    answer = sign_in(client, "tina", next_path="/api/v1/branches")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/api/v1/branches"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("qms_session="))
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP in the test; see the HTTPS test below
    mine = client.get("/api/v1/branches")
    assert mine.status_code == 200
    assert {b["branch_id"] for b in mine.json()["branches"]} == {"jkt-sudirman", "bdg-dago"}
    me = client.get("/api/v1/me").json()
    assert me["role"] == "tenant_admin"
    assert me["auth_method"] == "session"
    assert me["tenants"] == ["acme"]
    page = client.get("/", headers=HTML)
    assert page.status_code == 200


def test_the_cookie_is_secure_behind_https(client: TestClient) -> None:
    page = client.get("/signin", headers=HTML)
    answer = client.post("/signin", data={"username": "tina", "password": PASSWORD, "_csrf_token": form_token(page)},
                         headers={"x-forwarded-proto": "https"}, follow_redirects=False)  # fmt: skip
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("qms_session="))
    assert "Secure" in cookie


def test_wrong_password_and_unknown_user_say_the_same(client: TestClient) -> None:
    wrong = sign_in(client, "tina", "not-the-password")
    nobody = sign_in(client, "nobody", PASSWORD)
    for answer in (wrong, nobody):
        assert answer.status_code == 401
        assert "Nama pengguna atau kata sandi salah." in answer.text
        assert "qms_session=" not in answer.headers.get("set-cookie", "")
    assert client.get("/api/v1/branches").status_code == 401


def test_the_signin_form_needs_its_own_token(client: TestClient) -> None:
    client.get("/signin")
    forged = client.post("/signin", data={"username": "tina", "password": PASSWORD, "_csrf_token": "forged"},
                         follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403
    assert client.get("/api/v1/branches").status_code == 401
    empty = client.post("/signin", data={"_csrf_token": form_token(client.get("/signin"))}, follow_redirects=False)
    assert empty.status_code == 400


def test_lockout_after_repeated_failures_even_for_the_right_password(client: TestClient) -> None:
    for _ in range(5):
        assert sign_in(client, "audi", "wrong-password-x").status_code == 401
    locked = sign_in(client, "audi")
    assert locked.status_code == 429
    assert "Terlalu banyak percobaan gagal" in locked.text
    assert sign_in(client, "tina").status_code == 303  # another account from the same office is not locked out


def test_unsafe_requests_need_the_csrf_token(client: TestClient) -> None:
    sign_in(client, "tina")
    body = {"name": "ci", "scopes": ["branches.read"], "days": 7}
    assert client.post("/api/v1/tokens", json=body).status_code == 403
    assert client.post("/api/v1/tokens", json=body, headers={"x-csrftoken": "0" * 64}).status_code == 403
    assert client.post("/api/v1/tokens", json=body, headers={"x-csrftoken": csrf_of(client)}).status_code == 201
    refused = client.post("/signout", data={"_csrf_token": "wrong"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/api/v1/me").status_code == 200  # still signed in


def test_sign_out_ends_the_session_on_the_server(client: TestClient, identity_store: str) -> None:
    sign_in(client, "tina")
    stolen = client.cookies["qms_session"]
    out = client.post("/signout", data={"_csrf_token": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/signin?why=out"
    assert "Anda telah keluar." in client.get("/signin?why=out").text
    client.cookies.set(
        "qms_session", stolen, domain="hub.test"
    )  # a copy of the cookie taken before sign-out opens nothing
    assert client.get("/api/v1/me").status_code == 401
    trail = [(actor, action) for actor, action, _ in audit_trail(identity_store)]
    assert trail == [("tina", "console.sign_in"), ("tina", "console.sign_out")]


def test_no_session_fixation(client: TestClient, identity_store: str) -> None:
    client.cookies.set("qms_session", "chosen-by-an-attacker", domain="hub.test")
    sign_in(client, "tina")
    assert client.cookies["qms_session"] != "chosen-by-an-attacker"
    planted = client.cookies["qms_session"]  # even a real session id planted in a browser is replaced and ended
    sign_in(client, "audi")
    assert client.cookies["qms_session"] != planted
    engine = create_store_engine(identity_store)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(hq_sessions.c.id_hash)).scalars())
    engine.dispose()
    assert sessions.digest(planted) not in ids
    assert sessions.digest(client.cookies["qms_session"]) in ids
    assert client.cookies["qms_session"] not in ids  # stored hashed only


def test_idle_timeout_and_absolute_lifetime(client: TestClient, clock: Clock) -> None:
    sign_in(client, "tina")
    clock.advance(minutes=29)
    assert client.get("/api/v1/me").status_code == 200  # activity restarts the idle clock
    clock.advance(minutes=29)
    assert client.get("/api/v1/me").status_code == 200
    clock.advance(minutes=31)
    expired = client.get("/", headers=HTML, follow_redirects=False)
    assert expired.status_code == 303
    assert expired.headers["location"] == "/signin?next=%2F"
    sign_in(client, "tina")
    signed_in_at = clock.now
    for _ in range(12 * 3):  # busy all day: every 20 minutes
        clock.advance(minutes=20)
        if client.get("/api/v1/me").status_code != 200:
            break
    else:
        raise AssertionError("the session outlived its absolute lifetime")
    assert clock.now - signed_in_at == timedelta(hours=12)  # it ended at 12 h, not before


def test_changing_or_disabling_an_account_ends_its_sessions(client: TestClient, identity_store: str) -> None:
    sign_in(client, "tina")
    engine = create_store_engine(identity_store)
    upsert_user(engine, "tina", PASSWORD, "auditor", ["acme"])
    assert client.get("/api/v1/me").status_code == 401
    sign_in(client, "tina")
    assert client.get("/api/v1/me").json()["role"] == "auditor"
    disable_user(engine, "tina")
    engine.dispose()
    assert client.get("/api/v1/me").status_code == 401
    assert sign_in(client, "tina").status_code == 401


def test_a_browser_is_sent_to_signin_and_a_script_gets_401(client: TestClient) -> None:
    browser = client.get("/api/v1/branches?x=1", headers=HTML, follow_redirects=False)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/signin?next=%2Fapi%2Fv1%2Fbranches%3Fx%3D1"
    script = client.get("/api/v1/branches")
    assert script.status_code == 401
    assert client.get("/api/v1/branches", auth=("tina", PASSWORD)).status_code == 200  # Basic still reads
    basic_post = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["branches.read"]},
                             auth=("tina", PASSWORD))  # fmt: skip
    assert basic_post.status_code == 403  # but never writes: a browser may replay cached Basic credentials
