-- Tessera schema: a client's rotation audit mode (docs/controls.md, "Rotation audit mode").
-- Conventions as in 0001_init.sql.
--
-- Off for existing clients: reuse of a rotated-out token keeps revoking its family until an
-- administrator switches a client to `rotation = audit`. Meaningful only while
-- rotate_refresh_tokens is on (the settings clear it when rotation is turned off).
ALTER TABLE clients ADD COLUMN rotation_audit INTEGER NOT NULL DEFAULT 0
    CHECK (rotation_audit IN (0, 1));
