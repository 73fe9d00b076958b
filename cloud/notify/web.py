"""The notify area's routes and background work. `cloud.web.app` mounts `ROUTES` and enters `lifespan(app)`, which
runs the dispatcher.

* Provider webhooks `POST|GET /api/v1/notify/webhooks/{provider}/{tenant}`: public (the provider's signature, checked
  by the provider module's `parse_webhook`, is the credential); a bad signature or body is 400 problem+json.
* The console, pages (`/notify/...`, id/en) and their JSON twins (`/api/v1/notify/...`): `notify.read` to look,
  `notify.manage` to change; every query limited to the caller's tenants and branches (another tenant's is 404).
  Provider secrets are write-only: shown as "••••", kept when a form sends them back empty or masked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Litestar, Request, delete, get, post, put
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, Template
from sqlalchemy.engine import Engine

from cloud.admin.audit import record as audit
from cloud.admin.words import COOKIE, pick_lang
from cloud.appointments import outbox as booking_outbox
from cloud.identity.permissions import requires
from cloud.notify import console, outbox, policy, push_web, reports, templates
from cloud.notify.dispatcher import Dispatcher, app_dispatcher
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import CHANNELS, DeliveryUpdate, InvalidWebhook, WebhookRequest, secret_fields
from cloud.notify.segments import segment_count
from cloud.store import writer_turn
from cloud.web.console_auth import HqPrincipal
from cloud.web.problems import refusal
from sync.observability import current_correlation_id

log = logging.getLogger("qms.notify.web")
MAX_BODY = 64 * 1024


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
    """The dispatcher runs with the app (every replica; the database shares the rows out)."""
    dispatcher = Dispatcher(app.state["engine"], app.state.get("keys_dir"))
    dispatcher.start()
    app.state["notify_dispatcher"] = dispatcher
    try:
        yield
    finally:
        await dispatcher.stop()


# --- helpers -----------------------------------------------------------------------------------------------------


def _engine(request: Request[Any, Any, Any]) -> Engine:
    engine: Engine = request.app.state["engine"]
    return engine


def _user(request: Request[Any, Any, Any]) -> HqPrincipal:
    user: HqPrincipal = request.scope["user"]
    return user


def _lang(request: Request[Any, Any, Any]) -> str:
    return pick_lang(request.query_params.get("lang"), request.cookies.get(COOKIE))


def _bad(detail: str, code: str = "invalid_body") -> ProblemDetailsException:
    """A 400 problem+json with a stable `code`."""
    return refusal(400, code, detail)


def _tenant(request: Request[Any, Any, Any], given: str | None = None) -> str:
    """The tenant the call is about: `?tenant=` (or the caller's only tenant); one it may not see is 404."""
    user = _user(request)
    tenant = given or request.query_params.get("tenant")
    if not tenant and user.tenants is not None and len(user.tenants) == 1:
        tenant = next(iter(user.tenants))
    if not tenant:
        raise _bad("name the tenant: ?tenant=<id>", "tenant_required")
    if not user.sees_tenant(tenant):
        raise NotFoundException()
    return tenant


def _sees(request: Request[Any, Any, Any]) -> Any:
    user = _user(request)
    return user.sees_branch


def _decode(body: bytes, kind: type[Any]) -> Any:
    """The JSON body as `kind`, or 400 problem+json naming what is wrong (never echoing secrets)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _bad(f"invalid body: {exc}") from None


def _audit(conn: Any, request: Request[Any, Any, Any], action: str, tenant: str, target: str | None = None,
           before: Any = None, after: Any = None) -> None:  # fmt: skip
    """One hub audit entry in the change's own transaction (secrets masked before they get here)."""
    audit(conn, actor=_user(request).username or "?", action=action, tenant=tenant, target=target,
          source_ip=request.client.host if request.client else None, before=before, after=after,
          correlation_id=current_correlation_id() or None)  # fmt: skip


def _page(request: Request[Any, Any, Any], name: str, **values: Any) -> Template:
    lang = _lang(request)
    return Template(
        template_name=f"notify/{name}",
        context={"request": request, "lang": lang, "w": console.words(lang), "active": "notify", **values},
    )


# --- provider webhooks (public: the signature is the credential) ------------------------------------------------


def _provider_settings(engine: Engine, provider: str, tenant: str) -> dict[str, Any]:
    """The tenant's settings of the channel that uses `provider` (404 when none does)."""
    if provider not in REGISTRY:
        raise NotFoundException()
    with engine.connect() as conn:
        for entry in policy.provider_settings(conn, tenant).values():
            if entry["provider"] == provider:
                found: dict[str, Any] = entry["settings"]
                return found
    raise NotFoundException()


def _public_url(request: Request[Any, Any, Any], settings: dict[str, Any]) -> str:
    """The URL the provider called (signatures cover it): the configured public `webhook_url` behind a proxy, with
    the query the request carried; else the URL as this hub saw it."""
    configured = str(settings.get("webhook_url") or "")
    query = request.url.query
    if not configured:
        return str(request.url)
    if query and "?" not in configured:
        return f"{configured}?{query}"
    return configured


def apply_reports(engine: Engine, tenant: str, provider: str, updates: Sequence[DeliveryUpdate], now: datetime) -> int:
    """Apply a webhook's verified reports in one transaction; rows changed. The same provider sends tickets' and
    bookings' messages, so a report matches a row of either outbox, or is parked until its send is recorded (the
    provider called back before that commit: `cloud.notify.reports`)."""
    with writer_turn(engine), engine.begin() as conn:
        reports.lock(conn, [(tenant, provider, u.provider_message_id) for u in updates])
        tickets = outbox.apply_deliveries(conn, tenant, provider, updates, now)
        bookings = booking_outbox.apply_deliveries(conn, tenant, provider, updates, now)
        reports.park_unmatched(conn, tenant, provider, updates, now)
        return tickets + bookings


@post("/api/v1/notify/webhooks/{provider:str}/{tenant:str}", request_max_body_size=MAX_BODY, status_code=200)
async def webhook(request: Request[Any, Any, Any], provider: FromPath[str], tenant: FromPath[str]) -> dict[str, int]:
    """A provider's delivery report: verified and parsed by the provider module, applied to the tenant's rows."""
    body = await request.body()
    settings = await asyncio.to_thread(_provider_settings, _engine(request), provider, tenant)
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = {k: str(v) for k, v in (await request.form()).items()}
    incoming = WebhookRequest(url=_public_url(request, settings), headers=dict(request.headers), body=body, form=form)
    try:
        updates = REGISTRY[provider].parse_webhook(incoming, settings)
    except InvalidWebhook as exc:
        log.warning("notify: refused a %s webhook for tenant %s: %s", provider, tenant, exc)
        raise _bad(str(exc), "invalid_webhook") from None

    changed = await asyncio.to_thread(apply_reports, _engine(request), tenant, provider, updates, datetime.now(UTC))
    if (dispatcher := app_dispatcher(request.app.state)) is not None:
        dispatcher.wake()  # a fallback may be owed now
    if (sender := request.app.state.get("appt_sender")) is not None:
        sender.wake()  # a booking message's fallback too
    return {"updates": len(updates), "applied": changed}


@get("/api/v1/notify/webhooks/{provider:str}/{tenant:str}", media_type="text/plain")
async def webhook_verify(request: Request[Any, Any, Any], provider: FromPath[str], tenant: FromPath[str]) -> str:
    """A provider's subscription handshake (WhatsApp's `hub.challenge`); 403 when it does not check out."""
    settings = await asyncio.to_thread(_provider_settings, _engine(request), provider, tenant)
    verify = getattr(REGISTRY[provider], "verify_subscription", None)
    if verify is None:
        raise NotFoundException()
    try:
        return str(verify(dict(request.query_params), settings))
    except InvalidWebhook:
        raise refusal(403, "verification_failed", "verification failed") from None


# --- settings and providers ---------------------------------------------------------------------------------------


def _settings_view(engine: Engine, tenant: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rules = policy.load(conn, tenant)
        configured = policy.provider_settings(conn, tenant)
    shown = {
        channel: {"provider": entry["provider"],
                  "settings": secret_fields(entry["settings"], tuple(getattr(REGISTRY.get(entry["provider"]),
                                                                              "SECRETS", ())))}
        for channel, entry in configured.items()
    }  # fmt: skip
    providers = {
        name: {"channel": module.CHANNEL, "secrets": list(module.SECRETS)} for name, module in REGISTRY.items()
    }
    return {"tenant": tenant, "policy": msgspec.to_builtins(rules), "channels": shown, "providers": providers}


@get("/api/v1/notify/settings", guards=[requires("notify.read")], sync_to_thread=True)
def settings_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The tenant's policy and providers (secrets masked)."""
    return _settings_view(_engine(request), _tenant(request))


# The settings each provider's form offers (the provider modules read them; secrets are the modules' SECRETS).
FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("host", "port", "security", "username", "password", "sender", "ca_file", "timeout"),
    "twilio": ("account_sid", "auth_token", "from_number", "messaging_service_sid", "webhook_url", "base_url"),
    "infobip": ("base_url", "api_key", "sender", "webhook_url", "webhook_secret"),
    "zenziva": ("userkey", "passkey", "base_url"),
    "whatsapp": ("phone_number_id", "access_token", "app_secret", "verify_token", "webhook_url", "base_url",
                 "api_version"),
    "webpush": ("vapid_subject", "ttl"),  # the VAPID pair is made on first use and kept
}  # fmt: skip


def _masked(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A channel's provider entry as the audit log may keep it: secrets masked."""
    if entry is None:
        return None
    secrets = tuple(getattr(REGISTRY.get(entry["provider"]), "SECRETS", ()))
    return {"provider": entry["provider"], "settings": secret_fields(entry["settings"], secrets)}


def _save_policy(request: Request[Any, Any, Any], tenant: str, rules: policy.TenantPolicy) -> None:
    with _engine(request).begin() as conn:
        before = msgspec.to_builtins(policy.load(conn, tenant))
        policy.save(conn, tenant, rules)
        _audit(conn, request, "notify.policy", tenant, before=before, after=msgspec.to_builtins(rules))


def _save_provider(request: Request[Any, Any, Any], tenant: str, channel: str, choice: ProviderChoice) -> None:
    """Store a channel's provider (400 when it does not send on that channel) and audit it, secrets masked."""
    module = REGISTRY.get(choice.provider)
    if channel not in CHANNELS or module is None or channel != module.CHANNEL:
        raise _bad(f"provider {choice.provider!r} does not send on channel {channel!r}", "provider_not_for_channel")
    with _engine(request).begin() as conn:
        before = _masked(policy.provider_settings(conn, tenant).get(channel))
        policy.save_provider(conn, tenant, channel, choice.provider, dict(choice.settings), tuple(module.SECRETS))
        after = _masked(policy.provider_settings(conn, tenant).get(channel))
        _audit(conn, request, "notify.provider", tenant, target=channel, before=before, after=after)
    log.info("notify: tenant %s now sends %s through %s", tenant, channel, choice.provider)  # no settings logged


def _delete_provider(request: Request[Any, Any, Any], tenant: str, channel: str) -> None:
    with _engine(request).begin() as conn:
        before = _masked(policy.provider_settings(conn, tenant).get(channel))
        policy.delete_provider(conn, tenant, channel)
        if before is not None:
            _audit(conn, request, "notify.provider_delete", tenant, target=channel, before=before)


@put("/api/v1/notify/settings", guards=[requires("notify.manage")], request_max_body_size=MAX_BODY)
async def settings_save(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Replace the tenant's policy (on/off, channels, triggers, thresholds, fallback, retention); audited."""
    tenant = _tenant(request)
    rules = _decode(await request.body(), policy.TenantPolicy)

    def save() -> dict[str, Any]:
        _save_policy(request, tenant, rules)
        return _settings_view(_engine(request), tenant)

    return await asyncio.to_thread(save)


class ProviderChoice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A channel's provider and its settings (secret fields may be empty or "••••" to keep the stored ones)."""

    provider: str
    settings: dict[str, Any] = {}


@put("/api/v1/notify/providers/{channel:str}", guards=[requires("notify.manage")], request_max_body_size=MAX_BODY)
async def provider_save(request: Request[Any, Any, Any], channel: FromPath[str]) -> dict[str, Any]:
    """Set a channel's provider (switching provider is configuration only); audited, secrets masked."""
    tenant = _tenant(request)
    choice = _decode(await request.body(), ProviderChoice)

    def save() -> dict[str, Any]:
        _save_provider(request, tenant, channel, choice)
        return _settings_view(_engine(request), tenant)

    return await asyncio.to_thread(save)


@delete("/api/v1/notify/providers/{channel:str}", guards=[requires("notify.manage")], status_code=200)
async def provider_delete(request: Request[Any, Any, Any], channel: FromPath[str]) -> dict[str, Any]:
    """Stop using a channel; audited."""
    tenant = _tenant(request)

    def drop() -> dict[str, Any]:
        _delete_provider(request, tenant, channel)
        return _settings_view(_engine(request), tenant)

    return await asyncio.to_thread(drop)


def policy_from_form(form: dict[str, str], current: policy.TenantPolicy) -> policy.TenantPolicy:
    """The settings form as a policy: unticked boxes are off; empty numbers keep the current value; anything out of
    range is a 400 naming the field."""
    doc = msgspec.to_builtins(current)
    doc["enabled"] = "enabled" in form
    doc["channels"] = {c: f"channel.{c}" in form for c in CHANNELS}
    doc["triggers"] = {t: f"trigger.{t}" in form for t in policy.TRIGGERS}
    for name in ("to_go_threshold", "retention_days", "max_attempts"):
        if (value := form.get(name, "").strip()) != "":
            if not (value.isascii() and value.isdigit()):
                raise _bad(f"{name} must be a whole number", "invalid_settings")
            doc[name] = int(value)
    for name in ("whatsapp_fallback", "sms_fallback", "public_url"):
        if name in form:
            doc[name] = form[name].strip()
    try:
        return msgspec.convert(doc, policy.TenantPolicy)
    except msgspec.ValidationError as exc:
        raise _bad(f"invalid settings: {exc}", "invalid_settings") from None


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items() if k != "_csrf_token"}


def _back(request: Request[Any, Any, Any], tenant: str, saved: str) -> Redirect:
    return Redirect(path=f"/notify/settings?tenant={quote(tenant)}&lang={_lang(request)}&saved={saved}",
                    status_code=303)  # fmt: skip


@post("/notify/settings", guards=[requires("notify.manage")], request_max_body_size=MAX_BODY)
async def settings_form(request: Request[Any, Any, Any]) -> Redirect:
    """The settings page's policy form."""
    tenant = _tenant(request)
    form = await _form(request)

    def save() -> None:
        with _engine(request).connect() as conn:
            current = policy.load(conn, tenant)
        _save_policy(request, tenant, policy_from_form(form, current))

    await asyncio.to_thread(save)
    return _back(request, tenant, "policy")


@post("/notify/settings/providers/{channel:str}", guards=[requires("notify.manage")], request_max_body_size=MAX_BODY)
async def provider_form(request: Request[Any, Any, Any], channel: FromPath[str]) -> Redirect:
    """A channel's provider form: its fields (empty ones left out, so defaults apply; an empty secret keeps the
    stored one)."""
    tenant = _tenant(request)
    form = await _form(request)
    name = form.get("provider", "")
    settings = {k: v.strip() for k in FIELDS.get(name, ()) if (v := form.get(k, "")).strip()}
    await asyncio.to_thread(_save_provider, request, tenant, channel, ProviderChoice(name, settings))
    return _back(request, tenant, channel)


@post("/notify/settings/providers/{channel:str}/delete", guards=[requires("notify.manage")])
async def provider_delete_form(request: Request[Any, Any, Any], channel: FromPath[str]) -> Redirect:
    """A channel's "stop using" button."""
    tenant = _tenant(request)
    await asyncio.to_thread(_delete_provider, request, tenant, channel)
    return _back(request, tenant, channel)


# --- templates ------------------------------------------------------------------------------------------------------


def _templates_view(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    """Every (trigger, channel, language) with its effective wording and whether the tenant customised it."""
    found = []
    with engine.connect() as conn:
        for trigger in policy.TRIGGERS:
            for channel in CHANNELS:
                for lang in policy.LANGS:
                    wording, used = templates.lookup(conn, tenant, trigger, channel, lang)
                    custom = used == lang and wording != templates.default_wording(trigger, channel, lang)
                    found.append({"trigger": trigger, "channel": channel, "lang": lang, "custom": custom,
                                  "subject": wording.subject, "body": wording.body,
                                  "wa_template": wording.wa_template})  # fmt: skip
    return found


@get("/api/v1/notify/templates", guards=[requires("notify.read")], sync_to_thread=True)
def templates_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The tenant's templates (defaults where it has none) and the variables they may use."""
    tenant = _tenant(request)
    return {
        "tenant": tenant,
        "variables": list(templates.VARIABLES),
        "templates": _templates_view(_engine(request), tenant),
    }


class TemplateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A template as the editor sends it."""

    body: str
    subject: str | None = None
    wa_template: str | None = None
    channel: str = "sms"
    lang: str = "id"


def _key(trigger: str, channel: str, lang: str) -> None:
    if trigger not in policy.TRIGGERS or channel not in CHANNELS or lang not in policy.LANGS:
        raise NotFoundException()


def preview_of(body: TemplateBody) -> dict[str, Any]:
    """The editor's preview: the template rendered with sample values, its SMS segments, or where it fails."""
    try:
        templates.check(body.body)
        if body.subject:
            templates.check(body.subject)
    except templates.TemplateInvalid as exc:
        return {"ok": False, "error": str(exc)}
    wording = templates.Wording(body.body, body.subject, body.wa_template)
    rendered = templates.render(wording, body.channel, body.lang, templates.SAMPLE)
    return {"ok": True, "text": rendered.text, "subject": rendered.subject, "chars": len(rendered.text),
            "segments": segment_count(rendered.text).as_dict()}  # fmt: skip


@post("/api/v1/notify/templates/preview", guards=[requires("notify.read")], status_code=200)
async def template_preview(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Render a draft with sample values (nothing stored)."""
    return preview_of(_decode(await request.body(), TemplateBody))


@put("/api/v1/notify/templates/{trigger:str}/{channel:str}/{lang:str}", guards=[requires("notify.manage")])
async def template_save(
    request: Request[Any, Any, Any], trigger: FromPath[str], channel: FromPath[str], lang: FromPath[str]
) -> dict[str, Any]:
    """Store the tenant's wording for one trigger, channel and language (a template that does not parse is 400)."""
    tenant = _tenant(request)
    _key(trigger, channel, lang)
    body = _decode(await request.body(), TemplateBody)

    def save() -> dict[str, Any]:
        with _engine(request).begin() as conn:
            templates.save(conn, tenant, trigger, channel, lang, templates.Wording(body.body, body.subject,
                                                                                   body.wa_template))  # fmt: skip
        return preview_of(msgspec.structs.replace(body, channel=channel, lang=lang))

    try:
        return await asyncio.to_thread(save)
    except templates.TemplateInvalid as exc:
        raise _bad(f"template does not parse: {exc}", "template_invalid") from None


@delete("/api/v1/notify/templates/{trigger:str}/{channel:str}/{lang:str}", guards=[requires("notify.manage")],
        status_code=200)  # fmt: skip
async def template_reset(
    request: Request[Any, Any, Any], trigger: FromPath[str], channel: FromPath[str], lang: FromPath[str]
) -> dict[str, Any]:
    """Back to the default wording."""
    tenant = _tenant(request)
    _key(trigger, channel, lang)

    def drop() -> dict[str, Any]:
        with _engine(request).begin() as conn:
            templates.delete(conn, tenant, trigger, channel, lang)
        return {"reset": True}

    return await asyncio.to_thread(drop)


# --- message log and DLQ ------------------------------------------------------------------------------------------


def _messages(request: Request[Any, Any, Any], dead_only: bool = False) -> list[dict[str, Any]]:
    filters = console.Filters.from_query(request.query_params, dead_only=dead_only)
    tenant = request.query_params.get("tenant")
    user = _user(request)
    if tenant and not user.sees_tenant(tenant):
        raise NotFoundException()
    tenants = frozenset({tenant}) if tenant else user.tenants
    with _engine(request).connect() as conn:
        return console.messages(conn, tenants, _sees(request), filters)


@get("/api/v1/notify/messages", guards=[requires("notify.read")], sync_to_thread=True)
def messages_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The message log of tickets and bookings (newest first): filters `status`, `channel`, `trigger` (a ticket
    trigger, `booking.confirm`, `booking.remind` or `booking.rescheduled`), `branch_id`, `from`, `to`, `tenant`."""
    return {"messages": _messages(request)}


@get("/api/v1/notify/dlq", guards=[requires("notify.read")], sync_to_thread=True)
def dlq_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Dead messages with their reason (replay with POST /api/v1/notify/messages/{id}/replay, or for `source:
    "booking"` rows /api/v1/notify/booking-messages/{id}/replay)."""
    return {"messages": _messages(request, dead_only=True)}


MAX_OUTBOX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: a bigger id would overflow the driver


def _message_id(outbox_id: int) -> int:
    """A path's message id, or 404 when no row can have it (an id past 64 bits overflows SQLite: a 500)."""
    if not 0 < outbox_id <= MAX_OUTBOX_ID:
        raise NotFoundException()
    return outbox_id


@get("/api/v1/notify/messages/{outbox_id:int}/attempts", guards=[requires("notify.read")], sync_to_thread=True)
def attempts_json(request: Request[Any, Any, Any], outbox_id: FromPath[int]) -> dict[str, Any]:
    """Every attempt of one message."""
    outbox_id = _message_id(outbox_id)
    with _engine(request).connect() as conn:
        owner = console.message_tenant(conn, outbox_id)
        if owner is None or not _user(request).sees_branch(*owner):
            raise NotFoundException()
        return {"attempts": console.attempt_log(conn, outbox_id)}


def _replay(request: Request[Any, Any, Any], outbox_id: int) -> bool:
    outbox_id = _message_id(outbox_id)
    with _engine(request).begin() as conn:
        owner = console.message_tenant(conn, outbox_id)
        if owner is None or not _user(request).sees_branch(*owner):
            raise NotFoundException()
        done = outbox.replay(conn, owner[0], outbox_id, datetime.now(UTC))
    if done:
        log.info("notify: message %d replayed by %s", outbox_id, _user(request).username)
    return done


@post("/api/v1/notify/messages/{outbox_id:int}/replay", guards=[requires("notify.manage")], status_code=200)
async def replay_json(request: Request[Any, Any, Any], outbox_id: FromPath[int]) -> dict[str, bool]:
    """Send a dead message again: `{"replayed": true}`, or 409 problem+json `not_dead` when it is not dead."""
    if not await asyncio.to_thread(_replay, request, outbox_id):
        raise refusal(409, "not_dead", f"message {outbox_id} is not dead: only a dead message is sent again")
    if (dispatcher := app_dispatcher(request.app.state)) is not None:
        dispatcher.wake()
    return {"replayed": True}


@get("/api/v1/notify/booking-messages/{message_id:int}/attempts", guards=[requires("notify.read")],
     sync_to_thread=True)  # fmt: skip
def booking_attempts_json(request: Request[Any, Any, Any], message_id: FromPath[int]) -> dict[str, Any]:
    """Every attempt of one booking message."""
    message_id = _message_id(message_id)
    with _engine(request).connect() as conn:
        owner = console.booking_message_tenant(conn, message_id)
        if owner is None or not _user(request).sees_branch(*owner):
            raise NotFoundException()
        return {"attempts": console.booking_attempt_log(conn, message_id)}


def _replay_booking(request: Request[Any, Any, Any], message_id: int) -> bool:
    """Replay a dead booking message (its own outbox and ids: `cloud.appointments.outbox.replay`)."""
    message_id = _message_id(message_id)
    with _engine(request).begin() as conn:
        owner = console.booking_message_tenant(conn, message_id)
        if owner is None or not _user(request).sees_branch(*owner):
            raise NotFoundException()
        done = booking_outbox.replay(conn, owner[0], message_id, datetime.now(UTC))
    if done:
        log.info("notify: booking message %d replayed by %s", message_id, _user(request).username)
    if (sender := request.app.state.get("appt_sender")) is not None:
        sender.wake()
    return done


@post("/api/v1/notify/booking-messages/{message_id:int}/replay", guards=[requires("notify.manage")],
      status_code=200)  # fmt: skip
async def replay_booking_json(request: Request[Any, Any, Any], message_id: FromPath[int]) -> dict[str, bool]:
    """Send a dead booking message (confirmation, reminder, "moved") again: `{"replayed": true}`, or 409
    problem+json `not_dead`."""
    if not await asyncio.to_thread(_replay_booking, request, message_id):
        raise refusal(409, "not_dead", f"booking message {message_id} is not dead: only a dead message is sent again")
    return {"replayed": True}


# --- pages ----------------------------------------------------------------------------------------------------------


def _filter_values(request: Request[Any, Any, Any]) -> dict[str, str]:
    keys = ("status", "channel", "trigger", "branch_id", "from", "to", "tenant")
    return {k: request.query_params.get(k) or "" for k in keys}


@get("/notify", guards=[requires("notify.read")])
async def notify_home() -> Redirect:
    """The area opens on the message log."""
    return Redirect(path="/notify/messages", status_code=303)


@get("/notify/messages", guards=[requires("notify.read")], sync_to_thread=True)
def messages_page(request: Request[Any, Any, Any]) -> Template:
    """The message log with filters."""
    return _page(request, "messages.html", rows=_messages(request), filters=_filter_values(request), dlq=False,
                 statuses=outbox_statuses(), channels=CHANNELS, triggers=LOG_TRIGGERS)  # fmt: skip


@get("/notify/dlq", guards=[requires("notify.read")], sync_to_thread=True)
def dlq_page(request: Request[Any, Any, Any]) -> Template:
    """Dead messages with their reasons and a replay button."""
    return _page(request, "messages.html", rows=_messages(request, dead_only=True), filters=_filter_values(request),
                 dlq=True, statuses=outbox_statuses(), channels=CHANNELS, triggers=LOG_TRIGGERS,
                 can_manage=_user(request).can("notify.manage"))  # fmt: skip


@post("/notify/messages/{outbox_id:int}/replay", guards=[requires("notify.manage")])
async def replay_form(request: Request[Any, Any, Any], outbox_id: FromPath[int]) -> Redirect:
    """The DLQ's replay button."""
    await asyncio.to_thread(_replay, request, outbox_id)
    if (dispatcher := app_dispatcher(request.app.state)) is not None:
        dispatcher.wake()
    return Redirect(path=f"/notify/dlq?lang={_lang(request)}&replayed={outbox_id}", status_code=303)


@post("/notify/booking-messages/{message_id:int}/replay", guards=[requires("notify.manage")])
async def replay_booking_form(request: Request[Any, Any, Any], message_id: FromPath[int]) -> Redirect:
    """The DLQ's replay button on a booking message."""
    await asyncio.to_thread(_replay_booking, request, message_id)
    return Redirect(path=f"/notify/dlq?lang={_lang(request)}&replayed=b{message_id}", status_code=303)


@get("/notify/templates", guards=[requires("notify.read")], sync_to_thread=True)
def templates_page(request: Request[Any, Any, Any]) -> Template:
    """The template editor: pick trigger, channel and language; edit with a live preview and SMS segment count."""
    tenant = _tenant(request)
    q = request.query_params
    trigger = str(q.get("trigger")) if q.get("trigger") in policy.TRIGGERS else "ticket.called"
    channel = str(q.get("channel")) if q.get("channel") in CHANNELS else "sms"
    lang = str(q.get("tlang")) if q.get("tlang") in policy.LANGS else _lang(request)
    with _engine(request).connect() as conn:
        wording, _used = templates.lookup(conn, tenant, trigger, channel, lang)
    custom = wording != templates.default_wording(trigger, channel, lang)
    preview = preview_of(TemplateBody(wording.body, wording.subject, wording.wa_template, channel, lang))
    return _page(request, "templates.html", tenant=tenant, trigger=trigger, channel=channel, tlang=lang,
                 wording=wording, custom=custom, preview=preview, triggers=policy.TRIGGERS, channels=CHANNELS,
                 langs=policy.LANGS, variables=templates.VARIABLES,
                 can_manage=_user(request).can("notify.manage"))  # fmt: skip


@get("/notify/settings", guards=[requires("notify.read")])
async def settings_page(request: Request[Any, Any, Any]) -> Template:
    """The tenant's policy and providers in forms (secrets never shown, only whether one is stored)."""
    tenant = _tenant(request)
    view = await asyncio.to_thread(_settings_view, _engine(request), tenant)
    return _page(request, "settings.html", view=view, tenant=tenant,
                 fields=FIELDS, channels=CHANNELS, triggers=policy.TRIGGERS, saved=request.query_params.get("saved"),
                 can_manage=_user(request).can("notify.manage"))  # fmt: skip


LOG_TRIGGERS = (*policy.TRIGGERS, *console.BOOKING_TRIGGERS)  # the log's trigger filter: tickets' and bookings'


def outbox_statuses() -> tuple[str, ...]:
    """The statuses the log's filter offers."""
    from cloud.notify.tables import STATUSES

    return STATUSES


ROUTES: list[Any] = [
    webhook, webhook_verify, settings_json, settings_save, provider_save, provider_delete, templates_json,
    template_preview, template_save, template_reset, messages_json, dlq_json, attempts_json, replay_json,
    notify_home, messages_page, dlq_page, replay_form, templates_page, settings_page, settings_form, provider_form,
    provider_delete_form, replay_booking_json, replay_booking_form, booking_attempts_json,
]  # fmt: skip
ROUTES += push_web.ROUTES  # the status page's "notify me" (web push)
