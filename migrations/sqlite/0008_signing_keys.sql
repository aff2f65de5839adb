-- Tessera schema, version 8: the signing-key set (ID tokens, JWT access tokens) and its JWKS.
-- Conventions as in 0001_init.sql.
--
-- One row per key, never updated but for its retirement. The private key is PKCS#8 sealed
-- under the server key (XChaCha20-Poly1305: a 24-byte nonce, then the ciphertext, with the kid
-- as associated data): a dump of the database signs nothing without the server key.
CREATE TABLE signing_keys (
    kid         TEXT NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- From when the JWKS lists the key.
    publish_at  INTEGER NOT NULL,
    -- From when it may sign: one JWKS cache lifetime after publish_at (the first key at once).
    sign_from   INTEGER NOT NULL,
    -- From when it is neither listed nor used; NULL until retired.
    retire_at   INTEGER,
    private_key BLOB NOT NULL
);
