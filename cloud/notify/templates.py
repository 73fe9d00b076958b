"""Message templates (US-NOTIF-001): per tenant by trigger by channel by language (id, en; a missing language falls
back to English, then to the built-in default), rendered in Jinja2's sandbox. A variable the template names but the
message does not have renders as a safe default and logs a warning: a customer gets a slightly plainer message, the
queue never stalls on a typo in a template."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import sqlalchemy as sa
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.engine import Connection

from cloud.notify.tables import templates
from cloud.store import utcnow_iso

log = logging.getLogger("qms.notify.templates")

VARIABLES = ("ticket_number", "branch_name", "service_name", "counter_name", "people_ahead", "eta_minutes",
             "status_url", "threshold")  # fmt: skip
SAMPLE = {"ticket_number": "A012", "branch_name": "Cabang Sudirman", "service_name": "Teller",
          "counter_name": "Loket 3", "people_ahead": 3, "eta_minutes": 9,
          "status_url": "https://antrean.example/t/abc", "threshold": 3}  # fmt: skip


@dataclass(frozen=True)
class Wording:
    """One template: subject (e-mail, push title), body, and the approved WhatsApp template's name."""

    body: str
    subject: str | None = None
    wa_template: str | None = None


_ID = {
    "ticket.created": ("Nomor antrean {{ ticket_number }} — {{ branch_name }}",
                       "Nomor antrean Anda {{ ticket_number }} untuk {{ service_name }} di {{ branch_name }}. "
                       "Di depan Anda: {{ people_ahead }} orang (sekitar {{ eta_minutes }} menit). {{ status_url }}"),
    "ticket.to_go": ("{{ people_ahead }} antrean lagi — {{ ticket_number }}",
                     "Tinggal {{ people_ahead }} antrean lagi sebelum nomor {{ ticket_number }} ({{ service_name }}, "
                     "{{ branch_name }}). Mohon bersiap. {{ status_url }}"),
    "ticket.called": ("Nomor {{ ticket_number }} dipanggil",
                      "Nomor {{ ticket_number }} dipanggil. Silakan menuju {{ counter_name }} ({{ service_name }}, "
                      "{{ branch_name }})."),
    "ticket.recalled": ("Panggilan ulang {{ ticket_number }}",
                        "Panggilan ulang: nomor {{ ticket_number }}, silakan segera menuju {{ counter_name }} "
                        "({{ branch_name }})."),
}  # fmt: skip
_EN = {
    "ticket.created": ("Queue number {{ ticket_number }} — {{ branch_name }}",
                       "Your queue number is {{ ticket_number }} for {{ service_name }} at {{ branch_name }}. "
                       "{{ people_ahead }} people ahead of you (about {{ eta_minutes }} min). {{ status_url }}"),
    "ticket.to_go": ("{{ people_ahead }} to go — {{ ticket_number }}",
                     "{{ people_ahead }} more before number {{ ticket_number }} ({{ service_name }}, "
                     "{{ branch_name }}). Please get ready. {{ status_url }}"),
    "ticket.called": ("Number {{ ticket_number }} is called",
                      "Number {{ ticket_number }} is called. Please go to {{ counter_name }} ({{ service_name }}, "
                      "{{ branch_name }})."),
    "ticket.recalled": ("Second call for {{ ticket_number }}",
                        "Second call: number {{ ticket_number }}, please go to {{ counter_name }} now "
                        "({{ branch_name }})."),
}  # fmt: skip
_WA_NAMES = {"ticket.created": "antrean_dibuat", "ticket.to_go": "antrean_hampir", "ticket.called": "antrean_dipanggil",
             "ticket.recalled": "antrean_dipanggil_ulang"}  # fmt: skip
DEFAULTS: dict[str, dict[str, tuple[str, str]]] = {"id": _ID, "en": _EN}


class _SafeUndefined(jinja2.Undefined):
    """A missing variable: logged once per render, shown as an empty string (never the template's raw name)."""

    def __str__(self) -> str:
        log.warning("notification template names an unknown variable %r: rendered empty", self._undefined_name)
        return ""

    def __iter__(self) -> Any:
        return iter(())

    def __bool__(self) -> bool:
        return False


_text_env = SandboxedEnvironment(undefined=_SafeUndefined, autoescape=False)
_html_env = SandboxedEnvironment(undefined=_SafeUndefined, autoescape=True)
_HTML_PAGE = _html_env.from_string(
    '<!doctype html><html lang="{{ lang }}"><body style="font-family:sans-serif">'
    '<p>{{ body }}</p>{% if status_url %}<p><a href="{{ status_url }}">{{ status_url }}</a></p>{% endif %}'
    "</body></html>"
)


class TemplateInvalid(ValueError):
    """A template that does not parse (the editor says where; the dispatcher falls back to the default)."""


def default_wording(trigger: str, channel: str, lang: str) -> Wording:
    """The built-in wording (Indonesian or English; English for an unknown language)."""
    subject, body = DEFAULTS.get(lang, _EN)[trigger]
    wa_name = _WA_NAMES[trigger] if channel == "whatsapp" else None
    return Wording(body=body, subject=subject if channel in ("email", "push") else None, wa_template=wa_name)


def check(source: str) -> None:
    """Raise TemplateInvalid when `source` does not parse in the sandbox, or holds a control character (PostgreSQL
    refuses NUL in text; none belongs in a message)."""
    if any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in source):  # noqa: PLR2004 - below space
        raise TemplateInvalid("a control character is not allowed in a template")
    try:
        _text_env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateInvalid(f"line {exc.lineno}: {exc.message}") from None


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> jinja2.Template:
    """A wording compiled once: compiling costs ~5 ms on a busy Pi-class box, rendering ~0.05 ms, and the dispatcher
    renders the same few wordings for every message (the profile of `make bench` was mostly this)."""
    return _text_env.from_string(source)


def render_text(source: str, variables: Mapping[str, Any]) -> str:
    """A template rendered as plain text; a broken template or a sandbox refusal renders as empty + a warning."""
    try:
        return " ".join(_compiled(source).render(**variables).split())
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        log.warning("notification template failed to render (%s): using an empty text", type(exc).__name__)
        return ""


def render_html(text: str, variables: Mapping[str, Any], lang: str) -> str:
    """The HTML alternative of an e-mail: the rendered text, escaped, with the status link clickable."""
    return _HTML_PAGE.render(body=text, status_url=variables.get("status_url") or "", lang=lang)


@dataclass(frozen=True)
class Rendered:
    """A message ready for a provider."""

    text: str
    subject: str | None
    html: str | None
    wa_template: str | None
    wa_parameters: tuple[str, ...]
    lang: str


def lookup(conn: Connection, tenant: str, trigger: str, channel: str, lang: str) -> tuple[Wording, str]:
    """The tenant's wording for (trigger, channel) in `lang`, else English, else the built-in default in `lang`
    (returned with the language actually used)."""
    for candidate in dict.fromkeys((lang, "en")):
        row = conn.execute(
            sa.select(templates.c.subject, templates.c.body, templates.c.wa_template).where(
                templates.c.tenant_id == tenant, templates.c.trigger == trigger, templates.c.channel == channel,
                templates.c.lang == candidate,
            )
        ).one_or_none()  # fmt: skip
        if row is not None:
            default = default_wording(trigger, channel, candidate)
            return Wording(row.body, row.subject or default.subject, row.wa_template or default.wa_template), candidate
    used = lang if lang in DEFAULTS else "en"
    return default_wording(trigger, channel, used), used


def render(wording: Wording, channel: str, lang: str, variables: Mapping[str, Any]) -> Rendered:
    """Render a wording for a channel: text always, subject for e-mail/push, HTML for e-mail, and for WhatsApp the
    approved template's body parameters (the variables in the order the default template names them)."""
    text = render_text(wording.body, variables)
    subject = render_text(wording.subject, variables) if wording.subject else None
    html = render_html(text, variables, lang) if channel == "email" else None
    params: tuple[str, ...] = ()
    if channel == "whatsapp":
        params = tuple(str(variables.get(v, "")) for v in ("ticket_number", "counter_name", "service_name",
                                                           "branch_name", "people_ahead"))  # fmt: skip
    return Rendered(text, subject, html, wording.wa_template, params, lang)


def save(conn: Connection, tenant: str, trigger: str, channel: str, lang: str, wording: Wording) -> None:
    """Store a tenant's wording (checked first: a template that does not parse is refused)."""
    check(wording.body)
    if wording.subject:
        check(wording.subject)
    key = (templates.c.tenant_id == tenant, templates.c.trigger == trigger, templates.c.channel == channel,
           templates.c.lang == lang)  # fmt: skip
    values = {"subject": wording.subject, "body": wording.body, "wa_template": wording.wa_template,
              "updated_at": utcnow_iso()}  # fmt: skip
    if not conn.execute(sa.update(templates).where(*key).values(**values)).rowcount:
        conn.execute(templates.insert().values(tenant_id=tenant, trigger=trigger, channel=channel, lang=lang, **values))


def delete(conn: Connection, tenant: str, trigger: str, channel: str, lang: str) -> None:
    """Back to the default wording."""
    conn.execute(
        sa.delete(templates).where(
            templates.c.tenant_id == tenant, templates.c.trigger == trigger, templates.c.channel == channel,
            templates.c.lang == lang,
        )
    )  # fmt: skip
