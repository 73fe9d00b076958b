"""Rendering staff pages: the common template context (translator, session, branch clock) and error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.response import Template

from edge.engine.errors import DomainError
from edge.web.deps import appliance
from edge.web.staff.boards import service_name, zone
from edge.web.staff.i18n import LANGUAGES, Translator, pick_language
from edge.web.staff.session import LANG_COOKIE, Staff

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"

# Engine refusal codes -> what the agent reads (msgids translated by the catalog).
MESSAGES = {
    "invalid_state": "This ticket changed meanwhile (it is now %(status)s). The screen is up to date; try again.",
    "conflict": "Someone else changed this meanwhile. The screen is up to date; try again.",
    "counter_busy": "Finish the current ticket first.",
    "counter_unavailable": "This counter is on break or closed. Set it Available to call tickets.",
    "wrong_counter": "This ticket is at another counter.",
    "counter_not_compatible": "That counter does not serve this ticket's service.",
    "transfer_target_missing": "Choose a target service or counter for the transfer.",
    "transfer_to_same": "The ticket is already there.",
    "cancel_not_allowed": "This service does not allow cancelling a ticket being served.",
    "not_found": "This ticket no longer exists.",
    "service_inactive": "That service is not active.",
    "version_conflict": "Someone else changed the configuration meanwhile. Your form shows the current version; "
    "apply your change again.",
    "invalid_config": "The configuration is not valid.",
    "empty": "No tickets waiting. The queue is clear.",
    "no_compatible": "Tickets are waiting, but none this counter may take.",
}
# Refusals worth sending again unchanged. A state conflict is not: the screen refreshes and the agent chooses anew.
# Transient failures (no answer, 5xx, 429) get a Retry in the page's script, re-sent with the same request id.
RETRYABLE: frozenset[str] = frozenset()


def language(request: Request[Any, Any, Any]) -> str:
    """The page language of the request."""
    return pick_language(request.cookies.get(LANG_COOKIE))


def translator(request: Request[Any, Any, Any]) -> Translator:
    """The translator of the request's language."""
    return Translator(language(request))


def error_message(request: Request[Any, Any, Any], exc: DomainError) -> str:
    """A domain refusal in the page language."""
    _ = translator(request)
    msgid = MESSAGES.get(exc.code)
    if msgid is None:
        return exc.detail
    status = exc.extra.get("ticket_status", "")
    return _(msgid, status=_(str(status))) if "%(status)s" in msgid else _(msgid)


def outcome_name(_: Translator, code: str) -> str:
    """An outcome code as people read it: the catalog's words, else the code made readable (`account_opening`)."""
    text = _(code)
    return text if text != code else code.replace("_", " ").replace("-", " ").capitalize()


def duration(seconds: float | None) -> str:
    """`12:05` (m:ss) or `1:02:05` for a wait or a serving time."""
    if seconds is None:
        return "\u2013"  # en dash: "no value"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(
    request: Request[Any, Any, Any], name: str, staff: Staff | None, status_code: int = 200, **context: Any
) -> Template:
    """A staff template with the common context."""
    app = appliance(request)
    view = app.service.view
    tz = zone(view)
    lang = language(request)
    config = view.state.config

    def local(value: datetime | None, fmt: str = "%H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value else "\u2013"

    def service_label(service_id: str | None) -> str:
        """A service's name in the page language (its id only if it is no longer configured)."""
        return service_name(config.service(service_id) if config and service_id else None, lang, service_id or "")

    base = {
        "_": Translator(lang),
        "lang": lang,
        "languages": LANGUAGES,
        "staff": staff,
        "csrf": staff.csrf if staff else "",
        "branch_name": config.name if config else view.state.branch_id,
        "timezone": str(tz),
        "now": datetime.now(UTC),
        "local": local,
        "duration": duration,
        "service_label": service_label,
        "area_name": lambda area_id: (
            next((a.name for a in config.areas if a.id == area_id), area_id) if config and area_id else "\u2013"
        ),
        "outcome_name": lambda code: outcome_name(Translator(lang), code),
        "path": request.url.path,
        "query": request.url.query,
    }
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    }
    return Template(template_name=name, context={**base, **context}, status_code=status_code, headers=headers)
