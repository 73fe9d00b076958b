"""SQLite persistence of the appliance: event log with hash chain, projections, idempotency keys, users."""
