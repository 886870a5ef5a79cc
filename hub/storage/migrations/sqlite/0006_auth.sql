-- StreamFlow schema 6 for SQLite: users, integration clients, refresh token
-- families, failed sign-ins and the audit log (hub/security). Times are
-- INTEGER epoch microseconds (UTC), lists are JSON TEXT.
-- Applied in one transaction by hub/storage/_migrations.py; never edit a
-- released migration, add one.

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- secret_hash is the SHA-256 of a generated 256-bit secret (never the secret).
CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    allow_networks TEXT NOT NULL DEFAULT '[]',
    deny_networks TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One sign-in; its access tokens carry the id (sid), so revoking the family
-- ends them at once.
CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    client TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
);
CREATE INDEX token_families_subject ON token_families (subject);

-- Only the SHA-256 of a refresh token is kept; used_at marks one rotated.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE sign_in_failures (
    subject TEXT,
    address TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (subject, at);
CREATE INDEX sign_in_failures_address ON sign_in_failures (address, at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    actor TEXT,
    role TEXT,
    client TEXT,
    address TEXT,
    method TEXT,
    path TEXT,
    query TEXT,
    status INTEGER,
    duration_ms REAL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time ON audit_log (time, id);
CREATE INDEX audit_log_actor ON audit_log (actor, time);
