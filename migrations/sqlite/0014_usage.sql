-- Tessera schema, version 14: OAuth Usage (docs/usage.md). Conventions as in 0001_init.sql.
--
-- A grant's use count: its issuance is its first use, and every refresh that answered tokens is
-- one more. Existing grants start at 1 (their issuance): their earlier refreshes were not
-- counted. The constant default adds the column without rewriting a row.
ALTER TABLE grants ADD COLUMN use_count INTEGER NOT NULL DEFAULT 1 CHECK (use_count >= 0);

-- An app's users in OAuth Usage: the live grants of one client grouped by user, paged by user id
-- (keyset), read in the index's order. Partial: revoked grants, kept a day until housekeeping
-- removes them, are never listed. Not covering on purpose: last_used_at and use_count change on
-- refreshes, and an index holding them would be one more page written per refresh.
CREATE INDEX grants_by_client_user ON grants (client_id, user_id) WHERE revoked_at IS NULL;
