-- StreamFlow schema 4 for SQLite: alerts and their history (hub/alerts), the
-- tables of the TimescaleDB schema with times as INTEGER epoch microseconds
-- (UTC) and JSON as TEXT.
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- One row per alert, from when its condition began to its end. opened_at and
-- last_seen_at are event times, updated_at and resolved_at wall times.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    summary TEXT NOT NULL,
    device TEXT,
    gateway TEXT,
    metric TEXT,
    past INTEGER NOT NULL DEFAULT 0,
    opened_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    resolved_at INTEGER,
    occurrences INTEGER NOT NULL DEFAULT 1,
    flapping INTEGER NOT NULL DEFAULT 0,
    alert_group TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
-- At most one active alert per fingerprint, whoever opens or reopens it: the
-- monitor's "open unless active" is an INSERT ... ON CONFLICT on this index.
CREATE UNIQUE INDEX alerts_active_fingerprint ON alerts (fingerprint)
    WHERE state IN ('open', 'acknowledged');
-- Listing newest first with an (opened_at, id) cursor, overall and by device.
CREATE INDEX alerts_opened ON alerts (opened_at, id);
CREATE INDEX alerts_device_opened ON alerts (device, opened_at, id);

-- Every state change; seq never goes back or repeats (AUTOINCREMENT), as the
-- live stream resumes from it.
CREATE TABLE alert_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    at INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, seq);
