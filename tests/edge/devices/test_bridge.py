"""The MQTT bridge against a real Mosquitto with auth and ACLs: buttons, idempotency, ACLs, restarts, Last Will."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.devices import registry
from edge.devices.mqtt import topics
from edge.devices.mqtt.bridge import MqttBridge, MqttSettings
from edge.engine import commands as c
from edge.service import QueueService
from edge.store.db import connect
from tests.edge.devices.conftest import BRANCH
from tests.edge.devices.mosquitto import DeviceClient, Mosquitto, device_password, wait_for
from tests.support.appliance import count_request_events, event_rows

pytestmark = pytest.mark.slow


def device(data_dir: Path, broker: Mosquitto, device_id: str, **kwargs: Any) -> DeviceClient:
    """A connected simulated device with its own credentials."""
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    found = registry.get_device(conn, device_id)
    conn.close()
    assert found is not None
    return DeviceClient(broker.port, device_id, device_password(data_dir, found), **kwargs).connect()


def press(button: DeviceClient, counter_id: str, action: str, request_id: str | None = None, **extra: Any) -> str:
    """Publish a button command at QoS 1; returns its request_id."""
    request_id = request_id or str(uuid.uuid4())
    body = {"action": action, "request_id": request_id, "device_id": button.status_topic.split("/")[3], **extra}
    button.client.publish(topics.counter_cmd(BRANCH, counter_id), json.dumps(body), qos=1).wait_for_publish(5)
    return request_id


def replies(button: DeviceClient, device_id: str, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` replies to a request on the device's reply topic."""
    topic = topics.device_reply(BRANCH, device_id)

    def mine() -> list[dict[str, Any]]:
        found = [json.loads(p) for p in button.got(topic)]
        found = [r for r in found if r["request_id"] == request_id]
        return found if len(found) >= count else []

    return wait_for(mine, what=f"{count} reply(ies) to {request_id}")  # type: ignore[no-any-return]


def retained_state(client: DeviceClient, topic: str, predicate: Any = bool) -> dict[str, Any]:
    """The newest state received on a topic that satisfies `predicate`."""

    def newest() -> dict[str, Any] | None:
        got = client.got(topic)
        if not got:
            return None
        state = json.loads(got[-1])
        return state if predicate(state) else None

    return wait_for(newest, what=f"state on {topic}")  # type: ignore[no-any-return]


def test_a_call_button_calls_the_next_ticket(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                             data_dir: Path) -> None:  # fmt: skip
    ticket = service.execute(c.Enqueue(service_id="teller")).response
    button = device(data_dir, broker, "btn-1")
    button.subscribe(topics.device_reply(BRANCH, "btn-1"))
    button.subscribe(topics.counter_state(BRANCH, "1"))
    try:
        rid = press(button, "1", "call_next")
        (reply,) = replies(button, "btn-1", rid)
        assert reply["ok"] is True
        assert reply["ticket"]["ticket_number"] == ticket["ticket_number"]
        state = retained_state(button, topics.counter_state(BRANCH, "1"), lambda s: s["ticket"] is not None)
        assert state["ticket"]["ticket_number"] == ticket["ticket_number"]
        assert state["ticket"]["status"] == "called"
        rows = event_rows(data_dir, "SELECT type, actor FROM events WHERE request_id = ?", (rid,))
        assert rows == [("ticket.called", "btn-1")]
    finally:
        button.close()


def test_a_duplicate_qos1_delivery_creates_one_event(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                                     data_dir: Path) -> None:  # fmt: skip
    service.execute(c.Enqueue(service_id="teller"))
    service.execute(c.Enqueue(service_id="teller"))
    button = device(data_dir, broker, "btn-1")
    button.subscribe(topics.device_reply(BRANCH, "btn-1"))
    try:
        for action in ("call_next", "start", "complete"):
            rid = str(uuid.uuid4())
            press(button, "1", action, rid)
            replies(button, "btn-1", rid)
            press(button, "1", action, rid)  # the same message again: what a QoS 1 redelivery looks like
            first, second = replies(button, "btn-1", rid, count=2)
            assert first["ok"], first
            assert second["ok"], second
            assert (first["replayed"], second["replayed"]) == (False, True)
            assert first["ticket"] == second["ticket"]
            assert count_request_events(data_dir, rid) == 1
        statuses = [t.status for t in service.view.state.tickets.values()]
        assert sorted(statuses) == ["done", "waiting"]  # the second ticket was never called by the duplicate
    finally:
        button.close()


def test_errors_are_answered_on_the_reply_topic(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                                data_dir: Path) -> None:  # fmt: skip
    button = device(data_dir, broker, "btn-1")
    button.subscribe(topics.device_reply(BRANCH, "btn-1"))
    try:
        rid = press(button, "1", "call_next")
        (reply,) = replies(button, "btn-1", rid)
        assert reply == {"request_id": rid, "action": "call_next", "ok": True, "replayed": False, "ticket": None,
                         "reason": "empty"}  # fmt: skip
        rid = press(button, "1", "complete")
        (reply,) = replies(button, "btn-1", rid)
        assert (reply["ok"], reply["code"]) == (False, "no_current_ticket")
        service.execute(c.Enqueue(service_id="teller"))
        press(button, "1", "call_next")
        rid = press(button, "1", "complete")  # called, not serving yet
        (reply,) = replies(button, "btn-1", rid)
        assert (reply["ok"], reply["code"]) == (False, "invalid_state")
    finally:
        button.close()


def test_a_device_cannot_publish_to_another_devices_or_counters_topics(
    service: QueueService, bridge: MqttBridge, broker: Mosquitto, data_dir: Path
) -> None:
    service.execute(c.Enqueue(service_id="teller"))
    watcher = DeviceClient(broker.port, "qms-edge", json.loads((data_dir / "mqtt.json").read_text())["password"],
                           will=False, client_id="watcher").connect(online=False)  # fmt: skip
    watcher.subscribe(f"qms/{BRANCH}/#")
    button = device(data_dir, broker, "btn-1")
    try:
        before = event_rows(data_dir, "SELECT count(*) FROM events")[0][0]
        info = button.client.publish(topics.counter_cmd(BRANCH, "3"), json.dumps(
            {"action": "call_next", "request_id": "evil-1", "device_id": "btn-3"}), qos=1)  # fmt: skip
        info.wait_for_publish(5)
        spoof = button.client.publish(topics.device_status(BRANCH, "btn-3"), b"online", qos=1, retain=True)
        spoof.wait_for_publish(5)
        state = button.client.publish(topics.counter_state(BRANCH, "1"), b"{}", qos=1, retain=True)
        state.wait_for_publish(5)
        wait_for(lambda: len(button.acks) >= 4, what="PUBACKs")  # online + the three attempts
        refused = [button.acks[m.mid] for m in (info, spoof, state)]
        assert all(r.value == 0x87 for r in refused), refused  # MQTT 5: "Not authorized"
        # Control: a legitimate command afterwards arrives, so the refused ones had their chance to arrive too.
        rid = press(button, "1", "call_next")
        wait_for(lambda: count_request_events(data_dir, rid) == 1, what="the legitimate command")
        seen = {t for t, _p, _r in watcher.messages}
        assert topics.counter_cmd(BRANCH, "3") not in seen
        assert topics.device_status(BRANCH, "btn-3") not in seen
        assert b"{}" not in watcher.got(topics.counter_state(BRANCH, "1"))
        assert count_request_events(data_dir, "evil-1") == 0
        assert event_rows(data_dir, "SELECT count(*) FROM events")[0][0] == before + 2  # opens the counter, calls
    finally:
        button.close()
        watcher.close()


def test_anonymous_and_wrong_passwords_are_refused(bridge: MqttBridge, broker: Mosquitto) -> None:
    anonymous = DeviceClient(broker.port, "nobody", None).connect()
    wrong = DeviceClient(broker.port, "btn-1", "not-the-password").connect()
    try:
        assert anonymous.connack.is_failure
        assert not anonymous.connected.is_set()
        assert wrong.connack.is_failure
        assert not wrong.connected.is_set()
    finally:
        anonymous.close()
        wrong.close()


def test_a_revoked_device_is_refused(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                     data_dir: Path) -> None:  # fmt: skip
    service.execute(c.Enqueue(service_id="teller"))
    button = device(data_dir, broker, "btn-1")
    button.subscribe(topics.device_reply(BRANCH, "btn-1"))
    try:
        service.submit_store(lambda conn: registry.revoke(conn, "btn-1", datetime.now(UTC))).result(10)
        rid = press(button, "1", "call_next")
        (reply,) = replies(button, "btn-1", rid)
        assert (reply["ok"], reply["code"]) == (False, "device_revoked")
        assert count_request_events(data_dir, rid) == 0
    finally:
        button.close()
    broker.reload()  # the regenerated password file no longer has btn-1
    again = device(data_dir, broker, "btn-1", client_id="btn-1-again")
    try:
        assert again.connack.is_failure
    finally:
        again.close()


def test_state_is_republished_after_a_broker_restart(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                                     data_dir: Path) -> None:  # fmt: skip
    ticket = service.execute(c.Enqueue(service_id="teller")).response
    service.execute(c.CallNext(counter_id="1"))
    broker.stop()  # no persistence: every retained message is gone
    wait_for(lambda: not bridge.connected.is_set(), what="the bridge noticing the broker is gone")
    broker.start()
    wait_for(bridge.connected.is_set, timeout=20, what="the bridge reconnecting by itself")
    led = device(data_dir, broker, "led-1")
    board = device(data_dir, broker, "board-1")
    try:
        led.subscribe(topics.counter_state(BRANCH, "1"))
        board.subscribe(topics.display_state(BRANCH, "lantai-1"))
        state = retained_state(led, topics.counter_state(BRANCH, "1"))
        assert state["ticket"]["ticket_number"] == ticket["ticket_number"]
        display = retained_state(board, topics.display_state(BRANCH, "lantai-1"))
        assert [t["ticket_number"] for t in display["now_calling"]] == [ticket["ticket_number"]]
        assert all(r for _t, _p, r in led.messages)  # delivered as retained messages
    finally:
        led.close()
        board.close()


KILLED_DEVICE = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, user, password, topic = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
client.username_pw_set(user, password)
client.will_set(topic, b"offline", qos=1, retain=True)
client.connect("127.0.0.1", int(port), keepalive=2)
client.loop_start()
client.publish(topic, b"online", qos=1, retain=True).wait_for_publish(5)
print("online", flush=True)
time.sleep(600)
"""


def test_last_will_marks_a_killed_device_offline(service: QueueService, bridge: MqttBridge, broker: Mosquitto,
                                                 data_dir: Path) -> None:  # fmt: skip
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    led = registry.get_device(conn, "led-1")
    conn.close()
    assert led is not None
    topic = topics.device_status(BRANCH, "led-1")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DEVICE, str(broker.port), "led-1",
                             device_password(data_dir, led), topic], stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"online"
        wait_for(lambda: bridge.presence.get("led-1", (False,))[0], what="led-1 online")

        def stored() -> tuple[int, str | None]:
            found = registry.get_device(connect(data_dir / "qms.sqlite3", readonly=True), "led-1")
            assert found is not None
            return int(found.online), found.last_seen

        wait_for(lambda: stored()[0] == 1, what="online stored in the registry")
        proc.kill()  # SIGKILL: no DISCONNECT, the broker must send the Last Will
        proc.wait(5)
        wait_for(lambda: not bridge.presence["led-1"][0], timeout=2 * 1.5, what="Last Will within the keepalive")
        wait_for(lambda: stored()[0] == 0, what="offline stored in the registry")
        assert stored()[1] is not None
    finally:
        proc.kill()
        proc.wait(5)


def test_a_dead_broker_never_affects_the_queue(data_dir: Path, service: QueueService) -> None:
    port_broker = Mosquitto(data_dir, BRANCH)  # configured, not started yet
    settings = MqttSettings(host="127.0.0.1", port=port_broker.port, password="x")
    settings = MqttSettings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                               "password": json.loads((data_dir / "mqtt.json").read_text())["password"]})  # fmt: skip
    lonely = MqttBridge(service, settings)
    lonely.start()
    try:
        for _ in range(20):
            service.execute(c.Enqueue(service_id="teller"))
        called = service.execute(c.CallNext(counter_id="1")).response["ticket"]
        assert called is not None
        assert not lonely.connected.is_set()
        port_broker.start()  # the broker comes (back): the bridge connects by itself and publishes the state
        wait_for(lonely.connected.is_set, timeout=20, what="the bridge connecting by itself")
        led = device(data_dir, port_broker, "led-1")
        try:
            led.subscribe(topics.counter_state(BRANCH, "1"))
            state = retained_state(led, topics.counter_state(BRANCH, "1"))
            assert state["ticket"]["ticket_number"] == called["ticket_number"]
        finally:
            led.close()
    finally:
        lonely.stop()
        port_broker.cleanup()
