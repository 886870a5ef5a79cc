-- StreamFlow schema 2 for SQLite: what the processors keep (hub/processors),
-- the tables of the TimescaleDB schema with times as INTEGER epoch
-- microseconds (UTC) and JSON as TEXT.
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- Per series and minute; a row is always recomputed whole from the readings
-- of its minute (see the TimescaleDB migration). Values have no declared
-- type, like readings.value, so that doubles come back exactly.
CREATE TABLE rollups_1m (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    sum NOT NULL,
    min NOT NULL,
    max NOT NULL,
    last NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rules_kind ON rules (kind, id);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value,
    severity TEXT NOT NULL,
    rule TEXT NOT NULL DEFAULT '',
    past INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}',
    detected_at INTEGER NOT NULL
);
CREATE INDEX events_device_ts ON events (device, ts);
CREATE INDEX events_ts ON events (ts);
