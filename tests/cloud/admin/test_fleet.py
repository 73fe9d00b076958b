"""The device fleet at HQ (US-ADMIN-009/010): devices arrive with the branch's heartbeat and are offline at HQ within a
minute of their heartbeat stopping (an injected clock), both when the branch goes quiet and when a kiosk stops
polling; end to end, a paired kiosk polling a real appliance and a board holding its stream show online at HQ over a
real nats-server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.fleet import fleet
from cloud.admin.tables import fleet_devices
from cloud.liveness import record_beat
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from edge.auth import load_secret
from edge.web.board.access import Scope, board_key
from sync.liveness import DeviceState, Heartbeat
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def beat(at: datetime, devices: list[DeviceState] | None, branch: str = "jkt-sudirman") -> Heartbeat:
    """A branch's heartbeat sent at `at`."""
    return Heartbeat(
        tenant="acme",
        branch_id=branch,
        sent_at=at,
        last_seq=10,
        acked_seq=10,
        lag_events=0,
        interval_seconds=30,
        software_version="test",
        devices=devices,
    )


def states(at: datetime, *, kiosk_seen: datetime, button_online: bool = True) -> list[DeviceState]:
    """A kiosk (seen when it last polled) and a call button (its MQTT session)."""
    return [
        DeviceState(
            device_id="kiosk-1",
            type="kiosk",
            name="Kios lobi",
            online=True,
            last_seen=kiosk_seen,
            config_version=2,
            applied_version=2,
        ),
        DeviceState(
            device_id="btn-1",
            type="button",
            name="Tombol loket 1",
            online=button_online,
            last_seen=at - timedelta(hours=3),
            config_version=3,
            applied_version=2,
        ),
    ]


def online_at(engine: object, now: datetime) -> dict[str, bool]:
    """Each device's online state at HQ at `now`."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return {d.device_id: d.online for d in fleet(conn, None, now=now)}


def test_a_device_whose_heartbeat_stops_is_offline_within_a_minute(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    record_beat(engine, beat(T0, states(T0, kiosk_seen=T0)), received_at=T0)
    assert online_at(engine, T0) == {"kiosk-1": True, "btn-1": True}
    # The branch goes quiet (appliance off, link down): every device is offline at HQ a minute later.
    assert online_at(engine, T0 + timedelta(seconds=59)) == {"kiosk-1": True, "btn-1": True}
    assert online_at(engine, T0 + timedelta(seconds=61)) == {"kiosk-1": False, "btn-1": False}

    # The branch beats on, but the kiosk stopped polling at T0: offline once 60 s have passed since.
    t1 = T0 + timedelta(seconds=30)
    record_beat(engine, beat(t1, states(t1, kiosk_seen=T0)), received_at=t1)
    assert online_at(engine, t1 + timedelta(seconds=20)) == {"kiosk-1": True, "btn-1": True}
    assert online_at(engine, t1 + timedelta(seconds=31)) == {"kiosk-1": False, "btn-1": True}

    # The button's MQTT session ended (its last will): the next beat says so.
    t2 = t1 + timedelta(seconds=30)
    record_beat(engine, beat(t2, states(t2, kiosk_seen=t2, button_online=False)), received_at=t2)
    assert online_at(engine, t2) == {"kiosk-1": True, "btn-1": False}
    # A beat from an appliance that does not report devices keeps the list.
    record_beat(engine, beat(t2, None), received_at=t2)
    assert set(online_at(engine, t2)) == {"kiosk-1", "btn-1"}
    with engine.connect() as conn:
        assert fleet(conn, frozenset({"beta"}), now=t2) == []
        button = fleet(conn, None, now=t2, kind="button")[0]
    assert not button.config_acked  # assigned v3, runs v2

    add_accounts(engine, "ana")
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        sign_in(client, "ana")
        en = client.get("/admin/fleet", params={"lang": "en"}).text
        assert "Kios lobi" in en
        assert "call button" in en
        assert "v2/v3 ⚠" in en
        idn = client.get("/admin/fleet", params={"lang": "id", "type": "kiosk"}).text
        assert "tombol panggil" not in idn.split('id="fleet"', 1)[1].split("</table>", 1)[0]  # the list only
        assert "Terakhir terlihat" in idn


@pytest.mark.slow
def test_a_polling_kiosk_shows_online_at_hq_and_offline_after_it_stops(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    add_accounts(engine, "ana")
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", "acme")
    monkeypatch.setenv("QMS_HEARTBEAT_SECONDS", "1")
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    with TestClient(app=create_app(settings)) as client, RunningAppliance(tmp_path / "edge") as appliance:
        admin = appliance.headers("admin")
        added = httpx.post(
            f"{appliance.api}/devices",
            json={"device_id": "kiosk-lobby", "type": "kiosk", "name": "Kios lobi"},
            headers=admin,
            timeout=5,
        )
        assert added.status_code == 201, added.text
        paired = httpx.post(f"{appliance.api}/devices/pair", json={"code": added.json()["pairing_code"]}, timeout=5)
        assert paired.status_code == 200, paired.text
        kiosk = {"Authorization": f"Bearer {paired.json()['access_token']}"}
        assert httpx.get(f"{appliance.base_url}/kiosk/api/catalog", headers=kiosk, timeout=5).status_code == 200

        def kiosk_online() -> bool:
            return online_at(engine, datetime.now(UTC)).get("kiosk-lobby", False)

        wait_until(kiosk_online, what="the kiosk online at HQ")
        sign_in(client, "ana")
        page = client.get("/admin/fleet", params={"lang": "en"}).text
        assert re.search(r'data-device="kiosk-lobby" data-online="1"', page)
        # The kiosk stops polling; the branch keeps beating: HQ calls the kiosk offline a minute after it was seen.
        with engine.connect() as conn:
            seen = fleet(conn, None)[0].last_seen
        assert seen is not None

        def reported_after(moment: datetime) -> bool:
            with engine.connect() as conn:
                stamp = conn.execute(sa.select(sa.func.max(fleet_devices.c.reported_at))).scalar_one()
            return datetime.fromisoformat(stamp) > moment

        wait_until(lambda: reported_after(seen + timedelta(seconds=2)), what="a later heartbeat")
        assert online_at(engine, seen + timedelta(seconds=59)) == {"kiosk-lobby": True}
        assert online_at(engine, seen + timedelta(seconds=61)) == {"kiosk-lobby": False}
    engine.dispose()


@pytest.mark.slow
def test_a_board_holding_its_stream_is_online_at_hq_and_offline_once_it_closes(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boards open a signed URL, not a device pairing: their event stream (pinged every 10 s) is their heartbeat."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", "acme")
    monkeypatch.setenv("QMS_HEARTBEAT_SECONDS", "1")
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    scope = Scope("area", "lantai-1")
    key = board_key(load_secret(tmp_path / "edge"), "jkt-sudirman", scope)
    with TestClient(app=create_app(settings)), RunningAppliance(tmp_path / "edge") as appliance:
        url = f"{appliance.base_url}/board/events?area=lantai-1&key={key}"
        with httpx.stream("GET", url, timeout=30) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # kept: a dropped iterator closes the connection
            assert next(lines)  # the first state arrived: the board is connected
            wait_until(lambda: online_at(engine, datetime.now(UTC)).get("board-area-lantai-1"), what="board online")
        wait_until(
            lambda: online_at(engine, datetime.now(UTC)) == {"board-area-lantai-1": False},
            what="board offline at HQ after it closed its stream",
        )
    engine.dispose()
