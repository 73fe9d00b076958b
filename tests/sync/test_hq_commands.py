"""HQ's interventions on the wire (sync/liveness.py): every kind round-trips through the branch's decoder, the
presence command of earlier hubs still decodes unchanged, and an unknown action or field is refused, never guessed."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.liveness import HqCallNext, HqCancel, HqCommand, HqDeviceConfig, HqSetPresence, HqTransfer, command_decoder

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
maybe = st.none() | ids
commands = st.one_of(
    st.builds(HqSetPresence, counter_id=ids, status=st.sampled_from(["available", "busy", "break", "closed"]),
              actor=ids, request_id=maybe),
    st.builds(HqCallNext, counter_id=ids, actor=ids, request_id=maybe),
    st.builds(HqTransfer, ticket_id=ids, actor=ids, to_service_id=maybe, to_counter_id=maybe, reason=maybe,
              request_id=maybe),
    st.builds(HqCancel, ticket_id=ids, actor=ids, reason=maybe, request_id=maybe),
    st.builds(HqDeviceConfig, device_type=st.sampled_from(["kiosk", "display", "button", "led"]),
              config=st.dictionaries(ids, st.integers() | ids | st.booleans(), max_size=5), actor=ids,
              request_id=maybe),
)  # fmt: skip


@given(commands)
def test_every_command_round_trips(command: HqCommand) -> None:
    assert command_decoder.decode(msgspec.json.encode(command)) == command


def test_the_presence_command_of_earlier_hubs_still_decodes() -> None:
    old = b'{"action":"counter.presence","counter_id":"1","status":"available","actor":"ana"}'
    assert command_decoder.decode(old) == HqSetPresence(counter_id="1", status="available", actor="ana")


@pytest.mark.parametrize(
    "body",
    [
        b'{"action":"ticket.delete","ticket_id":"t1","actor":"ana"}',
        b'{"action":"ticket.cancel","ticket_id":"t1","actor":"ana","force":true}',
        b'{"action":"counter.call_next","actor":"ana"}',
        b'{"counter_id":"1","actor":"ana"}',
    ],
)
def test_unknown_actions_fields_and_missing_ones_are_refused(body: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        command_decoder.decode(body)
