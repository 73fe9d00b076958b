"""The one MQTT topic grammar: `qms/<branch>/<kind>/<id>/<leaf>` and `qms/<branch>/event/<type>`, built and parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROOT = "qms"
Kind = Literal[
    "counter_state", "counter_cmd", "display_state", "audio_announce", "device_status", "device_reply", "event"
]

# Ids are path segments: no MQTT wildcards, no separator, no leading `$`, not empty.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
SEGMENT_RE = re.compile(rf"^{_SEGMENT}$")
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")

# kind -> (middle segment, leaf); `event` is the one topic without a leaf.
_LAYOUT: dict[str, tuple[str, str]] = {
    "counter_state": ("counter", "state"),
    "counter_cmd": ("counter", "cmd"),
    "display_state": ("display", "state"),
    "audio_announce": ("audio", "announce"),
    "device_status": ("device", "status"),
    "device_reply": ("device", "reply"),
}
_BY_PATH = {v: k for k, v in _LAYOUT.items()}
_TOPIC_RE = re.compile(rf"^{ROOT}/(?P<branch>{_SEGMENT})/(?P<mid>[a-z]+)/(?P<id>{_SEGMENT})(?:/(?P<leaf>[a-z]+))?$")


class TopicError(ValueError):
    """A topic or id that does not fit the grammar."""


@dataclass(frozen=True)
class Topic:
    """A parsed topic: which kind, for which branch, about which counter/area/device/event type."""

    kind: Kind
    branch: str
    subject: str

    def __str__(self) -> str:
        """The topic string (the inverse of `parse`)."""
        return build(self.kind, self.branch, self.subject)


def _check(value: str, what: str) -> str:
    if not SEGMENT_RE.match(value):
        raise TopicError(f"{what} {value!r} cannot be an MQTT topic segment")
    return value


def build(kind: Kind, branch: str, subject: str) -> str:
    """The topic for one kind, branch and subject (counter id, area id, device id or event type)."""
    _check(branch, "branch")
    if kind == "event":
        if not EVENT_TYPE_RE.match(subject):
            raise TopicError(f"event type {subject!r} is not `noun.verb`")
        return f"{ROOT}/{branch}/event/{subject}"
    mid, leaf = _LAYOUT[kind]
    return f"{ROOT}/{branch}/{mid}/{_check(subject, mid)}/{leaf}"


def parse(topic: str) -> Topic:
    """The parsed form of a topic; raises TopicError for anything outside the grammar."""
    match = _TOPIC_RE.match(topic)
    if match is None:
        raise TopicError(f"not a QMS topic: {topic!r}")
    branch, mid, subject, leaf = match["branch"], match["mid"], match["id"], match["leaf"]
    if mid == "event" and leaf is None and EVENT_TYPE_RE.match(subject):
        return Topic("event", branch, subject)
    kind = _BY_PATH.get((mid, leaf or ""))
    if kind is None:
        raise TopicError(f"not a QMS topic: {topic!r}")
    return Topic(kind, branch, subject)  # type: ignore[arg-type]


def counter_state(branch: str, counter_id: str) -> str:
    """Retained state of one counter (its ticket and presence)."""
    return build("counter_state", branch, counter_id)


def counter_cmd(branch: str, counter_id: str) -> str:
    """Commands from a counter's call buttons (device -> edge)."""
    return build("counter_cmd", branch, counter_id)


def display_state(branch: str, area: str) -> str:
    """Retained state of an area's display boards (now calling, recent calls)."""
    return build("display_state", branch, area)


def audio_announce(branch: str, area: str) -> str:
    """Announcements for an area's speakers."""
    return build("audio_announce", branch, area)


def device_status(branch: str, device_id: str) -> str:
    """A device's presence: retained `online`, Last Will `offline`."""
    return build("device_status", branch, device_id)


def device_reply(branch: str, device_id: str) -> str:
    """Answers to a device's commands (errors and results)."""
    return build("device_reply", branch, device_id)


def event(branch: str, event_type: str) -> str:
    """Every committed event of one type."""
    return build("event", branch, event_type)


def all_of(branch: str, kind: Kind) -> str:
    """The subscription filter for one kind across all subjects (`+` for the id)."""
    _check(branch, "branch")
    if kind == "event":
        return f"{ROOT}/{branch}/event/+"
    mid, leaf = _LAYOUT[kind]
    return f"{ROOT}/{branch}/{mid}/+/{leaf}"


def branch_filter(branch: str) -> str:
    """Everything of one branch (the appliance's own ACL)."""
    return f"{ROOT}/{_check(branch, 'branch')}/#"
