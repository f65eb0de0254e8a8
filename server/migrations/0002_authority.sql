-- Who may do what: the masked form of a previous value (so verifying it during
-- its grace period describes that value, not the new one), and indexes for
-- organisation tokens, which list tokens and read the audit log across projects.

ALTER TABLE tokens ADD COLUMN prev_masked TEXT;

CREATE INDEX tokens_by_creation ON tokens (created_at, id);
CREATE INDEX tokens_by_end ON tokens (revoked_at, expires_at);
CREATE INDEX audit_by_time ON audit_events (at, id);
CREATE INDEX audit_by_actor ON audit_events (actor, at, id);
