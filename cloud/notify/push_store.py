"""Web push state (US-NOTIF-008): the subscriptions a ticket's status page registered, and each tenant's VAPID key
pair, made on first use and kept in the tenant's `push` provider settings (`webpush`: `vapid_subject`, secret
`vapid_private_key`), so the dispatcher builds the provider like any other. Subscriptions are contacts: never logged,
purged with the ticket's other contacts; `forget` drops one its push service called gone (404/410, code `gone`)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.engine import Connection

from cloud.notify import policy
from cloud.notify.providers.webpush import SECRETS
from cloud.notify.tables import push_subscriptions

# The browsers' push services; others (a self-hosted or test push service) are allowed by QMS_PUSH_ORIGINS. The
# hub POSTs to whatever endpoint a page registers, so an open list would let anyone aim it at internal addresses.
PUSH_HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com", "push.services.mozilla.com")
PUSH_HOST_SUFFIXES = (".push.apple.com", ".notify.windows.com")
MAX_PER_TICKET = 5
MAX_ENDPOINT = 2048
AUTH_BYTES = 16  # RFC 8291: the auth secret is 16 octets  # phones and tablets a customer may ask to be told on


class Keys(msgspec.Struct, frozen=True):
    """A subscription's browser keys, base64url: the ECDH public key and the 16-byte auth secret."""

    p256dh: str
    auth: str


class Subscription(msgspec.Struct, frozen=True):
    """`PushSubscription.toJSON()` as a page posts it (`expirationTime` is ignored)."""

    endpoint: str
    keys: Keys


class InvalidSubscription(ValueError):
    """A subscription the hub will not push to (malformed keys, or an endpoint off the allowed push services)."""


def _b64url(text: str) -> bytes:
    """Decode unpadded base64url (what browsers produce)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def allowed_origins() -> tuple[str, ...]:
    """Extra push service origins allowed besides the browsers' (QMS_PUSH_ORIGINS, comma-separated)."""
    return tuple(o.strip().rstrip("/") for o in os.environ.get("QMS_PUSH_ORIGINS", "").split(",") if o.strip())


def validate(sub: Subscription, extra_origins: tuple[str, ...] = ()) -> Subscription:
    """The subscription when its keys are well formed and its endpoint is an allowed push service."""
    parts = urlsplit(sub.endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = parts.hostname or ""
    browser_service = parts.scheme == "https" and (host in PUSH_HOSTS or host.endswith(PUSH_HOST_SUFFIXES))
    if len(sub.endpoint) > MAX_ENDPOINT or not (browser_service or origin in extra_origins):
        raise InvalidSubscription("endpoint is not an allowed push service")
    try:
        point, auth = _b64url(sub.keys.p256dh), _b64url(sub.keys.auth)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise InvalidSubscription("keys are not a P-256 point and an auth secret") from exc
    if len(auth) != AUTH_BYTES:
        raise InvalidSubscription("auth secret is not 16 bytes")
    return sub


def endpoint_id(endpoint: str) -> str:
    """A subscription's key: the hash of its endpoint (endpoints are long and are capability URLs)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def save(conn: Connection, tenant: str, branch_id: str, ticket_id: str, sub: Subscription, lang: str) -> bool:
    """Record (or refresh) a ticket's subscription; False when the ticket already has `MAX_PER_TICKET` others."""
    key = {
        "tenant_id": tenant,
        "branch_id": branch_id,
        "ticket_id": ticket_id,
        "endpoint_id": endpoint_id(sub.endpoint),
    }
    where = [push_subscriptions.c[k] == v for k, v in key.items()]
    doc = msgspec.json.encode(sub).decode()
    if conn.execute(sa.update(push_subscriptions).where(*where).values(subscription=doc, lang=lang)).rowcount:
        return True
    count = conn.execute(sa.select(sa.func.count()).where(*where[:3]).select_from(push_subscriptions)).scalar_one()
    if count >= MAX_PER_TICKET:
        return False
    conn.execute(sa.insert(push_subscriptions).values(**key, subscription=doc, lang=lang, created_at=_now()))
    return True


def remove(conn: Connection, tenant: str, branch_id: str, ticket_id: str, endpoint: str) -> None:
    """The page's "stop notifying me": drop that browser's subscription for the ticket."""
    table = push_subscriptions
    conn.execute(sa.delete(table).where(
        table.c.tenant_id == tenant, table.c.branch_id == branch_id, table.c.ticket_id == ticket_id,
        table.c.endpoint_id == endpoint_id(endpoint)))  # fmt: skip


def for_ticket(conn: Connection, tenant: str, branch_id: str, ticket_id: str) -> list[str]:
    """The ticket's subscriptions as JSON, each an `OutgoingMessage.to` for the web push provider."""
    return list(conn.execute(sa.select(push_subscriptions.c.subscription).where(
        push_subscriptions.c.tenant_id == tenant, push_subscriptions.c.branch_id == branch_id,
        push_subscriptions.c.ticket_id == ticket_id).order_by(push_subscriptions.c.created_at)).scalars())  # fmt: skip


def forget(conn: Connection, tenant: str, subscription: str) -> int:
    """Delete a subscription (its JSON) its push service called gone (404/410), from every ticket of the tenant."""
    return forget_endpoint(conn, tenant, json.loads(subscription).get("endpoint", ""))


def forget_endpoint(conn: Connection, tenant: str, endpoint: str) -> int:
    """Delete the subscription with this endpoint from every ticket of the tenant (its push service said gone)."""
    table = push_subscriptions
    query = sa.delete(table).where(table.c.tenant_id == tenant, table.c.endpoint_id == endpoint_id(endpoint))
    return conn.execute(query).rowcount


def purge_ticket(conn: Connection, tenant: str, branch_id: str, ticket_id: str) -> None:
    """Forget a ticket's subscriptions (with its other contacts, after the retention period)."""
    conn.execute(sa.delete(push_subscriptions).where(
        push_subscriptions.c.tenant_id == tenant, push_subscriptions.c.branch_id == branch_id,
        push_subscriptions.c.ticket_id == ticket_id))  # fmt: skip


def new_key_pair() -> tuple[str, str]:
    """A VAPID key pair as (public, private): base64url of the uncompressed P-256 point and the raw scalar."""
    private = ec.generate_private_key(ec.SECP256R1())
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    return public_key_of(_b64url_text(raw)), _b64url_text(raw)


def _b64url_text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_key_of(private: str) -> str:
    """The VAPID public key (`applicationServerKey`, base64url uncompressed point) of a base64url private scalar."""
    key = ec.derive_private_key(int.from_bytes(_b64url(private), "big"), ec.SECP256R1())
    return _b64url_text(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def push_settings(conn: Connection, tenant: str) -> dict[str, Any] | None:
    """The tenant's web push settings when it offers web push (provider `webpush` configured for the `push` channel,
    notifications and the channel on); None otherwise, and the status page offers no "notify me"."""
    rules = policy.load(conn, tenant)
    entry = policy.provider_settings(conn, tenant).get("push")
    if not rules.enabled or not rules.channels.get("push") or entry is None or entry["provider"] != "webpush":
        return None
    found: dict[str, Any] = entry["settings"]
    return found


def vapid_public_key(conn: Connection, tenant: str) -> str | None:
    """The tenant's VAPID public key for the page; the pair is made on first use and kept in the tenant's web push
    settings (where the dispatcher's provider reads the private half). None when the tenant offers no web push."""
    settings = push_settings(conn, tenant)
    if settings is None:
        return None
    if not settings.get("vapid_private_key"):
        _, private = new_key_pair()
        policy.save_provider(conn, tenant, "push", "webpush", {**settings, "vapid_private_key": private}, SECRETS)
        # Two replicas making a pair at once: the last write wins; re-read so this page gets the stored one.
        settings = push_settings(conn, tenant) or {}
    return public_key_of(str(settings["vapid_private_key"]))
