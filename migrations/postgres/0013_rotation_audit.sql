-- Tessera schema: a client's rotation audit mode (docs/controls.md, "Rotation audit mode").
-- As migrations/sqlite/0013_rotation_audit.sql; conventions as in 0001_init.sql.
--
-- Off for existing clients: reuse of a rotated-out token keeps revoking its family until an
-- administrator switches a client to `rotation = audit`.
ALTER TABLE clients ADD COLUMN rotation_audit BOOLEAN NOT NULL DEFAULT FALSE;
