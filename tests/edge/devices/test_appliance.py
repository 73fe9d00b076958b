"""End to end: `qms-edge devices …` CLI, the broker files it writes, and `qms-edge serve` running the bridge."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from edge.devices import registry
from edge.devices.mqtt import topics
from edge.store.db import connect
from tests.edge.devices.conftest import BRANCH
from tests.edge.devices.mosquitto import DeviceClient, Mosquitto, device_password, wait_for
from tests.support.appliance import RunningAppliance, count_request_events, run_cli

pytestmark = pytest.mark.slow


def known(data_dir: Path, device_id: str) -> registry.Device:
    """A registered device, read from the data dir."""
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        found = registry.get_device(conn, device_id)
    finally:
        conn.close()
    assert found is not None
    return found


def revoke_through_the_api(appliance: RunningAppliance, broker: Mosquitto, data_dir: Path,
                           admin: dict[str, str]) -> None:  # fmt: skip
    """The admin API revokes btn-1: the appliance rewrites the broker's logins and reloads it; btn-1 is dropped."""
    password = device_password(data_dir, known(data_dir, "btn-1"))
    other = DeviceClient(broker.port, "btn-1", password).connect()
    try:
        assert other.connected.is_set()
        assert httpx.post(f"{appliance.api}/devices/btn-1/revoke", headers=admin).status_code == 200
        wait_for(lambda: not other.client.is_connected(), what="btn-1 dropped after the API revoke")
    finally:
        other.close()


def check_broker_files(directory: Path) -> None:
    """Anonymous off, queues raised, btn-2 bound to its own topics, passwords hashed."""
    conf = (directory / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "max_queued_messages 100000" in conf
    acl = (directory / "acl").read_text()
    assert f"user btn-2\ntopic readwrite qms/{BRANCH}/device/btn-2/status" in acl
    assert f"topic write qms/{BRANCH}/counter/2/cmd" in acl
    assert "btn-2:$" in (directory / "passwd").read_text()  # hashed, never the plain password


def test_cli_pairs_a_button_and_the_served_appliance_answers_it(data_dir: Path) -> None:
    out = run_cli("devices", "add", "btn-2", "--type", "button", "--counter", "2", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    code = out.stdout.split("pairing code ")[1].split()[0]
    out = run_cli("devices", "pair", code, "--json", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    creds = json.loads(out.stdout)
    assert run_cli("devices", "pair", code, "--data-dir", str(data_dir)).returncode == 1  # used

    broker = Mosquitto(data_dir, BRANCH)
    try:
        out = run_cli("devices", "mqtt-config", "--out", str(broker.directory), "--port", str(broker.port),
                      "--bind", "127.0.0.1", "--no-persistence", "--data-dir", str(data_dir))  # fmt: skip
        assert out.returncode == 0, out.stderr
        check_broker_files(broker.directory)
        broker.start()
        with RunningAppliance(data_dir) as appliance:
            admin = {"Authorization": f"Bearer {appliance.token('admin')}"}
            r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"}, headers=admin)
            number = r.json()["ticket_number"]
            button = DeviceClient(broker.port, "btn-2", creds["mqtt_password"]).connect()
            try:
                button.subscribe(topics.device_reply(BRANCH, "btn-2"))
                rid = str(uuid.uuid4())
                body = {"action": "call_next", "request_id": rid, "device_id": "btn-2"}
                button.client.publish(topics.counter_cmd(BRANCH, "2"), json.dumps(body), qos=1)
                reply = wait_for(lambda: button.got(topics.device_reply(BRANCH, "btn-2")),
                                 what=f"a reply\n{appliance.log()}")  # fmt: skip
                assert json.loads(reply[0])["ticket"]["ticket_number"] == number
                assert count_request_events(data_dir, rid) == 1

                def listed() -> dict[str, object]:
                    devices = httpx.get(f"{appliance.api}/devices", headers=admin).json()["devices"]
                    return next(d for d in devices if d["device_id"] == "btn-2")  # type: ignore[no-any-return]

                assert wait_for(lambda: listed()["online"], what="btn-2 online in the admin API")
                token = {"Authorization": f"Bearer {creds['access_token']}"}
                assert httpx.get(f"{appliance.api}/counters", headers=token).status_code == 200
                out = run_cli("devices", "revoke", "btn-2", "--data-dir", str(data_dir))  # another process
                assert out.returncode == 0, out.stderr
                assert "broker reloaded" in out.stdout, out.stdout
                r = httpx.get(f"{appliance.api}/counters", headers=token)
                assert (r.status_code, r.json()["code"]) == (401, "device_revoked")
                wait_for(lambda: not button.client.is_connected(), what="the broker dropping the revoked login")
                revoke_through_the_api(appliance, broker, data_dir, admin)
            finally:
                button.close()
        listing = run_cli("devices", "list", "--data-dir", str(data_dir))
        assert "btn-2" in listing.stdout
        assert "revoked" in listing.stdout
    finally:
        broker.cleanup()
