"""Names, not ids, on the desk: outcome codes and the service a ticket was transferred from (issue 11)."""

from __future__ import annotations

from typing import Any

from edge.web.staff.i18n import Translator, catalog
from edge.web.staff.render import outcome_name
from tests.edge.web.conftest import Api
from tests.edge.web.test_staff import Staff


def test_outcome_codes_read_as_words() -> None:
    assert outcome_name(Translator("id"), "deposit") == catalog("id")["deposit"]
    assert outcome_name(Translator("en"), "account_opening") == "Account opening"  # a code no catalog knows


def test_a_transferred_ticket_names_the_service_it_came_from(client: Any, api: Api) -> None:
    ticket = api.enqueue("teller")
    teller = Staff(client)
    teller.login("agent1")
    teller.act("1", "call_next")
    moved = teller.act("1", "transfer", ticket_id=ticket["ticket_id"], to_service_id="cs", reason="account")
    assert moved.json()["message"] == f"{ticket['ticket_number']} dialihkan ke Layanan Nasabah"
    cs = Staff(client)
    cs.login("agent3")  # counter 4 serves cs
    cs.act("4", "call", ticket_id=ticket["ticket_id"])
    desk = cs.client.get("/staff/counter/4").text
    assert "Dialihkan dari" in desk
    assert "<dd>Teller — account</dd>" in desk
