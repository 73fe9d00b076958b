-- Offline kiosk tickets the appliance refused at reconciliation (edge/offline_refused.py). The customer holds a
-- printed number the queue does not know: the row stays until staff issue a real ticket for them or dismiss it.
-- Not an event: a refusal changes no queue. One row per temporary id (the kiosk may send it again).
CREATE TABLE offline_refused (
    temp_id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    seq_no INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    service_id TEXT,
    service_names TEXT NOT NULL DEFAULT '{}',
    ticket_number TEXT,
    issued_at TEXT NOT NULL,
    lang TEXT,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    refused_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'issued', 'dismissed')),
    resolved_by TEXT,
    resolved_at TEXT,
    ticket_id TEXT,
    new_number TEXT
);
CREATE INDEX offline_refused_state ON offline_refused (state, refused_at);
