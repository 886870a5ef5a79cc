-- StreamFlow schema 5 for SQLite: device logs (protocol/logs.py), the tables
-- of the TimescaleDB schema with times as INTEGER epoch microseconds (UTC).
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- Log records per device, minute and level. Counted in Store.write's
-- transaction, beside the batch key, so that a batch sent twice counts once.
CREATE TABLE log_counts (
    device TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    level TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (device, bucket, level)
) WITHOUT ROWID;

-- The last records of each device, for inspection; the store keeps a bounded
-- number per device (SQLiteLogsMixin.logs_kept) and deletes older ones.
CREATE TABLE device_logs (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    ts INTEGER NOT NULL,
    level TEXT NOT NULL,
    msg TEXT NOT NULL,
    src TEXT NOT NULL DEFAULT '',
    flags INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL
);
CREATE INDEX device_logs_device ON device_logs (device, id);
