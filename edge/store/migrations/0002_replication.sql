-- Replication to the cloud: the relay's durable cursor and the config versions received from the cloud.
CREATE TABLE replication_cursor (
    name TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL,
    acked_at TEXT NOT NULL
);
CREATE TABLE cloud_config (
    key TEXT PRIMARY KEY,
    kv_revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    updated_at TEXT NOT NULL
);
