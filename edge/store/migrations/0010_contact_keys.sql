-- Crypto-shredding (edge/pii.py): each ticket's contact key, outside the hash-chained log. A row is deleted (with
-- secure_delete on) when its retention period ends; the sealed contact in the log can then never be opened again.
CREATE TABLE contact_keys (
    ticket_id TEXT PRIMARY KEY,
    key BLOB NOT NULL,
    created_at TEXT NOT NULL,
    purge_after TEXT NOT NULL
);
CREATE INDEX contact_keys_purge ON contact_keys (purge_after);
