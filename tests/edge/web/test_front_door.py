"""What a newcomer opens first (the demo banner's addresses): every one answers, and text pages name their charset
once (Litestar appends `; charset=utf-8` to every text/* type, so a handler that also wrote it sent it twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import TestClient

from tests.edge.web.conftest import Api
from tests.support.appliance import mint_token


def _one_charset(content_type: str) -> None:
    assert content_type.count("charset") == 1, content_type


def test_api_root_answers_with_where_to_go(api: Api) -> None:
    """The banner prints `…/api/v1`: it was a 404 problem; now it points at the docs, health and sign-in."""
    r = api.client.get("/api/v1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["docs"] == "/schema"
    for key in ("openapi", "health", "sign_in", "events"):
        assert api.client.get(body[key]).status_code in (200, 401, 405), key  # each is a real route
    paths = api.client.get("/schema/openapi.json").json()["paths"]
    assert not {"/api/v1", "/api/v1/"} & set(paths)  # an index for people, not an API operation


def test_text_pages_name_their_charset_once(api: Api, client: TestClient[Any], data_dir: Path) -> None:
    kiosk = client.get("/kiosk")
    assert kiosk.status_code == 200
    _one_charset(kiosk.headers["content-type"])
    headers = {"Authorization": f"Bearer {mint_token(data_dir, 'admin')}"}
    issued = client.post("/kiosk/api/tickets", json={"service_id": "teller", "lang": "en", "request_id": "fd-1"},
                         headers=headers)  # fmt: skip
    assert issued.status_code == 201, issued.text
    status = client.get(urlsplit(issued.json()["status_url"]).path)
    assert status.status_code == 200
    _one_charset(status.headers["content-type"])
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    _one_charset(metrics.headers["content-type"])
    client.post("/staff/login", data={"username": "admin", "password": "demo"}, follow_redirects=False)
    csv = client.get("/staff/admin/audit.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    _one_charset(csv.headers["content-type"])
