-- Tessera schema, version 2: the refresh-token lifecycle (retry window, approval limit, audit
-- events, housekeeping), as migrations/sqlite/0002_lifecycle.sql. Conventions as in
-- 0001_init.sql, which is never edited: databases exist that ran it.
--
-- Several indexes below are partial (`WHERE x IS NOT NULL`): the rows the hot path inserts
-- (a live token, a live grant) have NULL there, so those inserts never touch the index, and the
-- index holds only what housekeeping will look for.

-- How long a rotated-out refresh token may be replayed for the same successor (0: strict).
ALTER TABLE clients ADD COLUMN refresh_retry_window_secs BIGINT NOT NULL DEFAULT 60
    CHECK (refresh_retry_window_secs >= 0);

-- The successor's token response, sealed by the server (opaque here), kept on the rotated-out
-- token for replays inside the retry window; NULL once the successor is used.
ALTER TABLE refresh_tokens ADD COLUMN sealed_successor BYTEA;

-- A rotation closes the retry window of the presented token's predecessor: found by
-- `replaced_by`, and only rows still holding a sealed successor can need it.
CREATE INDEX refresh_tokens_by_successor ON refresh_tokens (replaced_by)
    WHERE sealed_successor IS NOT NULL;
-- Housekeeping: rotated-out (and revoked) refresh tokens past their retry window. Live tokens
-- (used_at NULL) are not in it.
CREATE INDEX refresh_tokens_by_use ON refresh_tokens (used_at) WHERE used_at IS NOT NULL;

-- Housekeeping: expired access tokens and codes, revoked grants.
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);
CREATE INDEX grants_by_revocation ON grants (revoked_at) WHERE revoked_at IS NOT NULL;

-- Housekeeping per client: grants idle past the policy (refresh-token grants and access-only
-- grants have different limits, hence has_refresh_token before last_used_at) and grants past
-- their lifetime. Both lead with client_id, so the first also serves what grants_by_client did
-- (the cascade from clients, revoking a client's grants).
CREATE INDEX grants_by_client_use ON grants (client_id, has_refresh_token, last_used_at);
CREATE INDEX grants_by_client_age ON grants (client_id, created_at);
DROP INDEX grants_by_client;

-- The audit trail: who, what, when, never a token. No foreign keys: events outlive the grants,
-- clients and users they mention. An identity column never hands out an id twice, even after
-- housekeeping has deleted the newest events. (Unlike SQLite's single writer, concurrent
-- transactions here may commit ids out of order: see the crate's documentation on following.)
CREATE TABLE events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    -- EventKind::name()
    kind      TEXT NOT NULL,
    client_id TEXT,
    user_id   TEXT,
    grant_id  TEXT,
    detail    TEXT NOT NULL
);
-- Each filter, followed in id order. SQLite's index on a rowid table ends with the rowid
-- implicitly; here the id is spelled out, so that `… = $n AND id > $m ORDER BY id LIMIT $k`
-- reads one range of the index.
CREATE INDEX events_by_user ON events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_client ON events (client_id, id) WHERE client_id IS NOT NULL;
CREATE INDEX events_by_grant ON events (grant_id, id) WHERE grant_id IS NOT NULL;
-- Housekeeping: events older than the retention.
CREATE INDEX events_by_time ON events (at);
