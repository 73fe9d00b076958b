"""The releases area's tables, on the hub's one `metadata` (created by migration `0009_releases`).

`releases` holds each signed bundle the hub registered (platform-wide: software is not a tenant's); `release_rollouts`
says which version each branch should run and in which wave (canary first, then the rest); `release_reports` is the
append-only log of what appliances reported (running, rolled back, refused) — the console's versions and failures."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("manifest", sa.Text, nullable=False),  # the exact signed bytes (JSON)
    sa.Column("signature", sa.String(200), nullable=False),  # Ed25519, base64
    sa.Column("bundle_dir", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

release_rollouts = sa.Table(
    "release_rollouts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("wave", sa.String(16), nullable=False),  # "canary" or "rest"
    sa.Column("published_at", sa.String(40), nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
)

release_reports = sa.Table(
    "release_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),  # the version offered
    sa.Column("status", sa.String(16), nullable=False),  # running, rolled_back, refused
    sa.Column("running", sa.String(64), nullable=False),  # what runs afterwards
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("reported_at", sa.String(40), nullable=False),
)
sa.Index("release_reports_branch", release_reports.c.tenant_id, release_reports.c.branch_id, release_reports.c.id)

TABLES = (releases, release_rollouts, release_reports)
__all__ = ["TABLES", "metadata", "release_reports", "release_rollouts", "releases"]
