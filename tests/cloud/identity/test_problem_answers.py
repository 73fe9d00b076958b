"""Every refusal of the hub's API is RFC 9457 problem+json, whichever area answers (guards' 401 and 403, an unknown
address's or an out-of-scope id's 404, 405), and an unhandled exception is one JSON error line with the request's
correlation id, method and route template and its traceback, while the caller gets a 500 problem+json without it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from litestar import get
from litestar.params import FromPath
from litestar.testing import TestClient

from cloud.web.app import CloudSettings, create_app
from sync.observability import JsonFormatter
from tests.cloud.identity.conftest import csrf_of, sign_in

JSON = {"accept": "application/json"}


def assert_problem(answer: object, status: int) -> None:
    response = answer  # httpx.Response
    assert response.status_code == status, (response.request.method, response.request.url, response.text)  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert body[member], body


def test_anonymous_callers_get_401_problems_in_every_area(client: TestClient) -> None:
    for url in ("/api/v1/notify/templates?tenant=acme", "/admin/branches", "/api/v1/analytics/acme/settings",
                "/api/v1/appointments/acme/jkt-sudirman/bookings", "/api/v1/kpis?tenant=acme"):  # fmt: skip
        assert_problem(client.get(url, headers=JSON), 401)


def test_an_auditor_gets_403_problems_in_every_area(client: TestClient) -> None:
    assert sign_in(client, "audi").status_code == 303
    headers = {**JSON, "x-csrftoken": csrf_of(client)}
    assert_problem(client.put("/api/v1/notify/templates/nope/sms/id?tenant=acme", json={"body": "x"},
                              headers=headers), 403)  # fmt: skip
    assert_problem(client.post("/admin/branches", data={"tenant": "acme"}, headers=headers), 403)
    assert_problem(client.get("/admin/config", headers=headers), 403)
    assert_problem(client.put("/api/v1/analytics/acme/settings", json={}, headers=headers), 403)
    assert_problem(client.post("/api/v1/appointments/acme/messages/1/replay", headers=headers), 403)


def test_unknown_addresses_and_out_of_scope_ids_get_404_problems(client: TestClient) -> None:
    assert sign_in(client, "tina").status_code == 303
    headers = {**JSON, "x-csrftoken": csrf_of(client)}
    assert_problem(client.put("/api/v1/notify/templates/nope/sms/id?tenant=acme", json={"body": "x"},
                              headers=headers), 404)  # fmt: skip
    assert_problem(client.get("/api/v1/nope", headers=headers), 404)
    assert_problem(client.get("/admin/nope", headers=headers), 404)
    assert_problem(client.get("/api/v1/analytics/globex/settings", headers=headers), 404)
    assert_problem(client.get("/api/v1/appointments/globex/sby-tunjungan/bookings", headers=headers), 404)


def test_a_wrong_method_gets_a_405_problem(client: TestClient) -> None:
    assert_problem(client.delete("/api/v1/health", headers=JSON), 405)
    assert_problem(client.patch("/admin/audit", headers=JSON), 405)


def test_a_browser_that_is_not_signed_in_is_still_sent_to_the_sign_in_page(client: TestClient) -> None:
    answer = client.get("/admin/branches", headers={"accept": "text/html"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=")


class Lines(logging.Handler):
    """The hub's JSON log lines, formatted when emitted (inside the request, where the correlation id is bound)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler, root = Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@get("/api/v1/test-failure/{item:str}", sync_to_thread=True)
def failing(item: FromPath[str]) -> None:
    raise RuntimeError(f"store broke while reading {item} for ana@example.com")


def test_an_unhandled_exception_is_logged_once_with_its_correlation_id_and_answered_without_internals(
    identity_store: str, lines: Lines
) -> None:
    app = create_app(CloudSettings(db_url=identity_store))
    app.register(failing)
    with TestClient(app=app) as client:
        answer = client.get("/api/v1/test-failure/b-17?phone=081234567890&token=s3cret",
                            headers={**JSON, "x-request-id": "qa-500-check"})  # fmt: skip
    assert_problem(answer, 500)
    assert answer.headers["x-request-id"] == "qa-500-check"
    for internal in ("Traceback", "store broke", "RuntimeError"):
        assert internal not in answer.text
    errors = [line for line in lines.lines if line["level"] == "error"]
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["correlation_id"] == "qa-500-check"
    assert "GET /api/v1/test-failure/{item}" in str(error["message"])
    assert "Traceback" in str(error["exc"])
    assert "RuntimeError: store broke" in str(error["exc"])
    logged = json.dumps(lines.lines)
    for secret in ("081234567890", "s3cret", "ana@example.com"):
        assert secret not in logged
