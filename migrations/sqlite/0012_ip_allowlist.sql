-- Tessera schema, version 12: a client's refresh-token IP allowlist (Salesforce's "Refresh Token
-- IP allowlist"; docs/controls.md). Conventions as in 0001_init.sql.
--
-- The ranges in CIDR form, joined by commas, as tessera_core's IpAllowlist::to_stored writes
-- them (checked when written: at most 128, no host bits, /0 only on purpose). Empty, the value
-- every existing client gets: no restriction.
ALTER TABLE clients ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '';
