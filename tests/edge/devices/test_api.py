"""`/api/v1/devices`: pairing by code, roles, presence in the list, revocation at once, fleet config with rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from edge.web.app import Settings, create_app
from tests.support.appliance import mint_token

API = "/api/v1"
USERS = [("admin", "admin", []), ("supervisor", "supervisor", []), ("agent1", "agent", ["1", "2"])]


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient[Any]]:
    """The app in-process over the seeded branch (devices btn-1, btn-3, led-1, board-1 already paired)."""
    with TestClient(create_app(Settings(data_dir=data_dir))) as test_client:
        yield test_client


def h(data_dir: Path, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(data_dir, user, users=USERS)}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.json()


def add_and_pair(client: TestClient[Any], data_dir: Path, device_id: str = "kiosk-1", **body: Any) -> dict[str, Any]:
    r = client.post(f"{API}/devices", json={"device_id": device_id, "type": "kiosk", "area_id": "lantai-1", **body},
                    headers=h(data_dir, "admin"))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["device"]["status"] == "pending"
    code = r.json()["pairing_code"]
    r = client.post(f"{API}/devices/pair", json={"code": f"{code[:4].lower()}-{code[4:]}"})  # case and dash forgiven
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_pairing_gives_a_device_token_that_works(client: TestClient[Any], data_dir: Path) -> None:
    creds = add_and_pair(client, data_dir)
    assert creds["device_id"] == "kiosk-1"
    assert creds["mqtt_username"] == "kiosk-1"
    assert len(creds["mqtt_password"]) == 32
    r = client.get(f"{API}/snapshot", params={"area": "lantai-1"}, headers=bearer(creds["access_token"]))
    assert r.status_code == 200, r.text
    r = client.post(f"{API}/counters/1/call-next", headers=bearer(creds["access_token"]))
    problem(r, 403, "counter_not_assigned")  # a kiosk has no counter


def test_a_code_works_once(client: TestClient[Any], data_dir: Path) -> None:
    r = client.post(f"{API}/devices", json={"device_id": "kiosk-2", "type": "kiosk"}, headers=h(data_dir, "admin"))
    code = r.json()["pairing_code"]
    assert client.post(f"{API}/devices/pair", json={"code": code}).status_code == 200
    problem(client.post(f"{API}/devices/pair", json={"code": code}), 401, "invalid_pairing_code")
    problem(client.post(f"{API}/devices/pair", json={"code": "ZZZZ-ZZZZ"}), 401, "invalid_pairing_code")


def test_wrong_codes_are_throttled(client: TestClient[Any]) -> None:
    for _ in range(5):
        problem(client.post(f"{API}/devices/pair", json={"code": "WRONG-123"}), 401, "invalid_pairing_code")
    r = client.post(f"{API}/devices/pair", json={"code": "WRONG-123"})
    problem(r, 429, "too_many_attempts")
    assert int(r.headers["Retry-After"]) > 0


def test_only_admins_register_and_revoke(client: TestClient[Any], data_dir: Path) -> None:
    body = {"device_id": "kiosk-9", "type": "kiosk"}
    problem(client.post(f"{API}/devices", json=body, headers=h(data_dir, "supervisor")), 403, "forbidden")
    problem(client.post(f"{API}/devices/btn-1/revoke", headers=h(data_dir, "agent1")), 403, "forbidden")
    problem(client.get(f"{API}/devices", headers=h(data_dir, "agent1")), 403, "forbidden")
    problem(client.post(f"{API}/devices", json={"device_id": "btn-9", "type": "button"},
                        headers=h(data_dir, "admin")), 422, "invalid_device")  # fmt: skip
    problem(client.post(f"{API}/devices", json={"device_id": "btn-1", "type": "button", "counter_id": "1"},
                        headers=h(data_dir, "admin")), 409, "device_exists")  # fmt: skip
    problem(client.post(f"{API}/devices/nope/revoke", headers=h(data_dir, "admin")), 404, "device_not_found")
    r = client.post(f"{API}/devices", json={"device_id": "bad/id", "type": "kiosk"}, headers=h(data_dir, "admin"))
    problem(r, 400, "invalid_body")


def test_admin_and_supervisor_see_status_and_presence(client: TestClient[Any], data_dir: Path) -> None:
    for user in ("admin", "supervisor"):
        r = client.get(f"{API}/devices", headers=h(data_dir, user))
        assert r.status_code == 200, r.text
        devices = {d["device_id"]: d for d in r.json()["devices"]}
        assert set(devices) == {"btn-1", "btn-3", "led-1", "board-1"}
        assert devices["btn-1"]["status"] == "active"
        assert devices["btn-1"]["counter_id"] == "1"
        assert devices["btn-1"]["online"] is False
        assert "last_seen" in devices["btn-1"]


def test_revoking_cuts_a_device_off_at_once(client: TestClient[Any], data_dir: Path) -> None:
    creds = add_and_pair(client, data_dir)
    token = bearer(creds["access_token"])
    assert client.get(f"{API}/snapshot", headers=token).status_code == 200  # cached as active now
    r = client.post(f"{API}/devices/kiosk-1/revoke", headers=h(data_dir, "admin"))
    assert r.json()["status"] == "revoked"
    problem(client.get(f"{API}/snapshot", headers=token), 401, "device_revoked")


def test_re_pairing_retires_the_tokens_of_earlier_pairings(client: TestClient[Any], data_dir: Path) -> None:
    first = add_and_pair(client, data_dir)
    assert client.post(f"{API}/devices/kiosk-1/revoke", headers=h(data_dir, "admin")).status_code == 200
    second = add_and_pair(client, data_dir)  # the same id paired again (a replaced or reset kiosk)
    assert client.get(f"{API}/snapshot", headers=bearer(second["access_token"])).status_code == 200
    problem(client.get(f"{API}/snapshot", headers=bearer(first["access_token"])), 401, "device_revoked")
    assert first["mqtt_password"] != second["mqtt_password"]
    # A token minted without a pairing (e.g. a copied users-table token) does not pass for a paired device either.
    forged = mint_token(data_dir, "kiosk-1", users=[("kiosk-1", "device", [])])
    problem(client.get(f"{API}/snapshot", headers=bearer(forged)), 401, "device_revoked")


def test_a_device_token_for_an_unknown_id_is_refused(client: TestClient[Any], data_dir: Path) -> None:
    ghost = mint_token(data_dir, "ghost", users=[("ghost", "device", [])])
    problem(client.get(f"{API}/snapshot", headers=bearer(ghost)), 401, "device_unknown")


def test_fleet_config_is_fetched_by_version_acknowledged_and_rolled_back(client: TestClient[Any],
                                                                        data_dir: Path) -> None:  # fmt: skip
    creds = add_and_pair(client, data_dir)
    device = bearer(creds["access_token"])
    admin = h(data_dir, "admin")
    r = client.get(f"{API}/devices/me/config", headers=device)
    assert r.json()["version"] == 0
    assert r.json()["config"] == {}
    v1 = client.put(f"{API}/devices/kiosk-1/config", json={"config": {"lang": "id", "page": "kiosk"}}, headers=admin)
    assert v1.json()["version"] == 1
    r = client.get(f"{API}/devices/me/config", headers=device)
    assert (r.json()["version"], r.json()["config"], r.headers["ETag"]) == (1, {"lang": "id", "page": "kiosk"}, '"1"')
    assert client.post(f"{API}/devices/me/config/ack", json={"version": 1, "ok": True}, headers=device).json() == {
        "run_version": 1, "rolled_back": False}  # fmt: skip
    client.put(f"{API}/devices/kiosk-1/config", json={"config": {"lang": "xx"}}, headers=admin)
    assert client.get(f"{API}/devices/me/config", headers=device).json()["version"] == 2
    r = client.post(f"{API}/devices/me/config/ack", json={"version": 2, "ok": False, "error": "unknown lang"},
                    headers=device)  # fmt: skip
    assert r.json() == {"run_version": 1, "rolled_back": True}
    good = client.get(f"{API}/devices/me/config", params={"version": 1}, headers=device).json()
    assert good["config"] == {"lang": "id", "page": "kiosk"}
    listed = {d["device_id"]: d for d in client.get(f"{API}/devices", headers=admin).json()["devices"]}
    kiosk = listed["kiosk-1"]
    assert (kiosk["config_version"], kiosk["applied_version"], kiosk["last_good_version"]) == (2, 1, 1)
    assert kiosk["apply_error"] == "version 2: unknown lang"
    problem(client.post(f"{API}/devices/me/config/ack", json={"version": 7, "ok": True}, headers=device), 404,
            "config_version_not_found")  # fmt: skip
    problem(client.get(f"{API}/devices/me/config", headers=admin), 403, "forbidden")
