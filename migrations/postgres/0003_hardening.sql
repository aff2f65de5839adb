-- Tessera schema, version 3: hardening, as migrations/sqlite/0003_hardening.sql. Conventions as
-- in 0001_init.sql.

-- Where a security event came from: the source address (after trusted proxies) and the
-- request's User-Agent. NULL for events the server causes itself (housekeeping, admin).
ALTER TABLE events ADD COLUMN source TEXT;
ALTER TABLE events ADD COLUMN user_agent TEXT;

-- Usernames are case-insensitive, as Salesforce's: unique and looked up by `lower(username)`
-- (SQLite's NOCASE folds ASCII only; lower() folds by the database's locale, which agrees on
-- ASCII). A database that already holds two usernames differing only in case fails here, and
-- must be cleaned up by hand first. Named as SQLite's index, for operators of either.
CREATE UNIQUE INDEX users_by_username_nocase ON users (lower(username));

-- A code presented again after its redemption. An issuance still in flight from the first
-- presentation sees it and issues nothing (RFC 6749 §4.1.2: a code is used once).
ALTER TABLE auth_codes ADD COLUMN presented_again BOOLEAN NOT NULL DEFAULT FALSE;
