-- StreamFlow schema 4 for TimescaleDB: alerts and their history (hub/alerts).
-- Plain tables, not hypertables: alerts are few, are updated in place, and
-- are looked up by id and fingerprint rather than by time ranges alone.
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- Ids sort by code point (COLLATE "C"), as in SQLite, so that both stores
-- page through alerts in the same order whatever the database's collation.
-- opened_at and last_seen_at are event times, updated_at and resolved_at
-- wall times. details is json, not jsonb, because jsonb rewrites numbers
-- (2.6e16 comes back as the integer 26448651814720730) and refuses \u0000:
-- json keeps the text as written, so details come back as they went in, as
-- in SQLite. Nothing queries inside them.
CREATE TABLE alerts (
    id text COLLATE "C" PRIMARY KEY,
    fingerprint text NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    summary text NOT NULL,
    device text,
    gateway text,
    metric text,
    past boolean NOT NULL DEFAULT false,
    opened_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    resolved_at timestamptz,
    occurrences bigint NOT NULL DEFAULT 1,
    flapping boolean NOT NULL DEFAULT false,
    alert_group text,
    details json NOT NULL DEFAULT '{}'
);
-- At most one active alert per fingerprint, even with two processes racing:
-- the second INSERT ... ON CONFLICT waits for the first to commit, then
-- does nothing.
CREATE UNIQUE INDEX alerts_active_fingerprint ON alerts (fingerprint)
    WHERE state IN ('open', 'acknowledged');
-- Listing newest first with an (opened_at, id) cursor, overall and by device.
CREATE INDEX alerts_opened ON alerts (opened_at DESC, id DESC);
CREATE INDEX alerts_device_opened ON alerts (device, opened_at DESC, id DESC);

-- Every state change; seq increases across all alerts (the live stream's
-- event id).
CREATE TABLE alert_history (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id text COLLATE "C" NOT NULL REFERENCES alerts (id),
    at timestamptz NOT NULL,
    from_state text,
    to_state text NOT NULL,
    actor text NOT NULL,
    note text NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, seq);
