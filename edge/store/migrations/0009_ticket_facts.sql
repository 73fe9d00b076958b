-- One fact row per ticket for reports and KPIs (edge/analytics/facts.py), folded from the event log by
-- sync.kpi.fold_event and rebuilt from the log identically; `source` is what the events said.
CREATE TABLE ticket_facts (
    ticket_id TEXT PRIMARY KEY,
    sort_key TEXT NOT NULL,
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
    served_by TEXT,
    closed_date TEXT,
    fact BLOB NOT NULL,
    source BLOB NOT NULL
);
-- sort_key = business_date|created_at|ticket_id: creation order, and the export's keyset (pages by index).
CREATE INDEX ticket_facts_sort ON ticket_facts (sort_key);
CREATE INDEX ticket_facts_served_by ON ticket_facts (served_by, closed_date);
-- The ticket's CSV record (version 1, neutralised, times in the branch's zone) rendered for both separators,
-- clustered in creation order so an export reads pages in sequence and only concatenates (filters' columns beside).
CREATE TABLE ticket_fact_csv (
    sort_key TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE,
    service_id TEXT NOT NULL,
    counter_id TEXT,
    priority INTEGER NOT NULL,
    channel TEXT NOT NULL,
    csv_comma TEXT NOT NULL,
    csv_semicolon TEXT NOT NULL
) WITHOUT ROWID;
-- How far the fact projection has folded the log, and the configuration version in force at that point.
CREATE TABLE facts_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    config_version INTEGER
);
INSERT INTO facts_cursor (id, seq, config_version) VALUES (1, 0, NULL);
