"""The appointments area's tables, on the hub's one `metadata` (created by migration `0010_appointments`).

Branch data is keyed by (tenant_id, branch_id). Slots are rows made on first booking (a day's grid is computed from
the calendar); `booked` only moves by a conditional UPDATE so a slot is never overbooked. Contacts of a booking are
write-only: pages show them masked."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata

# Per-branch booking policy: region (for regional holidays), the check-in window and what happens to late arrivals.
appt_settings = sa.Table(
    "appt_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(32)),
    sa.Column("checkin_before_minutes", sa.Integer, nullable=False),
    sa.Column("checkin_after_minutes", sa.Integer, nullable=False),
    sa.Column("late_policy", sa.String(16), nullable=False),  # walk_in | refuse
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# Calendar entries over the national holidays: scope `tenant`, `region:<code>` or `branch:<id>`.
appt_calendar = sa.Table(
    "appt_calendar",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(80), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # holiday | blackout | open
    sa.Column("name", sa.String(200), nullable=False),
)

# Which services of a branch take bookings, the slot length and the capacity (by hand, or derived when null).
appt_services = sa.Table(
    "appt_services",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("slot_minutes", sa.Integer, nullable=False),
    sa.Column("capacity", sa.Integer),
    sa.Column("counters", sa.Integer, nullable=False),
    sa.Column("mean_service_minutes", sa.Float, nullable=False),
    sa.Column("quota_pct", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

appt_slots = sa.Table(
    "appt_slots",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), primary_key=True),
    sa.Column("starts_at", sa.String(40), primary_key=True),  # UTC, RFC 3339
    sa.Column("day", sa.String(10), nullable=False),  # branch-local
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("booked", sa.Integer, nullable=False),
)

appt_bookings = sa.Table(
    "appt_bookings",
    metadata,
    sa.Column("booking_id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("starts_at", sa.String(40), nullable=False),  # UTC
    sa.Column("day", sa.String(10), nullable=False),  # branch-local
    sa.Column("status", sa.String(16), nullable=False),  # booked | cancelled | checked_in (no_show is derived)
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(32)),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),  # `public` or the staff member
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("checked_in_at", sa.String(40)),
    sa.Column("ticket_id", sa.String(64)),
    sa.Column("confirmed_at", sa.String(40)),  # confirmation e-mail claimed (null: owed)
    sa.Column("reminded_at", sa.String(40)),  # reminder e-mail claimed (null: owed)
    # moves: `round` counts them (the booking messages of an older round are superseded), `moved_at` is the last
    # one (the reminder rule's "just booked" counts from it), `rescheduled_at` the "moved" message claimed (null
    # after a move: owed)
    sa.Column("round", sa.Integer, nullable=False, server_default="0"),
    sa.Column("moved_at", sa.String(40)),
    sa.Column("rescheduled_at", sa.String(40)),
)
sa.Index("appt_bookings_day", appt_bookings.c.tenant_id, appt_bookings.c.branch_id, appt_bookings.c.day)

# One Ed25519 key per tenant, made on first use; the private half signs check-in QRs and never leaves the hub.
appt_keys = sa.Table(
    "appt_keys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("private_key", sa.String(64), nullable=False),  # hex of the raw 32-byte seed
    sa.Column("public_key", sa.String(64), nullable=False),  # hex of the raw 32-byte public key
    sa.Column("created_at", sa.String(40), nullable=False),
)

# The booking messages' outbox (confirmation, reminder and "moved", issue 15), beside the notifications outbox (which
# is keyed by ticket): one row per (tenant, booking, kind, channel, round) — the idempotency key, so each is owed once
# per round; a move starts the booking's next round (`appt_bookings.round`) — moving
# pending → sending → sent | failed → (retry) | dead, or skipped / superseded, like `notify_outbox`. Contacts stay in
# `appt_bookings`; a row holds none.
appt_messages = sa.Table(
    "appt_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("booking_id", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # confirm | remind | rescheduled
    sa.Column("channel", sa.String(16), nullable=False),  # email | whatsapp | sms (a WhatsApp fallback)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.String(40)),  # due time of pending/failed rows (UTC)
    sa.Column("lease_until", sa.String(40)),  # a `sending` row older than this was left by a dead sender
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(255)),
    sa.Column("code", sa.String(64)),
    sa.Column("reason", sa.Text),  # codes and provider words, never contacts or secrets
    sa.Column("fallback_of", sa.BigInteger),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("sent_at", sa.String(40)),
    sa.Column("round", sa.Integer, nullable=False, server_default="0"),  # the booking's round it was owed in
    sa.Column("delivered_at", sa.String(40)),  # the provider's delivery report (status `delivered`)
    sa.UniqueConstraint("tenant_id", "booking_id", "kind", "channel", "round", name="appt_messages_key"),
)
sa.Index("appt_messages_due", appt_messages.c.status, appt_messages.c.next_attempt_at)
sa.Index("appt_messages_booking", appt_messages.c.tenant_id, appt_messages.c.booking_id)

appt_message_attempts = sa.Table(
    "appt_message_attempts",
    metadata,
    sa.Column("message_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("provider", sa.String(32)),
    sa.Column("outcome", sa.String(16)),  # sent | retry | permanent (None: still running / lost)
    sa.Column("code", sa.String(64)),
    sa.Column("reason", sa.Text),
)
