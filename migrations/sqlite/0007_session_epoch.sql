-- Tessera schema, version 7: browser sessions that can be ended. Conventions as in 0001_init.sql.
--
-- Every session cookie (the end user's and the admin console's) carries the epoch it was made
-- in, and only the user's current one is honoured. The server raises it on a password change,
-- a disable, a role change and a logout. Existing users start at 0; cookies made before the
-- upgrade carry no epoch and are refused, so everyone logs in once more.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
