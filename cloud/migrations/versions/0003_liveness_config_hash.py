"""Branch liveness (`branch_liveness`: the newest heartbeat per branch) and configuration content hashes
(`config_versions.config_hash`, `branches.config_hash` / `config_rejected_hash`).

Existing versions get their hash from the stored document; a branch's running hash from its newest `config.applied`
event (its `config` field), so the console can tell two documents with the same number apart from the start.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_liveness_config_hash"
down_revision = "0002_tenant_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the liveness table and the hash columns, and fill the hashes of what is already there."""
    op.create_table(
        "branch_liveness",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("last_beat_at", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.String(40), nullable=False),
        sa.Column("interval_seconds", sa.Float, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("acked_seq", sa.BigInteger, nullable=False),
        sa.Column("lag_events", sa.BigInteger, nullable=False),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("beats", sa.BigInteger, nullable=False),
    )
    op.add_column("config_versions", sa.Column("config_hash", sa.String(64)))
    op.add_column("branches", sa.Column("config_hash", sa.String(64)))
    op.add_column("branches", sa.Column("config_rejected_hash", sa.String(64)))
    _fill_hashes()


def _fill_hashes() -> None:
    """Hashes of the documents already stored (the hash function is the contract's, which never changes)."""
    import msgspec

    from sync.contract_config import config_decoder, config_hash

    conn = op.get_bind()
    versions = conn.execute(sa.text("SELECT tenant_id, branch_id, version, doc FROM config_versions")).all()
    for tenant, branch, version, doc in versions:
        try:
            digest = config_hash(config_decoder.decode(doc.encode()))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        conn.execute(
            sa.text(
                "UPDATE config_versions SET config_hash = :h WHERE tenant_id = :t AND branch_id = :b AND version = :v"
            ),
            {"h": digest, "t": tenant, "b": branch, "v": version},
        )
    newest = conn.execute(
        sa.text(
            "SELECT e.tenant_id, e.branch_id, e.body FROM events e WHERE e.type = 'config.applied' AND e.seq = ("
            "SELECT max(x.seq) FROM events x WHERE x.tenant_id = e.tenant_id AND x.branch_id = e.branch_id"
            " AND x.type = 'config.applied')"
        )
    ).all()
    for tenant, branch, body in newest:
        try:
            fields = msgspec.json.decode(body.encode() if isinstance(body, str) else body)
            document = config_decoder.decode(msgspec.json.encode(fields["config"]))
            digest = fields.get("config_hash") or config_hash(document)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
            continue
        conn.execute(
            sa.text("UPDATE branches SET config_hash = :h WHERE tenant_id = :t AND branch_id = :b"),
            {"h": digest, "t": tenant, "b": branch},
        )


def downgrade() -> None:
    """Drop what `upgrade` added."""
    op.drop_column("branches", "config_rejected_hash")
    op.drop_column("branches", "config_hash")
    op.drop_column("config_versions", "config_hash")
    op.drop_table("branch_liveness")
