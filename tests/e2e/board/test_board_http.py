"""The board's HTTP side: signed URLs, what a board may read, the announcement audio boards and speakers fetch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from edge.devices.audio.voicepack import build_pack
from tests.e2e.board.conftest import Staff, board_url, wait_until
from tests.edge.devices.audio.conftest import TEST_CLIPS
from tests.support.appliance import RunningAppliance


def test_a_board_needs_its_signed_key_and_one_scope(appliance: RunningAppliance) -> None:
    good = board_url(appliance, "lantai-1")
    assert httpx.get(good, timeout=10).status_code == 200
    wrong = good.replace("area=lantai-1", "area=lantai-2")  # lantai-1's key does not open lantai-2
    page = httpx.get(wrong, timeout=10)
    assert page.status_code == 401
    assert "qms-edge board url" in page.text
    state = httpx.get(wrong.replace("/board?", "/board/state?"), timeout=10)
    assert state.status_code == 401
    assert state.json()["code"] == "board_key_invalid"
    both = httpx.get(f"{appliance.base_url}/board/state?area=lantai-1&service=teller&key=x", timeout=10)
    assert both.json()["code"] == "board_scope_required"
    events = httpx.get(f"{appliance.base_url}/board/events?area=lantai-1", timeout=10)
    assert events.status_code == 401


def test_board_state_shows_calls_but_no_personal_data(appliance: RunningAppliance, staff: Staff) -> None:
    staff.post("/tickets", {"service_id": "teller", "phone": "+6281234567890", "email": "a@example.com"})
    staff.call_next("1")
    url = board_url(appliance, "lantai-1").replace("/board?", "/board/state?")
    state = httpx.get(url, timeout=10).json()
    assert state["now"]["ticket_number"] == "A001"
    assert state["now"]["counter_name"] == "Loket 1"
    body = json.dumps(state)
    assert "6281234567890" not in body
    assert "example.com" not in body
    assert "ticket_id" not in body
    service_board = board_url(appliance, service="teller").replace("/board?", "/board/state?")
    assert httpx.get(service_board, timeout=10).json()["now"]["ticket_number"] == "A001"


def test_the_board_stream_carries_the_announcement_and_its_wav(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    build_pack(data_dir / "voice", "id", "espeak", TEST_CLIPS)
    sink = tmp_path / "speaker"
    monkeypatch.setenv("QMS_AUDIO_SINK", str(sink))
    with RunningAppliance(data_dir) as appliance:
        staff = Staff(appliance)
        events_url = board_url(appliance, "lantai-1").replace("/board?", "/board/events?")
        announce: dict[str, object] = {}
        with httpx.stream("GET", events_url, timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: state"
            staff.enqueue("teller")
            called = staff.call_next("3")
            event = None
            for line in lines:
                if line.startswith("event:"):
                    event = line.removeprefix("event: ")
                elif line.startswith("data:") and event == "announce":
                    announce = json.loads(line.removeprefix("data: "))
                    break
        assert announce["ticket_number"] == called["ticket_number"] == "A001"
        assert announce["counter_id"] == "3"
        key = board_url(appliance, "lantai-1").rsplit("key=", 1)[1]
        wav = httpx.get(f"{appliance.base_url}{announce['url']}?key={key}", timeout=10)
        assert wav.status_code == 200
        assert wav.headers["content-type"] == "audio/wav"
        assert wav.content.startswith(b"RIFF")
        # The appliance's speaker (here a WAV sink) got the very same audio.
        wait_until(lambda: len(list(sink.glob("*.wav"))) == 1)
        assert next(sink.glob("*.wav")).read_bytes() == wav.content
        missing = httpx.get(f"{appliance.base_url}/board/audio/lantai-1/999.wav?key={key}", timeout=10)
        assert missing.json()["code"] == "announcement_not_found"
