-- StreamFlow schema 5 for TimescaleDB: device logs (protocol/logs.py).
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- Log records per device, minute and level. Counted in Store.write's
-- transaction, beside the batch key, so that a batch sent twice counts once.
-- A hypertable, so that retention can drop whole chunks of it too.
CREATE TABLE log_counts (
    device text NOT NULL,
    bucket timestamptz NOT NULL,
    level text NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (device, level, bucket)
);
SELECT create_hypertable(
    'log_counts',
    by_range('bucket', INTERVAL '7 days'),
    create_default_indexes => false
);

-- The last records of each device, for inspection; the store keeps a bounded
-- number per device (TimescaleLogsMixin.logs_kept) and deletes older ones.
CREATE TABLE device_logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device text NOT NULL,
    ts timestamptz NOT NULL,
    level text NOT NULL,
    msg text NOT NULL,
    src text NOT NULL DEFAULT '',
    flags smallint NOT NULL DEFAULT 0,
    received_at timestamptz NOT NULL
);
CREATE INDEX device_logs_device ON device_logs (device, id);
