"""The cloud store fixtures (SQLite and a throwaway PostgreSQL) for the replication tests as well."""

from tests.cloud.conftest import postgres, store_url

__all__ = ["postgres", "store_url"]
