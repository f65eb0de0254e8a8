-- Web dashboard sessions, shared by every replica. The session id itself is
-- never stored: `id_hash` is its SHA-256. `token_hash` is the hash of the
-- token that signed in (the same hash `tokens` keeps), so each request
-- re-checks that token through the verifier; the value is never stored.
-- Portable types only, as in 0001.

CREATE TABLE ui_sessions (
    id_hash      TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX ui_sessions_by_last_seen ON ui_sessions (last_seen_at);

-- Forms whose answer shows a value once (create, regenerate) carry a random
-- id, recorded here (hashed) when the form is used: a reload that posts the
-- same form again is answered "already done" instead of issuing another value.
CREATE TABLE ui_used_forms (
    id_hash TEXT PRIMARY KEY,
    used_at BIGINT NOT NULL
);

CREATE INDEX ui_used_forms_by_time ON ui_used_forms (used_at);
