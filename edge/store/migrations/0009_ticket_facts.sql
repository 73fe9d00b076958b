-- One fact row per ticket for reports and KPIs (edge/analytics/facts.py), folded from the event log by
-- sync.kpi.fold_event and rebuilt from the log identically. `cells` holds the ticket's CSV record (version 1,
-- neutralised, times in the branch's zone) so an export only decodes and joins; `source` what the events said.
CREATE TABLE ticket_facts (
    ticket_id TEXT PRIMARY KEY,
    business_date TEXT,
    hour INTEGER,
    service_id TEXT NOT NULL,
    counter_id TEXT,
    priority INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT,
    wait_seconds REAL,
    service_seconds REAL,
    sla_met INTEGER,
    fact BLOB NOT NULL,
    cells BLOB NOT NULL,
    source BLOB NOT NULL
);
CREATE INDEX ticket_facts_day ON ticket_facts (business_date, created_at);
-- How far the fact projection has folded the log, and the configuration version in force at that point.
CREATE TABLE facts_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    config_version INTEGER
);
INSERT INTO facts_cursor (id, seq, config_version) VALUES (1, 0, NULL);
