"""The wire contract under Hypothesis: events round-trip, the canonical encoding is stable, config parsing is total."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.demo import demo_config
from sync.contract import (
    EVENT_TYPES,
    TicketCalled,
    TicketCreated,
    TicketTransferred,
    canonical_bytes,
    chain_hash,
    event_decoder,
    event_encoder,
)
from sync.contract_config import BranchConfig, config_decoder, structural_errors

texts = st.text(min_size=1, max_size=20)
maybe_text = st.none() | texts
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
envelope = {
    "event_id": texts,
    "occurred_at": instants,
    "actor": texts,
    "request_id": maybe_text,
    "ticket_id": maybe_text,
    "branch_id": st.text(max_size=10),
    "seq": st.integers(0, 2**53),
    "prev_hash": st.text(max_size=64),
}
events = st.one_of(
    st.builds(
        TicketCreated,
        **envelope,
        service_id=texts,
        ticket_number=texts,
        seq_no=st.integers(1, 10**6),
        business_date=st.just("2026-11-24"),
        order=st.integers(0, 10**9),
        priority=st.integers(0, 9),
        phone=maybe_text,
        appointment_at=st.none() | instants,
    ),
    st.builds(TicketCalled, **envelope, service_id=texts, counter_id=texts, no_show_deadline=st.none() | instants),
    st.builds(
        TicketTransferred,
        **envelope,
        from_service=texts,
        to_service=texts,
        service_id=texts,
        order=st.integers(0, 10**9),
        from_status=st.sampled_from(["waiting", "called", "serving", "held"]),
        to_counter=maybe_text,
        reason=maybe_text,
    ),
)


@given(events)
def test_events_round_trip_through_json(event: Any) -> None:
    wire = event_encoder.encode(event)
    assert event_decoder.decode(wire) == event
    assert json.loads(wire)["type"] in EVENT_TYPES


@given(events)
def test_canonical_encoding_is_sorted_ignores_hash_and_changes_with_content(event: Any) -> None:
    body = canonical_bytes(event)
    assert body == canonical_bytes(msgspec.structs.replace(event, hash="something else"))
    keys = list(json.loads(body))
    assert keys == sorted(keys)
    changed = msgspec.structs.replace(event, actor=event.actor + "x")
    assert chain_hash("p", canonical_bytes(changed)) != chain_hash("p", body)
    assert chain_hash("p", body) != chain_hash("q", body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
base_doc = msgspec.to_builtins(demo_config())


@settings(max_examples=300)
@given(st.sampled_from(sorted(base_doc)), json_values)
def test_config_decoding_is_total(key: str, value: Any) -> None:
    """Any mutation of a valid document either decodes (and cross-checks without crashing) or is refused cleanly."""
    doc = {**base_doc, key: value}
    try:
        config = config_decoder.decode(json.dumps(doc).encode())
    except msgspec.ValidationError:
        return
    assert isinstance(config, BranchConfig)
    assert isinstance(structural_errors(config), list)


@given(st.binary(max_size=200))
def test_config_decoding_of_garbage_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(msgspec.DecodeError):  # ValidationError is a DecodeError
        config_decoder.decode(raw)


def test_demo_config_is_valid() -> None:
    assert structural_errors(demo_config()) == []
