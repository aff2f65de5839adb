-- Tessera schema, version 4: a refresh-token family lives on its grant's row, access tokens are
-- verified from their own signed content, and a change feed carries revocations and client and
-- user changes to the caches of every process and node. As migrations/sqlite/0004_families.sql;
-- conventions as in 0001_init.sql.
--
-- A refresh then changes one row, found by its primary key (a refresh token names its grant
-- under the server key's signature), and touches no index unless its client has an idle limit:
-- the tables of one refresh token per rotation and one access token per issue, with their five
-- indexes, are gone from the hot path.

-- The family's state.
ALTER TABLE grants ADD COLUMN refresh_hash BYTEA
    CHECK (refresh_hash IS NULL OR octet_length(refresh_hash) = 32);
-- The token the current one replaced, answerable inside the retry window with the sealed
-- successor (the current pair's response), and when it was rotated out.
ALTER TABLE grants ADD COLUMN previous_hash BYTEA
    CHECK (previous_hash IS NULL OR octet_length(previous_hash) = 32);
ALTER TABLE grants ADD COLUMN rotated_at BIGINT;
ALTER TABLE grants ADD COLUMN sealed_successor BYTEA;
-- When the grant expires from idleness; NULL unless its client's policy has an idle limit, so
-- that most refreshes write no index.
ALTER TABLE grants ADD COLUMN idle_expires_at BIGINT;

-- Each family's current token, and the one it replaced while its retry window may still hold.
-- (`LIMIT 1` where SQLite's row-value subquery takes the first row by itself.)
UPDATE grants SET refresh_hash = (
    SELECT r.token_hash FROM refresh_tokens r
    WHERE r.grant_id = grants.id AND r.used_at IS NULL
    ORDER BY r.created_at DESC LIMIT 1);
UPDATE grants SET (previous_hash, rotated_at, sealed_successor) = (
    SELECT r.token_hash, r.used_at, r.sealed_successor FROM refresh_tokens r
    WHERE r.replaced_by = grants.refresh_hash AND r.sealed_successor IS NOT NULL
    ORDER BY r.used_at DESC LIMIT 1)
WHERE refresh_hash IS NOT NULL AND revoked_at IS NULL;

-- Idle expiry for the grants of clients with an inactivity policy
-- (`specific_inactivity:N:UNIT`): the later of the idle limit and the access-token lifetime.
-- An unknown unit leaves it NULL, as on SQLite (greatest() alone would ignore the NULL).
UPDATE grants SET idle_expires_at = (
    SELECT grants.last_used_at + 1000 * CASE WHEN idle.secs IS NULL THEN NULL
        ELSE greatest(c.access_token_ttl_secs, idle.secs) END
    FROM clients c,
    LATERAL (SELECT split_part(c.refresh_token_policy, ':', 2)::BIGINT
        * CASE split_part(c.refresh_token_policy, ':', 3)
            WHEN 'SECONDS' THEN 1 WHEN 'MINUTES' THEN 60 WHEN 'HOURS' THEN 3600
            WHEN 'DAYS' THEN 86400 WHEN 'MONTHS' THEN 2592000 END AS secs) idle
    WHERE c.client_id = grants.client_id
      AND c.refresh_token_policy LIKE 'specific_inactivity:%');

-- Tokens minted before refresh tokens named their grant are found by hash. Which ones those are
-- cannot be told here (telling needs the server key), so every current token is listed; a
-- signed one is never looked up here.
CREATE TABLE legacy_refresh_tokens (
    token_hash BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE
);
CREATE INDEX legacy_refresh_tokens_by_grant ON legacy_refresh_tokens (grant_id);
INSERT INTO legacy_refresh_tokens (token_hash, grant_id)
    SELECT token_hash, grant_id FROM refresh_tokens WHERE used_at IS NULL;

DROP TABLE refresh_tokens;

-- Housekeeping, without an index that every refresh would rewrite: idle grants by their idle
-- expiry, access-only grants (never refreshed) by creation, families past their retry window by
-- rotation, only while they hold a sealed successor.
DROP INDEX grants_by_client_use;
CREATE INDEX grants_by_idle_expiry ON grants (idle_expires_at) WHERE idle_expires_at IS NOT NULL;
CREATE INDEX grants_access_only ON grants (client_id, created_at) WHERE NOT has_refresh_token;
CREATE INDEX grants_by_rotation ON grants (client_id, rotated_at)
    WHERE sealed_successor IS NOT NULL;

-- The change feed: every revocation, and every change to a client or a user, in order. Caches
-- of other processes and nodes follow it; `until` is when an entry stops mattering (a
-- revocation, when the last access token it affects has expired). Its sequence is named, so
-- that the store can read the newest number ever given (`last_value`) after purges have
-- deleted the newest rows, as SQLite's AUTOINCREMENT keeps it in sqlite_sequence.
-- Appenders are serialized until commit by an advisory lock (src/lib.rs), so that a follower
-- reading `seq > last` never passes a smaller number that commits later.
CREATE TABLE changes (
    seq   BIGINT GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME changes_seq) PRIMARY KEY,
    -- ChangeKind::name()
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX changes_by_until ON changes (until);
-- Grants revoked in the last day: access tokens of theirs may still be unexpired.
INSERT INTO changes (kind, key, until)
    SELECT 'grant_revoked', id, revoked_at + 86400000 FROM grants
    WHERE revoked_at IS NOT NULL;
