"""What the notify area's status-page answers carry (its refusals are the hub's: `cloud.web.problems.refusal`)."""

from __future__ import annotations

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the status page's answers: never stored
