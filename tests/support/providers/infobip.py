"""Infobip SMS API stand-in: checks `POST /sms/2/text/advanced` (`Authorization: App <key>`, the messages/destinations
JSON), answers like Infobip (200 with a per-message status group, or `requestError.serviceException`), and posts
delivery reports (`{"results": [...]}`) to each message's `notifyUrl`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.providers.stand_in import Answer, Recorded, StandIn

_GROUPS = {"DELIVERED": (3, 5, "DELIVERED_TO_HANDSET"), "UNDELIVERABLE": (2, 9, "UNDELIVERABLE_NOT_DELIVERED"),
           "EXPIRED": (4, 15, "EXPIRED_EXPIRED"), "PENDING": (1, 7, "PENDING_ENROUTE")}  # fmt: skip


def _service_error(status: int, message_id: str, text: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"requestError": {"serviceException": {"messageId": message_id, "text": text}}}
    return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


class InfobipStandIn(StandIn):
    """One Infobip account (`api_key`)."""

    def __init__(self, api_key: str = "infobip-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.sent: list[dict[str, Any]] = []  # accepted messages (with their destination)

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Validate like Infobip, then answer per the behaviour."""
        if request.headers.get("authorization") != f"App {self.api_key}":
            return _service_error(401, "UNAUTHORIZED", "Invalid login details")
        try:
            messages = json.loads(request.body)["messages"]
            message = messages[0]
            destination = message["destinations"][0]
            assert isinstance(destination["to"], str)
            assert isinstance(message["text"], str)
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            return _service_error(400, "BAD_REQUEST", "Bad request")
        if kind == "429":
            return _service_error(429, "TOO_MANY_REQUESTS", "Too many requests", {"Retry-After": self.retry_after})
        if kind == "500":
            return _service_error(500, "GENERAL_ERROR", "Something went wrong")
        message_id = destination.get("messageId") or "ib-generated-id"
        if kind == "permanent":  # a 200 whose message is rejected (unknown destination)
            status = {"groupId": 5, "groupName": "REJECTED", "id": 51, "name": "REJECTED_DESTINATION",
                      "description": "Invalid destination address"}  # fmt: skip
        else:
            status = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
                      "description": "Message sent to next instance"}  # fmt: skip
            self.sent.append({**message, "messageId": message_id, "to": destination["to"]})
        body = {"bulkId": "bulk-1", "messages": [{"messageId": message_id, "status": status,
                                                   "destination": destination["to"]}]}  # fmt: skip
        return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def report(self, message_id: str, group: str, tamper: bool = False) -> httpx.Response:
        """POST a delivery report for an accepted message to its notifyUrl (tampered: another message's id)."""
        message = next(m for m in self.sent if m["messageId"] == message_id)
        group_id, status_id, name = _GROUPS[group]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        error = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error",
                 "permanent": False} if group != "UNDELIVERABLE" else {
                 "groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER",
                 "description": "Absent Subscriber", "permanent": False}  # fmt: skip
        result = {"bulkId": "bulk-1", "messageId": "someone-else" if tamper else message_id, "to": message["to"],
                  "sentAt": now, "doneAt": now, "smsCount": 1, "mccMnc": "51010",
                  "price": {"pricePerMessage": 0.01, "currency": "EUR"},
                  "status": {"groupId": group_id, "groupName": group, "id": status_id, "name": name,
                             "description": name.replace("_", " ").title()},
                  "error": error}  # fmt: skip
        return httpx.post(message["notifyUrl"], json={"results": [result]})
