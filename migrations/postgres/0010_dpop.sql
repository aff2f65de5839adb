-- Tessera schema, version 10: DPoP (RFC 9449; docs/dpop.md). As migrations/sqlite/0010_dpop.sql,
-- plus the table of seen proofs; conventions as in 0001_init.sql.
--
-- A client's DPoP posture ('off', 'allowed' or 'required') and whether its proofs need a
-- server nonce. Existing clients are 'off': nothing changes for them until an administrator
-- says so.
ALTER TABLE clients ADD COLUMN dpop_mode TEXT NOT NULL DEFAULT 'off'
    CHECK (dpop_mode IN ('off', 'allowed', 'required'));
ALTER TABLE clients ADD COLUMN dpop_require_nonce BOOLEAN NOT NULL DEFAULT FALSE;

-- The RFC 7638 thumbprint of the key a code's exchange must prove (the authorization
-- request's dpop_jkt), and the one a public client's grant is bound to: on the grant, so that
-- every rotated successor inherits it. NULL: not bound.
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT;
-- The thumbprint the last rotation's access token was bound to, written by the rotation's own
-- update, so that a replay inside the retry window rebuilds the identical pair.
ALTER TABLE grants ADD COLUMN rotated_jkt TEXT;

-- The DPoP proofs seen lately, shared by every node on this database, so that a proof
-- replayed to another node is refused (RFC 9449 §11.1). The key is SHA-256 of the proof's
-- replay key (client, normalised htu, jti); an entry lives as long as a proof's iat window
-- and housekeeping deletes it after. UNLOGGED: a replay cache must be fast, not durable —
-- no WAL write per proof; a crash empties the table, which forgets at most one iat window
-- (about a minute) of proofs, and a replica does not have it (a standby promoted after a
-- failover starts with it empty, the same minute).
CREATE UNLOGGED TABLE dpop_proofs (
    key        BYTEA NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expiry ON dpop_proofs (expires_at);
