"""The topic grammar: build and parse are inverses for every kind; nothing outside the grammar parses."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.devices.mqtt import topics
from sync.contract import EVENT_TYPES

KINDS = [k for k in typing.get_args(topics.Kind) if k != "event"]
segments = st.from_regex(topics.SEGMENT_RE, fullmatch=True)
event_types = st.from_regex(topics.EVENT_TYPE_RE, fullmatch=True)


@given(kind=st.sampled_from(KINDS), branch=segments, subject=segments)
def test_build_and_parse_are_inverses(kind: topics.Kind, branch: str, subject: str) -> None:
    built = topics.build(kind, branch, subject)
    assert topics.parse(built) == topics.Topic(kind, branch, subject)
    assert str(topics.parse(built)) == built


@given(branch=segments, event_type=event_types)
def test_event_topics_round_trip(branch: str, event_type: str) -> None:
    built = topics.event(branch, event_type)
    assert topics.parse(built) == topics.Topic("event", branch, event_type)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_has_a_topic(event_type: str) -> None:
    assert topics.parse(topics.event("b1", event_type)).subject == event_type


@given(kind=st.sampled_from(KINDS), branch=segments, bad=st.sampled_from(["", "+", "#", "a/b", "$SYS", "a b", "-x"]))
def test_ids_that_are_not_one_segment_are_refused(kind: topics.Kind, branch: str, bad: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.build(kind, branch, bad)
    with pytest.raises(topics.TopicError):
        topics.build(kind, bad, branch)


@given(st.text(max_size=80))
def test_parse_is_total(text: str) -> None:
    """Any string either parses to a Topic that rebuilds to itself or raises TopicError (never anything else)."""
    try:
        parsed = topics.parse(text)
    except topics.TopicError:
        return
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("topic", "kind", "subject"),
    [
        ("qms/jkt-sudirman/counter/1/state", "counter_state", "1"),
        ("qms/jkt-sudirman/counter/1/cmd", "counter_cmd", "1"),
        ("qms/jkt-sudirman/display/lantai-1/state", "display_state", "lantai-1"),
        ("qms/jkt-sudirman/audio/lantai-1/announce", "audio_announce", "lantai-1"),
        ("qms/jkt-sudirman/device/btn-1/status", "device_status", "btn-1"),
        ("qms/jkt-sudirman/device/btn-1/reply", "device_reply", "btn-1"),
        ("qms/jkt-sudirman/event/ticket.called", "event", "ticket.called"),
    ],
)
def test_the_documented_topics(topic: str, kind: str, subject: str) -> None:
    assert topics.parse(topic) == topics.Topic(kind, "jkt-sudirman", subject)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    ["qms/b/counter/1", "qms/b/counter/1/state/x", "qms/b/display/1/cmd", "qms/b/event/ticket", "x/b/counter/1/state",
     "qms/b/event/ticket.called/x", "qms/+/counter/1/state", "qms/b/counter/#"],
)  # fmt: skip
def test_foreign_topics_do_not_parse(topic: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.parse(topic)


def test_filters() -> None:
    assert topics.all_of("b", "counter_cmd") == "qms/b/counter/+/cmd"
    assert topics.all_of("b", "event") == "qms/b/event/+"
    assert topics.branch_filter("b") == "qms/b/#"
