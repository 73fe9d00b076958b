-- The event log, projections, idempotency keys and users.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    ticket_id TEXT,
    request_id TEXT,
    actor TEXT NOT NULL,
    body BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX events_ticket ON events (ticket_id);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TABLE tickets (
    ticket_id TEXT PRIMARY KEY,
    ticket_number TEXT NOT NULL,
    service_id TEXT NOT NULL,
    status TEXT NOT NULL,
    business_date TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX tickets_status ON tickets (status, service_id);
CREATE INDEX tickets_day ON tickets (business_date, ticket_number);
CREATE TABLE counters (counter_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE config (version INTEGER PRIMARY KEY, seq INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response BLOB NOT NULL,
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'device')),
    counters TEXT NOT NULL DEFAULT '[]',
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
