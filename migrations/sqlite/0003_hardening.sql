-- Tessera schema, version 3: hardening. Conventions as in 0001_init.sql.

-- Where a security event came from: the source address (after trusted proxies) and the
-- request's User-Agent. NULL for events the server causes itself (housekeeping, admin).
ALTER TABLE events ADD COLUMN source TEXT;
ALTER TABLE events ADD COLUMN user_agent TEXT;

-- Usernames are case-insensitive, as Salesforce's: unique and looked up under NOCASE (ASCII
-- case folding). A database that already holds two usernames differing only in case fails
-- here, and must be cleaned up by hand first.
CREATE UNIQUE INDEX users_by_username_nocase ON users (username COLLATE NOCASE);

-- A code presented again after its redemption. An issuance still in flight from the first
-- presentation sees it and issues nothing (RFC 6749 §4.1.2: a code is used once).
ALTER TABLE auth_codes ADD COLUMN presented_again INTEGER NOT NULL DEFAULT 0
    CHECK (presented_again IN (0, 1));
