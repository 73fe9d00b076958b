"""Fixtures for the HTTP API tests: a seeded demo data dir per test and an in-process Litestar TestClient.

The demo branch is seeded once per session (argon2 hashing of six passwords is deliberately slow) and copied into
each test's tmp dir. Tokens are minted with the data dir's signing key; the login route has its own tests.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from edge.service import QueueService
from edge.web.app import Settings, create_app
from tests.support.appliance import RunningAppliance, event_rows, mint_token, seed_demo

API = "/api/v1"


class Clock:
    """The writer's clock: real time plus an offset the test can advance (for grace periods)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Move the appliance's time forward."""
        self.offset += timedelta(seconds=seconds)


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and stable code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body.get("code") == code, body
    assert body.get("status") == status, body
    return body


class Api:
    """A thin driver over the TestClient: default user admin, JSON bodies, event-log reads."""

    def __init__(self, client: TestClient[Any], data_dir: Path, clock: Clock) -> None:
        self.client = client
        self.data_dir = data_dir
        self.clock = clock
        self._tokens: dict[str, str] = {}

    def h(self, user: str | None) -> dict[str, str]:
        if user is None:
            return {}
        if user not in self._tokens:
            self._tokens[user] = mint_token(self.data_dir, user)
        return {"Authorization": f"Bearer {self._tokens[user]}"}

    def get(self, path: str, user: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.client.get(f"{API}{path}", headers={**self.h(user), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, body: Any = None, user: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = {**self.h(user), **kw.pop("headers", {})}
        if body is None:
            return self.client.post(f"{API}{path}", headers=headers, **kw)
        return self.client.post(f"{API}{path}", json=body, headers=headers, **kw)

    def put(self, path: str, body: Any = None, user: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = {**self.h(user), **kw.pop("headers", {})}
        if isinstance(body, bytes | str):
            return self.client.put(f"{API}{path}", content=body,
                                   headers={"content-type": "application/json", **headers}, **kw)  # fmt: skip
        return self.client.put(f"{API}{path}", json=body, headers=headers, **kw)

    # ---- domain shortcuts -------------------------------------------------------------------------------------

    def enqueue(self, service_id: str = "teller", user: str = "admin", **body: Any) -> dict[str, Any]:
        r = self.post("/tickets", {"service_id": service_id, **body}, user=user)
        assert r.status_code == 201, r.text
        return r.json()

    def call_next(self, counter: str, user: str = "admin", **body: Any) -> httpx.Response:
        return self.post(f"/counters/{counter}/call-next", body or None, user=user)

    def call_next_ok(self, counter_id: str, user: str = "admin") -> dict[str, Any]:
        r = self.call_next(counter_id, user=user)
        assert r.status_code == 200, r.text
        assert r.json()["ticket"] is not None, r.json()
        return r.json()["ticket"]

    def act(self, ticket_id: str, action: str, user: str = "admin", **body: Any) -> httpx.Response:
        return self.post(f"/tickets/{ticket_id}/{action}", body or None, user=user)

    def act_ok(self, ticket_id: str, action: str, user: str = "admin", **body: Any) -> dict[str, Any]:
        r = self.act(ticket_id, action, user=user, **body)
        assert r.status_code == 200, r.text
        return r.json()

    def serve(self, counter_id: str) -> dict[str, Any]:
        """call-next, start, complete at a counter; returns the called ticket."""
        t = self.call_next_ok(counter_id)
        self.act_ok(t["ticket_id"], "start", counter_id=counter_id)
        self.act_ok(t["ticket_id"], "complete", counter_id=counter_id)
        return t

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        r = self.get(f"/tickets/{ticket_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def snapshot(self, **params: Any) -> dict[str, Any]:
        r = self.get("/snapshot", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def config(self) -> tuple[dict[str, Any], str]:
        r = self.get("/config")
        assert r.status_code == 200, r.text
        return r.json(), r.headers["etag"]

    def change_config(self, **service_changes: dict[str, Any]) -> dict[str, Any]:
        """PUT /config with some services' fields replaced, based on the current version."""
        doc, etag = self.config()
        for service in doc["services"]:
            service.update(service_changes.get(service["id"], {}))
        r = self.put("/config", doc, headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        return doc

    def events(self, type_: str | None = None, ticket_id: str | None = None) -> list[dict[str, Any]]:
        """Decoded event bodies from the SQLite log, optionally filtered."""
        out = []
        for _seq, etype, _rid, tid, body in event_rows(self.data_dir):
            if (type_ is None or etype == type_) and (ticket_id is None or tid == ticket_id):
                decoded = json.loads(body)
                decoded["_type"] = etype
                out.append(decoded)
        return out

    def event_count(self) -> int:
        return int(event_rows(self.data_dir, "SELECT count(*) FROM events")[0][0])

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        """The block must leave the queue exactly as it was: same snapshot, same event log length."""
        before, count = self.snapshot(), self.event_count()
        yield
        assert self.snapshot() == before
        assert self.event_count() == count


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded demo data dir, created once and copied per test."""
    path = tmp_path_factory.mktemp("demo-template") / "data"
    seed_demo(path)
    return path


@pytest.fixture
def data_dir(tmp_path: Path, demo_template: Path) -> Path:
    """This test's own copy of the seeded demo branch."""
    target = tmp_path / "data"
    shutil.copytree(demo_template, target)
    return target


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(data_dir: Path, clock: Clock) -> Iterator[TestClient[Any]]:
    """The real app (writer, auth, problems) in process, its writer on a controllable clock."""
    service = QueueService(data_dir, clock=clock)
    app = create_app(Settings(data_dir=data_dir), service=service)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def appliance(data_dir: Path) -> Iterator[RunningAppliance]:
    """The real server (`qms-edge serve`, uvicorn) on a free port over this test's seeded data dir."""
    running = RunningAppliance(data_dir)
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture
def api(client: TestClient[Any], data_dir: Path, clock: Clock) -> Api:
    return Api(client, data_dir, clock)
