-- StreamFlow schema 7 for TimescaleDB: MQTT broker credentials of gateways,
-- devices and the hub's own services (hub/security/broker_creds.py).
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

-- username is the broker login: the gateway's or device's id, or svc@<name>
-- for a service. One username is one principal, whatever its kind, so that a
-- device can never log in with a gateway's rights. secret_hash is Mosquitto's
-- $7$ PBKDF2-SHA512 form (never the secret), checked by both brokers.
-- revoked_at set: refused by the brokers until a new secret is issued.
CREATE TABLE broker_credentials (
    username text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('gateway', 'device', 'service')),
    ident text NOT NULL,
    secret_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    rotated_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX broker_credentials_kind ON broker_credentials (kind, ident);
