-- Tessera schema, version 5: what a refresh writes, cut to its table rows. As
-- migrations/sqlite/0005_lean_refresh.sql; conventions as in 0001_init.sql.
--
-- Every refresh appends an audit event. Of the event indexes, the one by grant put each event
-- on a page of its own (grants are many), and the one by time duplicated the id order; both are
-- gone. A grant's events are found through its user's index (a user has a handful of grants);
-- housekeeping deletes the oldest events by id, which follows time.
DROP INDEX events_by_grant;
DROP INDEX events_by_time;

-- A rotation's successor pair is derived from the presented token under the server key, so a
-- replay inside the retry window rebuilds it: no sealed copy is kept on the grant any more, and
-- no index follows rotation times. Sealed copies written by earlier versions go; a replay of one
-- of those families inside its window is answered "already being processed", never taken for
-- reuse. (The column stays, always NULL, as on SQLite.)
UPDATE grants SET sealed_successor = NULL WHERE sealed_successor IS NOT NULL;
DROP INDEX grants_by_rotation;
