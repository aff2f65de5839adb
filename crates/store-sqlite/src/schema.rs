//! Migrations: the numbered SQL files of `migrations/sqlite/`, applied in order at open, each in
//! its own transaction, the version kept in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};
use tessera_core::store::StoreError;

use crate::error::DbError;

/// Every migration, in order: the one at index `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_lifecycle.sql"),
    include_str!("../../../migrations/sqlite/0003_hardening.sql"),
    include_str!("../../../migrations/sqlite/0004_families.sql"),
    include_str!("../../../migrations/sqlite/0005_lean_refresh.sql"),
    include_str!("../../../migrations/sqlite/0006_admin_role.sql"),
    include_str!("../../../migrations/sqlite/0007_session_epoch.sql"),
    include_str!("../../../migrations/sqlite/0008_signing_keys.sql"),
    include_str!("../../../migrations/sqlite/0009_openid.sql"),
    include_str!("../../../migrations/sqlite/0010_dpop.sql"),
    include_str!("../../../migrations/sqlite/0011_controls.sql"),
    include_str!("../../../migrations/sqlite/0012_ip_allowlist.sql"),
    include_str!("../../../migrations/sqlite/0013_rotation_audit.sql"),
    include_str!("../../../migrations/sqlite/0014_usage.sql"),
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`]. Safe when several processes open the same file at
/// once: the version is read again inside each `BEGIN IMMEDIATE` transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = index as u32 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        let current = version(&tx)?;
        if current >= target {
            continue;
        }
        tx.execute_batch(sql).map_err(DbError::from)?;
        tx.pragma_update(None, "user_version", target)
            .map_err(DbError::from)?;
        tx.commit().map_err(DbError::from)?;
        tracing::info!(version = target, "applied SQLite migration");
    }
    let current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "the database's schema is version {current}, newer than this build's {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

fn version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(DbError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
    }

    /// A database created by an earlier build (version 1, with a client and a refresh token in
    /// it) is brought up to date: the client gets the default retry window, the token becomes its
    /// family's current one (found by its hash: it does not name its grant), and the events
    /// table exists.
    #[test]
    fn a_version_1_database_is_migrated_with_defaults() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs VALUES ('00D', 'Org');
             INSERT INTO users VALUES ('005', '00D', 'ada', NULL, 'hash', 0, 0);
             INSERT INTO clients VALUES ('app', 'App', NULL, '[]', 'api', 'infinite', 60, 1, 0, 0);
             INSERT INTO grants VALUES ('g', 'app', '005', '00D', 'api', 0, 0, NULL, 1);
             INSERT INTO refresh_tokens VALUES (zeroblob(32), 'g', 0, NULL, NULL);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        let window: i64 = conn
            .query_row("SELECT refresh_retry_window_secs FROM clients", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(window, 60);
        let (current, sealed): (Vec<u8>, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT refresh_hash, sealed_successor FROM grants WHERE id = 'g'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((current, sealed), (vec![0u8; 32], None));
        let counts: (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM legacy_refresh_tokens)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            counts,
            (0, 1),
            "no events yet; the unsigned token is found by its hash"
        );
    }

    /// Version 10 (DPoP) changes nothing for what was there: clients are `off`, needing no
    /// nonce, and no code or grant is bound.
    #[test]
    fn a_version_9_database_gets_dpop_off_and_nothing_bound() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..9] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs (id, name) VALUES ('00D', 'Org');
             INSERT INTO users (id, org_id, username, password_hash, disabled, created_at)
                 VALUES ('005', '00D', 'ada', 'hash', 0, 0);
             INSERT INTO clients (client_id, name, redirect_uris, scopes, refresh_token_policy,
                 access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, created_at)
                 VALUES ('app', 'App', '[]', 'api', 'infinite', 60, 1, 0, 0);
             INSERT INTO grants (id, client_id, user_id, org_id, scope, created_at, last_used_at,
                 has_refresh_token) VALUES ('g', 'app', '005', '00D', 'api', 0, 0, 1);
             INSERT INTO auth_codes (code_hash, client_id, user_id, redirect_uri, scope,
                 created_at, expires_at) VALUES (zeroblob(32), 'app', '005', 'https://a/cb',
                 'api', 0, 1);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let client: (String, bool) = conn
            .query_row(
                "SELECT dpop_mode, dpop_require_nonce FROM clients",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(client, ("off".to_owned(), false));
        let bindings: (Option<String>, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT g.dpop_jkt, g.rotated_jkt, c.dpop_jkt FROM grants g, auth_codes c",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(bindings, (None, None, None));
    }

    /// A database at `version` holding one client of that version's columns, migrated to the
    /// latest.
    fn migrated_with_a_client_from(version: usize) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        conn.execute_batch(
            "INSERT INTO clients (client_id, name, redirect_uris, scopes, refresh_token_policy,
                 access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, created_at)
                 VALUES ('app', 'App', '[]', 'api', 'infinite', 60, 1, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    /// Version 11 (the refresh-token controls) changes nothing for what was there: every
    /// control is off.
    #[test]
    fn a_version_10_database_gets_every_control_off() {
        let conn = migrated_with_a_client_from(10);

        let controls: (bool, bool, Option<i64>, bool) = conn
            .query_row(
                "SELECT pkce_required, rotation_required, idle_cap_secs, blocked FROM clients",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(controls, (false, false, None, false));
    }

    /// Migration 0013 (rotation audit mode) leaves every existing client out of audit mode:
    /// reuse keeps revoking until an administrator says otherwise.
    #[test]
    fn a_version_11_database_gets_rotation_audit_off() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..11] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 11).unwrap();
        conn.execute_batch(
            "INSERT INTO clients (client_id, name, redirect_uris, scopes, refresh_token_policy,
                 access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, created_at)
                 VALUES ('app', 'App', '[]', 'api', 'infinite', 60, 1, 0, 0);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let audit: bool = conn
            .query_row("SELECT rotation_audit FROM clients", [], |row| row.get(0))
            .unwrap();
        assert!(!audit);
        assert!(conn
            .execute("UPDATE clients SET rotation_audit = 2", [])
            .is_err());
    }

    /// The usage migration (0014) counts each existing grant's issuance as its one use, and
    /// the usage listing of an app is read through its index.
    #[test]
    fn a_version_11_database_gets_a_use_count_of_one_per_grant() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..11] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 11).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs (id, name) VALUES ('00D000000000001AAA', 'Org');
             INSERT INTO users (id, org_id, username, password_hash, disabled, created_at)
                 VALUES ('005000000000001AAA', '00D000000000001AAA', 'ada', 'x', 0, 0);
             INSERT INTO clients (client_id, name, redirect_uris, scopes, refresh_token_policy,
                 access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, created_at)
                 VALUES ('app', 'App', '[]', 'api', 'infinite', 60, 1, 0, 0);
             INSERT INTO grants (id, client_id, user_id, org_id, scope, created_at, last_used_at,
                 has_refresh_token)
                 VALUES ('g1', 'app', '005000000000001AAA', '00D000000000001AAA', 'api', 0, 0, 1);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let uses: i64 = conn
            .query_row("SELECT use_count FROM grants WHERE id = 'g1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(uses, 1);
        let plan: String = conn
            .query_row(
                &format!("EXPLAIN QUERY PLAN {}", crate::sql::USAGE_APP_USERS),
                rusqlite::params!["app", "", 0, 10],
                |row| row.get(3),
            )
            .unwrap();
        assert!(plan.contains("grants_by_client_user"), "{plan}");
    }

    /// Version 12 (the refresh-token IP allowlist) gives every existing client an empty list:
    /// no restriction.
    #[test]
    fn a_version_11_database_gets_an_empty_ip_allowlist() {
        let conn = migrated_with_a_client_from(11);

        let allowlist: String = conn
            .query_row("SELECT ip_allowlist FROM clients", [], |row| row.get(0))
            .unwrap();
        assert_eq!(allowlist, "");
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::Internal(_))));
    }
}
