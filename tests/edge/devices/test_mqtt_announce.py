"""MQTT speakers hear the announcer: the real app (writer, announcer, bridge) with test voice packs, a real Mosquitto.

A speaker is simulated by board-1 (a display device of area lantai-1, whose broker login may read the area's
`announce` and display `state`); the WAV is fetched through the app with the area's board key, as a speaker would.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import shutil
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from litestar.testing import TestClient

from edge.auth import load_secret
from edge.devices import registry
from edge.devices.audio.announcer import Announcer
from edge.devices.mqtt import topics
from edge.devices.mqtt.bridge import MqttBridge
from edge.engine import commands as c
from edge.service import QueueService
from edge.store.db import connect
from edge.web.app import Settings, create_app
from edge.web.board.access import Scope, board_key
from tests.edge.devices.audio.conftest import voice_root, with_announcements  # noqa: F401 - a session fixture
from tests.edge.devices.conftest import BRANCH
from tests.edge.devices.mosquitto import DeviceClient, Mosquitto, device_password, wait_for

pytestmark = pytest.mark.slow

AREA = "lantai-1"
ANNOUNCE = topics.audio_announce(BRANCH, AREA)
DISPLAY = topics.display_state(BRANCH, AREA)
GAP_MS = 200
FIELDS = {"seq", "ticket_number", "counter_id", "counter_name", "recall", "audio_path", "duration", "languages"}


class Speaker(DeviceClient):
    """A simulated MQTT speaker that also notes when each message arrived and at which QoS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str, int, bool, dict[str, Any]]] = []

    def _on_message(self, c_: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        super()._on_message(c_, u, msg)
        with self.lock:
            self.arrivals.append((time.monotonic(), msg.topic, msg.qos, bool(msg.retain), json.loads(msg.payload)))

    def announced(self) -> list[dict[str, Any]]:
        """The announcements received so far."""
        with self.lock:
            return [body for _t, topic, _q, _r, body in self.arrivals if topic == ANNOUNCE]

    def display(self) -> dict[str, Any] | None:
        """The newest display state received."""
        with self.lock:
            states = [body for _t, topic, _q, _r, body in self.arrivals if topic == DISPLAY]
        return states[-1] if states else None


@dataclass
class Branch:
    """The running app and what a test drives and observes."""

    client: TestClient[Any]
    service: QueueService
    announcer: Announcer
    bridge: MqttBridge
    broker: Mosquitto
    speaker: Speaker
    key: str

    def configure(self, **announcements: Any) -> None:
        """Apply announcement settings (one language, no chime: short clips; never the real sound card)."""
        config = self.service.view.state.config
        assert config is not None
        settings = {"languages": ["id"], "chime": False, "min_gap_ms": GAP_MS, "outputs": ["board", "mqtt"]}
        changed = with_announcements(config, **{**settings, **announcements})
        self.service.execute(c.ApplyConfig(actor="test", config=changed, base_version=config.version, source="test"))

    def call(self, *counters: str) -> list[str]:
        """Enqueue a ticket for each counter and call it there; the ticket numbers."""
        numbers = []
        for counter in counters:
            ticket = self.service.execute(c.Enqueue(service_id="teller")).response
            self.service.execute(c.CallTicket(ticket_id=ticket["ticket_id"], counter_id=counter))
            numbers.append(ticket["ticket_number"])
        return numbers

    def barrier(self) -> None:
        """Commit a change the bridge publishes after anything sent before it, and wait until the speaker has it."""
        before = self.speaker.display()
        waiting = before["waiting"] if before else 0
        self.service.execute(c.Enqueue(service_id="teller"))
        wait_for(lambda: (self.speaker.display() or {}).get("waiting") == waiting + 1, what="the barrier state")

    def wav(self, body: dict[str, Any]) -> bytes:
        """Fetch an announcement's audio as a speaker does: its path plus the area's board key."""
        response = self.client.get(f"{body['audio_path']}?key={self.key}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        return response.content


def seconds(wav: bytes) -> float:
    """Length of a WAV file."""
    with wave.open(io.BytesIO(wav), "rb") as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture
def branch(data_dir: Path, broker: Mosquitto, voice_root: Path) -> Iterator[Branch]:  # noqa: F811 - the fixture
    """The app over the test's data dir (its `mqtt.json` points at the broker) with a connected area speaker."""
    shutil.copytree(voice_root, data_dir / "voice")
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    board = registry.get_device(conn, "board-1")
    conn.close()
    assert board is not None
    service = QueueService(data_dir)
    app = create_app(Settings(data_dir=data_dir), service=service)
    with TestClient(app) as client:
        devices = app.state["appliance"].devices
        bridge = wait_for(lambda: devices.bridge, what="the bridge")
        wait_for(bridge.connected.is_set, what=f"bridge connected\n{broker.log()}")
        speaker = Speaker(broker.port, "board-1", device_password(data_dir, board))
        speaker.connect()
        try:
            speaker.subscribe(ANNOUNCE)
            speaker.subscribe(DISPLAY)
            key = board_key(load_secret(data_dir), BRANCH, Scope("area", AREA))
            running = Branch(client, service, app.state["board"].announcer, bridge, broker, speaker, key)
            running.configure()
            yield running
        finally:
            speaker.close()


def test_a_call_is_announced_once_with_its_wav_ready(branch: Branch) -> None:
    [number] = branch.call("3")
    [body] = wait_for(branch.speaker.announced, what="the announcement")
    wav = branch.wav(body)  # fetched the moment the message arrived: the WAV exists already

    spoken = branch.announcer.audio(AREA, body["seq"])
    assert spoken is not None
    assert body.keys() == FIELDS
    assert body == {
        "seq": spoken.seq,
        "ticket_number": number,
        "counter_id": "3",
        "counter_name": "Loket 3",
        "recall": False,
        "audio_path": f"/board/audio/{AREA}/{spoken.seq}.wav",
        "duration": pytest.approx(spoken.duration, abs=0.001),
        "languages": ["id"],
    }
    assert wav == spoken.wav
    assert seconds(wav) == pytest.approx(body["duration"], abs=0.001)
    assert 0.5 < body["duration"] < 15
    [(_at, _topic, qos, retained, _body)] = [a for a in branch.speaker.arrivals if a[1] == ANNOUNCE]
    assert (qos, retained) == (1, False)

    branch.barrier()
    assert len(branch.speaker.announced()) == 1


def test_a_recall_is_announced_again(branch: Branch) -> None:
    ticket = branch.service.execute(c.Enqueue(service_id="teller")).response
    branch.service.execute(c.CallTicket(ticket_id=ticket["ticket_id"], counter_id="2"))
    # Recall once the call is being spoken: a recall replaces a call that has not started playing (issue 11).
    wait_for(branch.speaker.announced, timeout=30, what="the call")
    branch.service.execute(c.Recall(ticket_id=ticket["ticket_id"], counter_id="2"))
    first, again = wait_for(lambda: branch.speaker.announced()[1:] and branch.speaker.announced(), timeout=30,
                            what="the call and the recall")  # fmt: skip
    assert (first["recall"], again["recall"]) == (False, True)
    assert first["ticket_number"] == again["ticket_number"] == ticket["ticket_number"]
    assert again["seq"] > first["seq"]
    assert again["duration"] > 1.8 * first["duration"]  # said recall_repeats (2) times
    assert seconds(branch.wav(again)) == pytest.approx(again["duration"], abs=0.001)


def test_three_quick_calls_arrive_in_order_at_speaking_pace(branch: Branch) -> None:
    burst = time.monotonic()
    numbers = branch.call("1", "2", "3")
    assert time.monotonic() - burst < 1.0, "the burst itself was slow"

    wait_for(lambda: len(branch.speaker.announced()) == 3, timeout=60, what="three announcements")
    arrivals = [(at, body) for at, topic, _q, _r, body in branch.speaker.arrivals if topic == ANNOUNCE]
    assert [body["ticket_number"] for _, body in arrivals] == numbers
    assert [body["counter_id"] for _, body in arrivals] == ["1", "2", "3"]
    for (t0, first), (t1, _) in itertools.pairwise(arrivals):
        # Each is sent when the previous one has been spoken plus the gap: a speaker never gets a backlog.
        assert t1 - t0 >= first["duration"] + GAP_MS / 1000 - 0.05
    for _, body in arrivals:
        assert seconds(branch.wav(body)) == pytest.approx(body["duration"], abs=0.001)


def quiet(branch: Branch) -> None:
    """All day is quiet."""
    branch.configure(quiet_hours=[("00:00", "24:00")])


def mqtt_not_allowed(branch: Branch) -> None:
    """Only the boards announce (`mqtt` not in `outputs`)."""
    branch.configure(outputs=["board"])


def disabled(branch: Branch) -> None:
    """No announcements at all."""
    branch.configure(enabled=False)


@pytest.mark.parametrize("silence", [quiet, mqtt_not_allowed, disabled])
def test_no_mqtt_announcement_when_silenced_yet_the_display_updates(branch: Branch, silence: Any) -> None:
    silence(branch)
    numbers = branch.call("1", "2", "3")

    def shown() -> bool:
        state = branch.speaker.display() or {}
        return sorted(call["ticket_number"] for call in state.get("now_calling", [])) == numbers

    wait_for(shown, what="the display state with the calls")
    if silence is quiet:
        wait_for(lambda: branch.announcer.stats.quiet == 3, what="three quiet calls")
    elif silence is mqtt_not_allowed:
        wait_for(lambda: branch.announcer.stats.played == 3, timeout=60, what="three calls played to the boards")
    branch.barrier()
    assert branch.speaker.announced() == []


def test_a_broker_outage_never_disturbs_the_announcer(branch: Branch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qms.mqtt")
    branch.broker.stop()
    wait_for(lambda: not branch.bridge.connected.is_set(), what="the bridge noticing the broker is gone")
    [number] = branch.call("1")
    wait_for(lambda: branch.announcer.stats.played == 1, what="the call played to the other outputs")
    assert branch.announcer.audio(AREA, branch.service.view.seq) is not None  # boards can still fetch it
    assert f"announcement of {number}" in caplog.text
    assert branch.service.view.state.counters["1"].current_ticket is not None
