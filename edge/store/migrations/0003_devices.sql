-- Devices on the branch LAN (kiosks, displays, call buttons, LED displays): registry, pairing, presence, fleet config.
-- IF NOT EXISTS: migrate() numbers scripts by position, so this file must survive being re-run once 0002 lands.
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('kiosk', 'display', 'button', 'led')),
    name TEXT NOT NULL,
    area_id TEXT,
    counter_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    pairing_hash TEXT,
    pairing_expires_at TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    online INTEGER NOT NULL DEFAULT 0,
    last_seen TEXT,
    config_version INTEGER NOT NULL DEFAULT 0,
    applied_version INTEGER NOT NULL DEFAULT 0,
    last_good_version INTEGER NOT NULL DEFAULT 0,
    apply_error TEXT,
    created_at TEXT NOT NULL,
    paired_at TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_pairing ON devices (pairing_hash) WHERE pairing_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS device_configs (
    device_id TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (device_id, version)
);
