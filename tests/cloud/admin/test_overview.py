"""The console's overview page: Indonesian and English, no self-refresh; its live stream sends the tables again after an
applied batch without restarting the session's idle clock and ends when the session is over; expired sessions are
swept from the store on the hub's schedule (a fixed clock moved by the test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.apply import Incoming, apply_batch
from cloud.identity.tables import hq_sessions
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from cloud.web.console import LIVE_SECONDS_KEY
from cloud.web.console_auth import ConsoleAuth
from tests.cloud.admin.conftest import PASSWORD, add_accounts, sign_in
from tests.cloud.branch_events import make_branch_events, subject
from tests.cloud.identity.conftest import Clock
from tests.support.cloud_hub import wait_until
from tests.support.providers import hub as hub_server


def test_overview_in_both_languages_without_a_self_refresh(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    log = make_branch_events(tmp_path / "edge", "jkt-sudirman", tickets=3)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        pages = {lang: client.get("/", params={"lang": lang}).text for lang in ("id", "en")}
    for lang, words in (
        ("id", ("Ringkasan", "Antrean langsung", "Peristiwa di semua cabang", "menjalankan v1", "belum pernah")),
        ("en", ("Overview", "Live queues", "Events across branches", "runs v1", "never connected")),
    ):
        assert all(word in pages[lang] for word in words), lang
        assert 'http-equiv="refresh"' not in pages[lang]
        assert f'data-live-url="/overview/live?lang={lang}"' in pages[lang]
    assert "Live queues" not in pages["id"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, sa.Engine, Clock]]:
    """The hub behind uvicorn (an endless stream needs a real server), its session clock under the test's control,
    one branch replicated and the account ana."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    log = make_branch_events(tmp_path / "one", "jkt-sudirman", tickets=3)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    add_accounts(engine, "ana")
    app = create_app(CloudSettings(db_url=store_url))
    clock = Clock()
    auth: ConsoleAuth = app.state["console_auth"]
    auth.clock = clock
    app.state[LIVE_SECONDS_KEY] = 0.2
    try:
        with hub_server.served(app) as base:
            yield base, engine, clock
    finally:
        engine.dispose()


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an SSE stream; multi-line data joined with newlines."""
    event, data = "", []
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and event:
            yield event, "\n".join(data)
            event, data = "", []


def test_the_live_stream_updates_the_page_but_not_the_session(
    served: tuple[str, sa.Engine, Clock], tmp_path: Path
) -> None:
    base, engine, clock = served
    with httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/signin", headers={"accept": "text/html"}).text
        token = form.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
        signed = browser.post("/signin", data={"username": "ana", "password": PASSWORD, "_csrf_token": token})
        assert signed.status_code in (200, 303), signed.text
        with engine.connect() as conn:
            seen_at = conn.execute(sa.select(hq_sessions.c.last_seen_at)).scalar_one()
        clock.now += timedelta(seconds=30)  # under a minute: opening the stream does not touch the session either
        with browser.stream("GET", "/overview/live", params={"lang": "en"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = _events(stream.iter_lines())
            kind, first = next(events)
            assert kind == "overview"
            assert "jkt-sudirman" in first
            assert "bdg-dago" not in first
            assert "Live queues" in first
            other = make_branch_events(tmp_path / "two", "bdg-dago", tickets=2)
            apply_batch(engine, [Incoming(subject("bdg-dago"), o.payload) for o in other])
            kind, data = next(events)
            while "bdg-dago" not in data:
                kind, data = next(events)
            assert kind == "overview"
            clock.now += timedelta(minutes=30)  # 30.5 minutes after the last request: idle too long
            ended = [kind for kind, _data in events]
            assert ended[-1] == "ended"
        with engine.connect() as conn:
            assert conn.execute(sa.select(hq_sessions.c.last_seen_at)).scalar_one() == seen_at
        assert browser.get("/", follow_redirects=False).status_code in (302, 303, 401)


def test_expired_sessions_are_swept_on_the_hub_schedule(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_store_engine(store_url)
    add_accounts(engine, "ana", "budi")
    monkeypatch.setenv("QMS_HUB_SESSION_SWEEP_SECONDS", "0.1")
    app = create_app(CloudSettings(db_url=store_url))
    clock = Clock()
    auth: ConsoleAuth = app.state["console_auth"]
    auth.clock = clock

    def holders() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(hq_sessions.c.username)).scalars())

    try:
        with TestClient(app=app) as client:
            sign_in(client, "ana")
            clock.now += timedelta(minutes=20)
            client.cookies.clear()
            sign_in(client, "budi")
            assert holders() == ["ana", "budi"]
            clock.now += timedelta(minutes=11)  # ana idle 31 minutes, budi 11: nobody calls the hub meanwhile
            wait_until(lambda: holders() == ["budi"], timeout=10, what="ana's idle session swept")
            clock.now += timedelta(hours=12)  # budi past the absolute lifetime too
            wait_until(lambda: holders() == [], timeout=10, what="budi's session swept")
    finally:
        engine.dispose()
