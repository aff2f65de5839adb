-- Tessera schema, version 6: the admin role. Conventions as in 0001_init.sql.
--
-- Users with it may log in to the admin console (`/admin`). Nobody has it after the upgrade:
-- an operator grants it with `tessera admin user grant-admin USER`.
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
