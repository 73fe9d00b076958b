"""Fixtures of the replication tests: the cloud store (SQLite and a throwaway PostgreSQL) and a real nats-server."""

from tests.cloud.conftest import nats_server, postgres, store_url

__all__ = ["nats_server", "postgres", "store_url"]
