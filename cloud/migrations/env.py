"""Alembic's environment for the hub store: runs on the connection `cloud.store.upgrade_schema` hands it (inside
its transaction and lock), or on `sqlalchemy.url` when Alembic is driven some other way."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cloud.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # driven by the `alembic` tool with a URL: one engine, one transaction
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
