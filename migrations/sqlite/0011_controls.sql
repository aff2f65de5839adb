-- Tessera schema, version 11: a client's refresh-token controls (Salesforce's; docs/controls.md).
-- Conventions as in 0001_init.sql.
--
-- Every control is off for existing clients: nothing changes for them until an administrator
-- says so. idle_cap_secs NULL: no idle-limit cap.
ALTER TABLE clients ADD COLUMN pkce_required INTEGER NOT NULL DEFAULT 0
    CHECK (pkce_required IN (0, 1));
ALTER TABLE clients ADD COLUMN rotation_required INTEGER NOT NULL DEFAULT 0
    CHECK (rotation_required IN (0, 1));
ALTER TABLE clients ADD COLUMN idle_cap_secs INTEGER CHECK (idle_cap_secs > 0);
ALTER TABLE clients ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0
    CHECK (blocked IN (0, 1));
