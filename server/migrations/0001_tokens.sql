-- One schema for SQLite and PostgreSQL: only portable types (TEXT, BIGINT),
-- timestamps as microseconds since the Unix epoch, lists and maps as JSON text.

CREATE TABLE tokens (
    id               TEXT PRIMARY KEY,
    project          TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT,
    role             TEXT,
    scopes           TEXT NOT NULL,
    resources        TEXT NOT NULL,
    labels           TEXT NOT NULL,
    secret_hash      TEXT NOT NULL UNIQUE,
    masked           TEXT NOT NULL,
    prev_hash        TEXT UNIQUE,
    prev_valid_until BIGINT,
    lifetime_us      BIGINT,
    expires_at       BIGINT,
    revoked_at       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    regenerated_at   BIGINT,
    generation       BIGINT NOT NULL DEFAULT 0,
    created_by       TEXT,
    create_key       TEXT,
    create_digest    TEXT,
    regen_key        TEXT,
    regen_digest     TEXT
);

CREATE INDEX tokens_by_project ON tokens (project, created_at, id);
CREATE UNIQUE INDEX tokens_by_create_key ON tokens (project, create_key);

CREATE TABLE token_labels (
    token_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (token_id, key)
);

CREATE INDEX token_labels_by_pair ON token_labels (key, value);

CREATE TABLE audit_events (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    project  TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    token_id TEXT,
    detail   TEXT NOT NULL
);

CREATE INDEX audit_by_project ON audit_events (project, at, id);
CREATE INDEX audit_by_token ON audit_events (token_id, at, id);
