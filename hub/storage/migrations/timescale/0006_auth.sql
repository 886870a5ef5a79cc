-- StreamFlow schema 6 for TimescaleDB: users, integration clients, refresh
-- token families, failed sign-ins and the audit log (hub/security).
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

CREATE TABLE users (
    name text PRIMARY KEY,
    role text NOT NULL,
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- secret_hash is the SHA-256 of a generated 256-bit secret (never the secret).
CREATE TABLE clients (
    id text PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    secret_hash text NOT NULL,
    roles text[] NOT NULL,
    allow_networks cidr[] NOT NULL DEFAULT '{}',
    deny_networks cidr[] NOT NULL DEFAULT '{}',
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One sign-in; its access tokens carry the id (sid), so revoking the family
-- ends them at once.
CREATE TABLE token_families (
    id text PRIMARY KEY,
    subject text NOT NULL,
    scope text NOT NULL,
    client text,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX token_families_subject ON token_families (subject);

-- Only the SHA-256 of a refresh token is kept; used_at marks one rotated.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    family_id text NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE sign_in_failures (
    subject text,
    address text NOT NULL,  -- text: a Unix-socket peer has no IP
    at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (subject, at);
CREATE INDEX sign_in_failures_address ON sign_in_failures (address, at);

-- Append-only and queried by time: a hypertable, so that retention can drop
-- whole chunks. id orders records of the same microsecond (cursor paging).
CREATE TABLE audit_log (
    id bigserial NOT NULL,
    time timestamptz NOT NULL,
    kind text NOT NULL,
    request_id text NOT NULL,
    actor text,
    role text,
    client text,
    address text,
    method text,
    path text,
    query text,
    status smallint,
    duration_ms double precision,
    detail jsonb NOT NULL DEFAULT '{}'
);
SELECT create_hypertable(
    'audit_log',
    by_range('time', INTERVAL '7 days'),
    create_default_indexes => false
);
CREATE INDEX audit_log_time ON audit_log (time, id);
CREATE INDEX audit_log_actor ON audit_log (actor, time);
