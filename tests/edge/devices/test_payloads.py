"""MQTT payloads against recorded fixtures: what devices receive for a known queue, and the button commands they send.

Regenerate the recorded files with `QMS_RECORD_FIXTURES=1 pytest tests/edge/devices/test_payloads.py` after a
deliberate payload change (and document it in README.md: devices depend on these shapes).
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edge.devices.audio.announcer import Announcer
from edge.devices.mqtt import payloads
from edge.engine import commands as c
from edge.service import QueueService
from sync.contract import TicketCalled, event_type
from tests.edge.devices.audio.test_pacing import tiny_pack
from tests.support.appliance import seed_demo

FIXTURES = Path(__file__).with_name("fixtures")
RECORD = os.environ.get("QMS_RECORD_FIXTURES") == "1"
START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def recorded(name: str, actual: Any) -> None:
    """Compare with (or, when recording, write) fixtures/<name>.json."""
    path = FIXTURES / f"{name}.json"
    text = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if RECORD:
        path.write_text(text, encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), f"{name} differs from {path}"


@pytest.fixture
def queue(tmp_path: Path) -> QueueService:
    """A deterministic queue (stopped clock, counted ids): A001 called at counter 1, A002 waiting, B001 served at 4."""
    data = tmp_path / "data"
    seed_demo(data, users=[])
    ids = (f"00000000-0000-7000-8000-{n:012d}" for n in itertools.count(1))
    service = QueueService(data, clock=lambda: START, ids=lambda: next(ids))
    service.start()
    a1 = service.execute(c.Enqueue(service_id="teller", phone="081234567890")).response
    service.execute(c.Enqueue(service_id="teller", lang="en"))
    b1 = service.execute(c.Enqueue(service_id="cs")).response
    service.execute(c.CallNext(counter_id="4", actor="btn-4", request_id="r-1"))
    service.execute(c.Start(ticket_id=b1["ticket_id"], counter_id="4"))
    service.execute(c.CallNext(counter_id="1", actor="btn-1", request_id="r-2"))
    assert service.view.state.counters["1"].current_ticket == a1["ticket_id"]
    return service


def test_counter_states(queue: QueueService) -> None:
    view = queue.view
    recorded("counter_state_called", payloads.counter_state(view, "1"))
    recorded("counter_state_serving", payloads.counter_state(view, "4"))
    recorded("counter_state_idle", payloads.counter_state(view, "2"))
    queue.stop()


def test_display_states(queue: QueueService) -> None:
    recorded("display_states", payloads.display_states(queue.view))
    queue.stop()


def test_events_carry_no_personal_data(queue: QueueService) -> None:
    events = queue.events_after(0)
    created = next(e for e in events if event_type(e) == "ticket.created")
    assert created.phone == "081234567890"  # type: ignore[attr-defined]
    on_bus = payloads.event_payload(created)
    assert "phone" not in on_bus
    assert "hash" not in on_bus
    called = [e for e in events if event_type(e) == "ticket.called"]
    recorded("event_ticket_called", payloads.event_payload(called[-1]))
    config_event = next(e for e in events if event_type(e) == "config.applied")
    assert "config" not in payloads.event_payload(config_event)
    queue.stop()


def test_the_announcement_speakers_get(queue: QueueService, tmp_path: Path) -> None:
    """Built from the announcer's Announcement (tone packs: a duration that does not depend on the TTS engines)."""
    for lang in ("id", "en"):
        tiny_pack(tmp_path / "voice", lang)
    announcer = Announcer(queue, tmp_path / "voice", [], pace=False)
    called = [e for e in queue.events_after(0) if isinstance(e, TicketCalled)][-1]
    spoken = announcer.compose(called, committed_at=0.0)
    assert spoken is not None
    body = payloads.announcement(spoken)
    recorded("audio_announce", [spoken.area, body])
    assert body["audio_path"] == f"/board/audio/lantai-1/{called.seq}.wav"
    assert body["duration"] == pytest.approx(spoken.duration, abs=0.001)
    assert not {"phone", "ticket_id", "lang"} & body.keys()  # A001 was taken with a phone number
    queue.stop()


@pytest.mark.parametrize(
    ("raw", "action"),
    [
        (b'{"action":"call_next","request_id":"btn-1-3f2a9c01-7","device_id":"btn-1"}', "call_next"),
        (b'{"action":"complete","request_id":"r9","device_id":"btn-1","outcome":"deposit"}', "complete"),
        (b'{"action":"recall","request_id":"r8","device_id":"btn-1","ticket_id":"t-1"}', "recall"),
    ],
)
def test_button_commands_as_esphome_sends_them(raw: bytes, action: str) -> None:
    assert payloads.command_decoder.decode(raw).action == action


@pytest.mark.parametrize(
    "raw",
    [
        b'{"action":"call_next","device_id":"btn-1"}',  # no request_id: a redelivery could call twice
        b'{"action":"delete_everything","request_id":"r","device_id":"btn-1"}',
        b'{"action":"call_next","request_id":"r","device_id":"btn-1","counter_id":"9"}',  # the topic says the counter
        b"call_next",
        b"",
    ],
)
def test_malformed_button_commands_are_refused(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        payloads.command_decoder.decode(raw)
