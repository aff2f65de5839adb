-- Tessera schema, version 11: a client's refresh-token controls (Salesforce's; docs/controls.md).
-- As migrations/sqlite/0011_controls.sql; conventions as in 0001_init.sql.
--
-- Every control is off for existing clients: nothing changes for them until an administrator
-- says so. idle_cap_secs NULL: no idle-limit cap.
ALTER TABLE clients ADD COLUMN pkce_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN rotation_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN idle_cap_secs BIGINT CHECK (idle_cap_secs > 0);
ALTER TABLE clients ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT FALSE;
