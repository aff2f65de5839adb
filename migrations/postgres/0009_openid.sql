-- Tessera schema, version 9: OpenID Connect. As migrations/sqlite/0009_openid.sql; conventions
-- as in 0001_init.sql.
--
-- A client's ID-token and access-token settings (Salesforce's "Configure ID Token" and
-- "JWT-based access tokens"); existing clients get Salesforce's defaults.
ALTER TABLE clients ADD COLUMN id_token_validity_secs BIGINT NOT NULL DEFAULT 120;
-- Extra audiences, a JSON array of strings.
ALTER TABLE clients ADD COLUMN id_token_audiences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN id_token_standard_claims BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN echo_nonce_on_refresh BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN jwt_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;

-- What an ID token needs of the authorization, kept from the code to the grant and then for
-- every refresh: when the user logged in (`auth_time`, the same on every refresh) and the
-- request's `nonce`. NULL for rows from before this version.
ALTER TABLE auth_codes ADD COLUMN nonce TEXT;
ALTER TABLE auth_codes ADD COLUMN auth_time BIGINT;
ALTER TABLE grants ADD COLUMN auth_time BIGINT;
ALTER TABLE grants ADD COLUMN nonce TEXT;
