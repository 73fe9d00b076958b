"""The branch admin's pages with bad input: never a server error, never a record the appliance cannot use."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from edge.auth import find_user
from tests.edge.web.test_staff import Staff


def test_an_audit_page_cursor_beyond_64_bits_is_not_a_server_error(client: Any) -> None:
    admin = Staff(client)
    admin.login("admin")
    for before in ("99999999999999999999999", "-99999999999999999999999"):
        r = admin.client.get("/staff/admin/audit", params={"before": before})
        assert r.status_code < 500, r.text


def test_a_username_longer_than_sign_in_takes_is_refused_in_the_page_language(client: Any, data_dir: Path) -> None:
    admin = Staff(client)
    admin.login("admin")
    long_name = "u" * 65  # sign-in (the form, POST /api/v1/auth/token) takes 64 at most: it could never sign in
    for lang, words in (("en", "at most 64 characters"), ("id", "paling banyak 64 karakter")):
        admin.client.cookies.set("qms_lang", lang)
        r = admin.client.post("/staff/admin/users", data={"csrf_token": admin.csrf, "username": long_name,
                              "role": "supervisor", "password": "long-enough-1", "active": "on"})  # fmt: skip
        assert r.status_code == 422, r.text
        assert words in r.text
    with sqlite3.connect(data_dir / "qms.sqlite3") as conn:
        assert find_user(conn, long_name) is None
