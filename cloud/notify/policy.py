"""A tenant's notification policy (US-NOTIF-002): on/off as a whole, per channel and per trigger, the "N to go"
threshold per service, the WhatsApp and SMS fallbacks, how long contacts are kept, retries. Stored as one JSON
document per tenant; a tenant without one gets the defaults (on; nothing is sent before a provider is configured)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
import sqlalchemy as sa
from msgspec import Meta, Struct
from sqlalchemy.engine import Connection

from cloud.notify.providers.base import CHANNELS, Channel
from cloud.notify.tables import providers, settings
from cloud.store import utcnow_iso

Trigger = Literal["ticket.created", "ticket.to_go", "ticket.called", "ticket.recalled"]
TRIGGERS: tuple[Trigger, ...] = ("ticket.created", "ticket.to_go", "ticket.called", "ticket.recalled")
LANGS = ("id", "en")


class TenantPolicy(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a tenant sends, to whom, and how hard the dispatcher tries."""

    enabled: bool = True
    channels: dict[Channel, bool] = msgspec.field(default_factory=lambda: dict.fromkeys(CHANNELS, True))
    triggers: dict[Trigger, bool] = msgspec.field(default_factory=lambda: dict.fromkeys(TRIGGERS, True))
    to_go_threshold: Annotated[int, Meta(ge=1, le=50)] = 3
    to_go_by_service: dict[str, Annotated[int, Meta(ge=1, le=50)]] = {}
    # Where a WhatsApp message goes when WhatsApp refuses it for good (not on WhatsApp, template not approved).
    whatsapp_fallback: Literal["sms", "email", "none"] = "sms"
    # Where an SMS goes when the provider reports it undelivered or refuses it for good.
    sms_fallback: Literal["email", "none"] = "email"
    retention_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 6
    public_url: str = ""  # the hub's public address, for `status_url` in messages (empty: no link)

    def threshold(self, service_id: str) -> int:
        """The "N to go" threshold of a service."""
        return self.to_go_by_service.get(service_id, self.to_go_threshold)

    def allows(self, trigger: str, channel: str) -> str | None:
        """Why this trigger/channel is not sent (`tenant_off`, `channel_off`, `trigger_off`), or None."""
        if not self.enabled:
            return "tenant_off"
        if not self.channels.get(channel, False):  # type: ignore[call-overload]  # any str may be asked
            return "channel_off"
        if not self.triggers.get(trigger, False):  # type: ignore[call-overload]
            return "trigger_off"
        return None

    def fallback(self, channel: str) -> str:
        """The channel a message that cannot reach the customer on `channel` is owed on instead (`none`: nowhere)."""
        return {"whatsapp": self.whatsapp_fallback, "sms": self.sms_fallback}.get(channel, "none")

    @property
    def retention(self) -> timedelta:
        """How long a ticket's contacts are kept."""
        return timedelta(days=self.retention_days)


_decoder = msgspec.json.Decoder(TenantPolicy)


def load(conn: Connection, tenant: str) -> TenantPolicy:
    """The tenant's policy (defaults when it has none)."""
    doc = conn.execute(sa.select(settings.c.doc).where(settings.c.tenant_id == tenant)).scalar_one_or_none()
    return _decoder.decode(doc) if doc else TenantPolicy()


def decode(body: bytes) -> TenantPolicy:
    """A policy from the console's JSON (msgspec.ValidationError names the bad field)."""
    return _decoder.decode(body)


def save(conn: Connection, tenant: str, policy: TenantPolicy) -> None:
    """Replace the tenant's policy."""
    doc = msgspec.json.encode(policy).decode()
    now = utcnow_iso()
    updated = conn.execute(
        sa.update(settings).where(settings.c.tenant_id == tenant).values(doc=doc, updated_at=now)
    ).rowcount
    if not updated:
        conn.execute(settings.insert().values(tenant_id=tenant, doc=doc, updated_at=now))


MASK = "••••"


def provider_settings(conn: Connection, tenant: str) -> dict[str, dict[str, Any]]:
    """The tenant's providers per channel, `{"provider": name, "settings": {…}}`, secrets INCLUDED (the caller
    masks with `providers.base.secret_fields` before showing anything)."""
    rows = conn.execute(sa.select(providers).where(providers.c.tenant_id == tenant))
    return {r.channel: {"provider": r.provider, "settings": msgspec.json.decode(r.settings)} for r in rows}


def save_provider(
    conn: Connection, tenant: str, channel: str, provider: str, values: dict[str, Any], secrets: tuple[str, ...]
) -> None:
    """Store a channel's provider settings. Secrets are write-only: a secret field left empty or still showing the
    mask keeps the stored value (so a form that never shows a secret can be saved without retyping it)."""
    stored = provider_settings(conn, tenant).get(channel)
    kept = stored["settings"] if stored and stored["provider"] == provider else {}
    merged = dict(values)
    for name in secrets:
        if merged.get(name) in (None, "", MASK):
            if name in kept:
                merged[name] = kept[name]
            else:
                merged.pop(name, None)
    doc = msgspec.json.encode(merged).decode()
    now = utcnow_iso()
    key = (providers.c.tenant_id == tenant, providers.c.channel == channel)
    if not conn.execute(
        sa.update(providers).where(*key).values(provider=provider, settings=doc, updated_at=now)
    ).rowcount:
        conn.execute(
            providers.insert().values(
                tenant_id=tenant, channel=channel, provider=provider, settings=doc, updated_at=now
            )
        )


def delete_provider(conn: Connection, tenant: str, channel: str) -> None:
    """Stop using a channel (its rows still owed are skipped as `no_provider` when their turn comes)."""
    conn.execute(sa.delete(providers).where(providers.c.tenant_id == tenant, providers.c.channel == channel))
