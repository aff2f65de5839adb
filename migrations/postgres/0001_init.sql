-- Tessera schema, version 1, on PostgreSQL. It means what migrations/sqlite/0001_init.sql means:
-- the same tables, columns, keys, cascades and indexes, in PostgreSQL's types.
--
-- Timestamps are BIGINT milliseconds since the Unix epoch (tessera_core::time::Timestamp), as on
-- SQLite, not TIMESTAMPTZ: the domain stores and compares one kind of time whatever the backend.
-- Tokens, codes and client secrets are stored only as their SHA-256: a 32-byte BYTEA.
-- Booleans are BOOLEAN. The version applied is kept in `schema_version`, which the store
-- creates (src/schema.rs), not here.
--
-- Whatever is issued to a client (codes, grants, tokens, approvals) goes with it: ON DELETE
-- CASCADE, with an index on every referencing column so that a cascade never scans a table.

CREATE TABLE orgs (
    id   TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    -- Creation order, which SQLite reads from its rowid: the default org is the first created.
    ord  BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id             TEXT NOT NULL PRIMARY KEY,
    name                  TEXT NOT NULL,
    -- NULL for public clients.
    secret_hash           BYTEA CHECK (secret_hash IS NULL OR octet_length(secret_hash) = 32),
    -- JSON array of strings (kept as TEXT, as on SQLite: it is read whole, never queried).
    redirect_uris         TEXT NOT NULL,
    -- Space-separated scope tokens.
    scopes                TEXT NOT NULL,
    -- infinite | zero | specific_inactivity:N:UNIT | specific_lifetime:N:UNIT
    refresh_token_policy  TEXT NOT NULL,
    access_token_ttl_secs BIGINT NOT NULL CHECK (access_token_ttl_secs >= 0),
    rotate_refresh_tokens BOOLEAN NOT NULL,
    allow_user_agent_flow BOOLEAN NOT NULL,
    created_at            BIGINT NOT NULL
);

-- Which scopes a user has approved for a client.
CREATE TABLE approvals (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX approvals_by_client ON approvals (client_id);

-- A grant is a family: the refresh tokens and access tokens issued from one approval.
CREATE TABLE grants (
    id                TEXT NOT NULL PRIMARY KEY,
    client_id         TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    scope             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT NOT NULL,
    revoked_at        BIGINT,
    has_refresh_token BOOLEAN NOT NULL
);
-- The live grants of one user for one client, oldest first (the approval limit).
CREATE INDEX grants_by_user_client ON grants (user_id, client_id, created_at);
CREATE INDEX grants_by_client ON grants (client_id);

CREATE TABLE auth_codes (
    code_hash      BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    -- PKCE S256 challenge, base64url without padding.
    code_challenge TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    -- What the code's first use issued, so that a second use can revoke it (RFC 6749 §4.1.2).
    grant_id       TEXT REFERENCES grants (id) ON DELETE SET NULL
);
CREATE INDEX auth_codes_by_client ON auth_codes (client_id);
CREATE INDEX auth_codes_by_user ON auth_codes (user_id);
CREATE INDEX auth_codes_by_grant ON auth_codes (grant_id);

CREATE TABLE refresh_tokens (
    token_hash  BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    grant_id    TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    -- Set when rotated out (or when its grant was revoked).
    used_at     BIGINT,
    -- The successor's hash: the rotation chain is kept. Not a foreign key, so that rotation can
    -- mark the presented token before its successor's row exists.
    replaced_by BYTEA CHECK (replaced_by IS NULL OR octet_length(replaced_by) = 32)
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);

-- client_id, user_id and org_id are copied from the grant so that validating a bearer token is
-- one primary-key lookup; they follow the grant through its foreign key.
CREATE TABLE access_tokens (
    token_hash BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    org_id     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);

-- The REST API's records (Salesforce's Note).
CREATE TABLE notes (
    id          TEXT NOT NULL PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    body        TEXT,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
CREATE INDEX notes_by_owner ON notes (owner_id, created_at);
