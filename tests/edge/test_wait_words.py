"""The one rule for saying a wait: never "~0 min"; the first in line is next; the printed ticket says the same."""

from __future__ import annotations

import pytest

from edge.devices.printer.layout import Text, TicketPrint, ticket_layout
from edge.wait_words import wait_text


@pytest.mark.parametrize(
    ("seconds", "position", "lang", "said"),
    [
        (0, 1, "en", "Next"),
        (0, 1, "id", "Berikutnya"),
        (0, 2, "en", "< 1 min"),
        (45, 4, "id", "< 1 menit"),
        (60, 3, "en", "about 1 min"),
        (89, 3, "en", "about 1 min"),
        (90, 3, "id", "sekitar 2 menit"),
        (1800, 9, "en", "about 30 min"),
        (None, 1, "en", None),  # unknown (no counter open): not said at all
        (30, None, "xx", "< 1 menit"),  # an unknown language reads Indonesian, like the rest of the kiosk
    ],
)
def test_a_wait_is_said_honestly(seconds: int | None, position: int | None, lang: str, said: str | None) -> None:
    assert wait_text(seconds, lang, position) == said


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_the_printed_ticket_never_says_zero_minutes(position: int) -> None:
    ticket = TicketPrint(branch_name="Bank Demo", ticket_number="A001", service_name="Teller", lang="en",
                         issued_at="24/11/2026 09:05", status_url="http://x/t/y", position=position,
                         eta_seconds=0)  # fmt: skip
    lines = [b.text for b in ticket_layout(ticket, 58) if isinstance(b, Text)]
    wait = next(line for line in lines if line.startswith("Estimated wait"))
    assert "~0" not in wait
    assert wait.endswith("Next" if position == 1 else "< 1 min")
