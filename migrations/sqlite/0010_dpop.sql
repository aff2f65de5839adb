-- Tessera schema, version 10: DPoP (RFC 9449; docs/dpop.md). Conventions as in 0001_init.sql.
--
-- A client's DPoP posture ('off', 'allowed' or 'required') and whether its proofs need a
-- server nonce. Existing clients are 'off': nothing changes for them until an administrator
-- says so.
ALTER TABLE clients ADD COLUMN dpop_mode TEXT NOT NULL DEFAULT 'off'
    CHECK (dpop_mode IN ('off', 'allowed', 'required'));
ALTER TABLE clients ADD COLUMN dpop_require_nonce INTEGER NOT NULL DEFAULT 0
    CHECK (dpop_require_nonce IN (0, 1));

-- The RFC 7638 thumbprint of the key a code's exchange must prove (the authorization
-- request's dpop_jkt), and the one a public client's grant is bound to: on the grant, so that
-- every rotated successor inherits it. NULL: not bound.
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT;
-- The thumbprint the last rotation's access token was bound to, written by the rotation's own
-- update, so that a replay inside the retry window rebuilds the identical pair.
ALTER TABLE grants ADD COLUMN rotated_jkt TEXT;

-- No table of seen proofs: one SQLite file is one process's, whose proofs the server keeps
-- in memory.
