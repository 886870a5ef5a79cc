-- StreamFlow schema 1 for TimescaleDB (hub/storage/timescale.py).
-- Applied in one transaction by hub/storage/_migrations.py, which also keeps
-- the schema_migrations table; never edit a released migration, add one.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- A series is one device's metric; readings refer to it by a small integer,
-- which keeps the hypertable narrow (FIGURES.md: text keys cost a quarter).
CREATE TABLE series (
    id serial PRIMARY KEY,
    device text NOT NULL,
    metric text NOT NULL,
    unit text NOT NULL DEFAULT '',
    UNIQUE (device, metric)
);

CREATE TABLE readings (
    ts timestamptz NOT NULL,
    series_id integer NOT NULL,
    value double precision NOT NULL,
    flags smallint NOT NULL DEFAULT 0
);
-- No default ts index: every query goes through (series_id, ts), and retention
-- drops whole chunks, which needs no index.
SELECT create_hypertable(
    'readings',
    by_range('ts', INTERVAL '1 day'),
    create_default_indexes => false
);
-- The (series, ts) idempotency key; it includes ts, as a hypertable needs.
CREATE UNIQUE INDEX readings_series_ts ON readings (series_id, ts);

-- The (gateway, seq) idempotency key, written in the transaction that stores
-- the batch's readings.
CREATE TABLE batches (
    gateway text NOT NULL,
    seq bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    n integer NOT NULL,
    PRIMARY KEY (gateway, seq)
);

-- Each series' reading with the newest reading time (not the last arrival).
CREATE TABLE latest (
    series_id integer PRIMARY KEY,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    flags smallint NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id text PRIMARY KEY,
    gateway text,
    name text,
    mqtt_topic text UNIQUE,
    tags jsonb NOT NULL DEFAULT '{}',
    expected_interval_s double precision,
    first_seen timestamptz,
    last_seen timestamptz,
    online boolean NOT NULL DEFAULT false
);
CREATE INDEX devices_gateway ON devices (gateway);

CREATE TABLE gateways (
    id text PRIMARY KEY,
    status text NOT NULL DEFAULT 'unknown',
    agent text NOT NULL DEFAULT '',
    first_seen timestamptz,
    last_seen timestamptz,
    buffer_readings bigint NOT NULL DEFAULT 0,
    buffer_bytes bigint NOT NULL DEFAULT 0,
    -- The edge's cumulative drop counters as last reported, by reason.
    dropped jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic text NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL DEFAULT '',
    gateway text,
    device text
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);

-- Loss accounting per hour of receive time, for a device and for its gateway.
CREATE TABLE accounting (
    bucket timestamptz NOT NULL,
    scope text NOT NULL CHECK (scope IN ('device', 'gateway')),
    ident text NOT NULL,
    kind text NOT NULL
        CHECK (kind IN ('received', 'duplicate', 'rejected', 'dropped', 'notice')),
    reason text NOT NULL DEFAULT '',
    n bigint NOT NULL,
    PRIMARY KEY (bucket, scope, ident, kind, reason)
);
CREATE INDEX accounting_ident ON accounting (scope, ident, bucket);
