"""Translations of the staff pages: gettext-style catalogs (English msgid -> text) as JSON, one file per language."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOGS = Path(__file__).resolve().parent.parent / "i18n"
LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


@cache
def catalog(lang: str) -> dict[str, str]:
    """The msgid -> translation map of a language (English msgids stand for themselves; en.json labels codes)."""
    path = CATALOGS / f"{lang}.json"
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


class Translator:
    """`_("Call next")` in a template; `%(name)s` placeholders are filled from keyword arguments."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self._catalog = catalog(self.lang)

    def __call__(self, msgid: str, **values: Any) -> str:
        """The translation of msgid (msgid itself when missing), with placeholders filled."""
        text = self._catalog.get(msgid) or msgid
        return text % values if values else text


# Codes shown through `_(code)`: ticket statuses, presences, roles, policies and audit actions.
DYNAMIC_MSGIDS = (
    "waiting",
    "called",
    "serving",
    "held",
    "done",
    "cancelled",
    "no_show",
    "return",
    "available",
    "busy",
    "break",
    "closed",
    "admin",
    "supervisor",
    "agent",
    "login",
    "login_failed",
    "logout",
    "call_next",
    "call",
    "recall",
    "start",
    "complete",
    "hold",
    "unhold",
    "transfer",
    "cancel",
    "presence",
    "close_counter",
    "set_presence",
    "reassign",
    "force_transfer",
    "config_service",
    "config_counter",
    "config_area",
    "config_branch",
    "user_create",
    "user_update",
    # confirmations of staff actions (edge.web.staff.feedback)
    "%(n)s called to %(counter)s",
    "%(n)s recalled",
    "%(n)s: serving started",
    "%(n)s completed",
    "%(n)s marked no-show",
    "%(n)s on hold",
    "%(n)s back in the queue",
    "%(n)s transferred to %(target)s",
    "%(n)s reassigned to %(target)s",
    "%(n)s cancelled",
    "%(counter)s is now %(status)s",
    "%(counter)s set to %(status)s by supervisor",
    "%(counter)s closed by supervisor",
    "%(service)s at %(counter)s",
    # the audit viewer's labels (edge.web.staff.audit_view) and presence reasons (edge.web.staff.presence)
    "ticket_label",
    "counter_label",
    "based on version",
    "service_label",
    "area_label",
    "to_service",
    "to_counter",
    "status",
    "outcome",
    "reason",
    "via",
    "staff_web",
    "desk_opened",
    "signed_out",
    "session_ended",
    "restart",
    # refused offline kiosk tickets (edge.web.staff.offline_refused): audit actions
    "offline_issue",
    "offline_dismiss",
)


def pick_language(cookie: str | None) -> str:
    """The language the staff member chose (cookie), else Indonesian: the branch's language, whatever the browser."""
    return str(cookie) if cookie in LANGUAGES else DEFAULT_LANGUAGE
