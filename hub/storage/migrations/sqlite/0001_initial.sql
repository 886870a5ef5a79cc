-- StreamFlow schema 1 for SQLite (hub/storage/sqlite.py): the tables of the
-- TimescaleDB schema, with times as INTEGER epoch microseconds (UTC).
-- Applied in one transaction by hub/storage/_migrations.py, which also keeps
-- the schema_migrations table; never edit a released migration, add one.

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    UNIQUE (device, metric)
);

-- value has no declared type on purpose: with REAL affinity SQLite stores an
-- integral double as an integer and gives -0.0 back as 0.0; without affinity
-- it keeps the IEEE double exactly. The primary key is the (series, ts)
-- idempotency key and, without a rowid, also the order rows are kept in.
CREATE TABLE readings (
    ts INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    value NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

CREATE TABLE batches (
    gateway TEXT NOT NULL,
    seq INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (gateway, seq)
) WITHOUT ROWID;

CREATE TABLE latest (
    series_id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    value NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    gateway TEXT,
    name TEXT,
    mqtt_topic TEXT UNIQUE,
    tags TEXT NOT NULL DEFAULT '{}',
    expected_interval_s REAL,
    first_seen INTEGER,
    last_seen INTEGER,
    online INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_gateway ON devices (gateway);

CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'unknown',
    agent TEXT NOT NULL DEFAULT '',
    first_seen INTEGER,
    last_seen INTEGER,
    buffer_readings INTEGER NOT NULL DEFAULT 0,
    buffer_bytes INTEGER NOT NULL DEFAULT 0,
    dropped TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    gateway TEXT,
    device TEXT
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);

CREATE TABLE accounting (
    bucket INTEGER NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('device', 'gateway')),
    ident TEXT NOT NULL,
    kind TEXT NOT NULL
        CHECK (kind IN ('received', 'duplicate', 'rejected', 'dropped', 'notice')),
    reason TEXT NOT NULL DEFAULT '',
    n INTEGER NOT NULL,
    PRIMARY KEY (bucket, scope, ident, kind, reason)
) WITHOUT ROWID;
CREATE INDEX accounting_ident ON accounting (scope, ident, bucket);
