"""The notify area's tables, on the hub's one `metadata` (created by migration `0004_notify`).

* `notify_settings` — per tenant: on/off, channels and triggers enabled, "N to go" thresholds per service, the
  WhatsApp fallback channel, contact retention, the hub's public URL for status links.
* `notify_providers` — per (tenant, channel): which provider module sends and its settings (secrets included; the
  console only ever writes them, `providers.base.secret_fields` masks them on the way out).
* `notify_templates` — a tenant's own wording per (trigger, channel, language); absent rows use the defaults in code.
* `notify_contacts` — a ticket's phone (E.164) and e-mail and the customer's opt-in, until `purge_after`; read and
  written only through `cloud.notify.contacts` (which will encrypt them at rest, issue 16).
* `notify_outbox` — one row per (tenant, branch, ticket, trigger, channel), the idempotency key; its status moves
  pending → sending → sent → delivered | failed → (retry) | dead, or skipped / superseded.
* `notify_attempts` — every send attempt of an outbox row, for the message log.
* `notify_parked_reports` — delivery reports that came before their send was recorded (`cloud.notify.reports`),
  for either outbox; applied and deleted when it is, swept after 10 minutes (migration `0014_parked_reports`).
"""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata

STATUSES = ("pending", "sending", "sent", "delivered", "failed", "dead", "skipped", "superseded")

settings = sa.Table(
    "notify_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),  # JSON of cloud.notify.policy.TenantPolicy
    sa.Column("updated_at", sa.String(40), nullable=False),
)

providers = sa.Table(
    "notify_providers",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),  # a key of cloud.notify.providers.REGISTRY
    sa.Column("settings", sa.Text, nullable=False),  # JSON, secrets included: never logged nor shown
    sa.Column("updated_at", sa.String(40), nullable=False),
)

templates = sa.Table(
    "notify_templates",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("trigger", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("lang", sa.String(8), primary_key=True),
    sa.Column("subject", sa.Text),  # e-mail only
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("wa_template", sa.String(128)),  # WhatsApp: the approved template's name (body params = variables)
    sa.Column("updated_at", sa.String(40), nullable=False),
)

contacts = sa.Table(
    "notify_contacts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(255)),  # E.164 (room for an encrypted form later)
    sa.Column("email", sa.String(512)),
    sa.Column("opt_in", sa.Boolean),  # None: the appliance did not ask (consent by giving the contact)
    sa.Column("lang", sa.String(8)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("purge_after", sa.String(40), nullable=False),
)
sa.Index("notify_contacts_purge", contacts.c.purge_after)

outbox = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("vars", sa.Text, nullable=False),  # JSON: the template variables known when the trigger fired
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.String(40)),  # due time of pending/failed rows (UTC)
    sa.Column("lease_until", sa.String(40)),  # a `sending` row older than this was left by a dead dispatcher
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(255)),
    sa.Column("reason", sa.Text),  # why skipped / superseded / failed / dead: codes, never contacts or secrets
    sa.Column("code", sa.String(64)),
    sa.Column("fallback_of", sa.BigInteger),  # the WhatsApp row this SMS/e-mail row stands in for
    sa.Column("correlation_id", sa.String(128)),  # the causing event's id (issue 16): sent to the provider
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("sent_at", sa.String(40)),
    sa.Column("delivered_at", sa.String(40)),
    sa.UniqueConstraint("tenant_id", "branch_id", "ticket_id", "trigger", "channel", name="notify_outbox_key"),
)
sa.Index("notify_outbox_due", outbox.c.status, outbox.c.next_attempt_at)
sa.Index("notify_outbox_provider_msg", outbox.c.provider, outbox.c.provider_message_id)
sa.Index("notify_outbox_log", outbox.c.tenant_id, outbox.c.created_at)

attempts = sa.Table(
    "notify_attempts",
    metadata,
    sa.Column("outbox_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("provider", sa.String(32)),
    sa.Column("outcome", sa.String(16)),  # sent | retry | permanent | superseded (None: still running / lost)
    sa.Column("code", sa.String(64)),
    sa.Column("reason", sa.Text),
)

parked_reports = sa.Table(
    "notify_parked_reports",
    metadata,
    # the key is the report itself: a provider's retried callback parks nothing twice
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("provider_message_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),  # delivered | failed
    sa.Column("code", sa.String(64)),
    sa.Column("reason", sa.Text),  # the provider's words for a failure: codes, never contacts
    sa.Column("received_at", sa.String(40), nullable=False),
)
sa.Index("notify_parked_reports_age", parked_reports.c.received_at)

TABLES = (settings, providers, templates, contacts, outbox, attempts, parked_reports)

# --- web push (US-NOTIF-008; cloud.notify.push_store, brief N2) --------------------------------------------------
# * `notify_push_subscriptions` — the browsers a ticket's status page subscribed (one row per ticket and endpoint).
# (each tenant's VAPID key pair lives in its `push` provider settings: `cloud.notify.push_store.vapid_public_key`)

push_subscriptions = sa.Table(
    "notify_push_subscriptions",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("endpoint_id", sa.String(64), primary_key=True),  # sha256 of the endpoint URL
    sa.Column("subscription", sa.Text, nullable=False),  # PushSubscription JSON: a contact, never logged
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
sa.Index("notify_push_subscriptions_endpoint", push_subscriptions.c.tenant_id, push_subscriptions.c.endpoint_id)

PUSH_TABLES = (push_subscriptions,)
