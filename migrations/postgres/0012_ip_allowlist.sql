-- Tessera schema, version 12: a client's refresh-token IP allowlist (Salesforce's "Refresh Token
-- IP allowlist"; docs/controls.md). As migrations/sqlite/0012_ip_allowlist.sql; conventions as
-- in 0001_init.sql.
--
-- The ranges in CIDR form, joined by commas, as tessera_core's IpAllowlist::to_stored writes
-- them. Empty, the value every existing client gets: no restriction.
ALTER TABLE clients ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '';
