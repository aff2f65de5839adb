-- Tessera schema, version 9: OpenID Connect. Conventions as in 0001_init.sql.
--
-- A client's ID-token and access-token settings (Salesforce's "Configure ID Token" and
-- "JWT-based access tokens"); existing clients get Salesforce's defaults.
ALTER TABLE clients ADD COLUMN id_token_validity_secs INTEGER NOT NULL DEFAULT 120;
-- Extra audiences, a JSON array of strings.
ALTER TABLE clients ADD COLUMN id_token_audiences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN id_token_standard_claims INTEGER NOT NULL DEFAULT 0
    CHECK (id_token_standard_claims IN (0, 1));
ALTER TABLE clients ADD COLUMN echo_nonce_on_refresh INTEGER NOT NULL DEFAULT 0
    CHECK (echo_nonce_on_refresh IN (0, 1));
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN jwt_access_tokens INTEGER NOT NULL DEFAULT 0
    CHECK (jwt_access_tokens IN (0, 1));

-- What an ID token needs of the authorization, kept from the code to the grant and then for
-- every refresh: when the user logged in (`auth_time`, the same on every refresh) and the
-- request's `nonce`. NULL for rows from before this version.
ALTER TABLE auth_codes ADD COLUMN nonce TEXT;
ALTER TABLE auth_codes ADD COLUMN auth_time INTEGER;
ALTER TABLE grants ADD COLUMN auth_time INTEGER;
ALTER TABLE grants ADD COLUMN nonce TEXT;
