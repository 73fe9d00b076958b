"""The customer's answer to "notify me?" travels with the ticket: `POST /api/v1/tickets` takes `notify_opt_in` and the
`ticket.created` event carries it (absent when not asked), for the hub's notification policy (issue 12)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.edge.web.conftest import Api
from tests.support.appliance import event_rows


def test_opt_in_is_recorded_with_the_ticket(api: Api, data_dir: Path) -> None:
    declined = api.post("/tickets", {"service_id": "teller", "phone": "081234567890", "notify_opt_in": False})
    assert declined.status_code == 201, declined.text
    agreed = api.post("/tickets", {"service_id": "teller", "email": "a@example.com", "notify_opt_in": True})
    silent = api.post("/tickets", {"service_id": "teller"})
    assert api.post("/tickets", {"service_id": "teller", "notify_opt_in": "yes"}).status_code == 400
    created = {
        body["ticket_id"]: body.get("notify_opt_in")
        for body in (msgspec.json.decode(row[4]) for row in event_rows(data_dir))
        if body["type"] == "ticket.created"
    }
    assert created[declined.json()["ticket_id"]] is False
    assert created[agreed.json()["ticket_id"]] is True
    assert created[silent.json()["ticket_id"]] is None
