-- StreamFlow schema 2 for TimescaleDB: what the processors keep
-- (hub/processors): 1-minute rollups, rules and events.
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- Per series and minute: count, sum, min, max and the value with the newest
-- reading time. A row is always recomputed whole from the readings of its
-- minute (Store.refresh_rollups), so a refresh run twice changes nothing and
-- a late reading merges into the minute it belongs to. The Apache build has
-- no continuous aggregates: this table is their stand-in (DESIGN.md).
CREATE TABLE rollups_1m (
    series_id integer NOT NULL,
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    sum double precision NOT NULL,
    min double precision NOT NULL,
    max double precision NOT NULL,
    last double precision NOT NULL,
    last_ts timestamptz NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
-- Weekly chunks: a rollup row stands for up to 60 readings, and retention can
-- drop whole chunks here too.
SELECT create_hypertable(
    'rollups_1m',
    by_range('bucket', INTERVAL '7 days'),
    create_default_indexes => false
);

-- Rules the processors read (threshold rules; the monitor's later), each a
-- JSON spec validated by the processor of its kind.
CREATE TABLE rules (
    id text PRIMARY KEY,
    kind text NOT NULL,
    spec jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_kind ON rules (kind, id);

-- Processor events, keyed by an id derived from what they are about, so that
-- the same event stored twice keeps one row. ts is the reading time (event
-- time), detected_at when the processor saw it.
CREATE TABLE events (
    id text PRIMARY KEY,
    kind text NOT NULL,
    state text NOT NULL,
    device text NOT NULL,
    metric text NOT NULL,
    ts timestamptz NOT NULL,
    value double precision,
    severity text NOT NULL,
    rule text NOT NULL DEFAULT '',
    past boolean NOT NULL DEFAULT false,
    details jsonb NOT NULL DEFAULT '{}',
    detected_at timestamptz NOT NULL
);
CREATE INDEX events_device_ts ON events (device, ts);
CREATE INDEX events_ts ON events (ts);
