//! Migrations: the numbered SQL files of `migrations/postgres/`, applied in order at connect,
//! each in its own transaction, the version kept in the one-row table `schema_version` (SQLite
//! keeps it in `PRAGMA user_version`). Migration N means on PostgreSQL what SQLite's N means.

use deadpool_postgres::{Client, GenericClient};
use tessera_core::store::StoreError;

use crate::error::DbError;
use crate::rows::{self, optional};
use crate::sql;

/// Every migration, in order: the one at index `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_lifecycle.sql"),
    include_str!("../../../migrations/postgres/0003_hardening.sql"),
    include_str!("../../../migrations/postgres/0004_families.sql"),
    include_str!("../../../migrations/postgres/0005_lean_refresh.sql"),
    include_str!("../../../migrations/postgres/0006_admin_role.sql"),
    include_str!("../../../migrations/postgres/0007_session_epoch.sql"),
    include_str!("../../../migrations/postgres/0008_signing_keys.sql"),
    include_str!("../../../migrations/postgres/0009_openid.sql"),
    include_str!("../../../migrations/postgres/0010_dpop.sql"),
    include_str!("../../../migrations/postgres/0011_controls.sql"),
    include_str!("../../../migrations/postgres/0012_ip_allowlist.sql"),
    include_str!("../../../migrations/postgres/0013_rotation_audit.sql"),
    include_str!("../../../migrations/postgres/0014_usage.sql"),
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The advisory lock that serializes migrations across every process connecting to one
/// database (any constant will do, as long as nothing else in the database uses it; see
/// [`crate::FEED_LOCK`] for the other one). "Tessera" in ASCII, then 1.
pub(crate) const MIGRATION_LOCK: i64 = 0x5465_7373_6572_6101;

/// The version table, made on first connect (before any migration: it records them). The key
/// admits only TRUE: one row. Run at the start of every migration's transaction, where its
/// `IF NOT EXISTS` and the migrations' own would each send a NOTICE ("relation … already
/// exists, skipping") that the driver logs: the transaction asks for warnings and errors only,
/// so that a normal start logs none.
const VERSION_TABLE: &str = "\
    SET LOCAL client_min_messages = warning;
    CREATE TABLE IF NOT EXISTS schema_version (
        one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        version INTEGER NOT NULL
    );
    INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;";

/// Brings the database to [`SCHEMA_VERSION`]. Safe when several processes connect at once: each
/// migration's transaction first takes [`MIGRATION_LOCK`] and reads the version again, so that
/// one process applies it and the others find it applied. Refuses (`Internal`) a database whose
/// schema is newer than this build's: it would misread it.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = index as u32 + 1;
        let tx = client.transaction().await.map_err(DbError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(DbError::from)?;
        tx.batch_execute(VERSION_TABLE)
            .await
            .map_err(DbError::from)?;
        let current = version(&tx).await?;
        refuse_newer(current)?;
        if current >= target {
            tx.commit().await.map_err(DbError::from)?;
            continue;
        }
        // A migration may append to the change feed (0004 does): it follows the feed's rule.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&crate::FEED_LOCK])
            .await
            .map_err(DbError::from)?;
        tx.batch_execute(sql).await.map_err(DbError::from)?;
        let stored = i32::try_from(target)
            .map_err(|_| StoreError::Internal("schema version out of range".to_owned()))?;
        tx.execute("UPDATE schema_version SET version = $1", &[&stored])
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(version = target, "applied PostgreSQL migration");
    }
    refuse_newer(version(&*client).await?)
}

fn refuse_newer(current: u32) -> Result<(), StoreError> {
    if current > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "the database's schema is version {current}, newer than this build's {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// The applied version.
pub(crate) async fn version(client: &impl GenericClient) -> Result<u32, StoreError> {
    let version: Option<i32> = optional(client, sql::SCHEMA_VERSION_READ, &[], rows::first).await?;
    let version = version
        .ok_or_else(|| StoreError::Internal("the schema_version table is empty".to_owned()))?;
    u32::try_from(version)
        .map_err(|_| StoreError::Internal(format!("the schema version {version} is malformed")))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crate::PostgresStore;

    /// What the driver logs (through `log`), among it the server's notices.
    struct Logged(Mutex<Vec<String>>);

    impl log::Log for Logged {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }

        fn flush(&self) {}
    }

    static LOGGED: Logged = Logged(Mutex::new(Vec::new()));

    /// A new database was migrated with five `NOTICE: relation "schema_version" already exists,
    /// skipping` in the log, and every later start logged them again.
    #[tokio::test]
    async fn a_first_and_a_second_start_log_no_notice() {
        log::set_logger(&LOGGED).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        let Some(db) = tessera_testkit::postgres::TestDatabase::create_or_skip(
            "tessera_quiet_start",
            "the start-up notices test",
        )
        .await
        else {
            return;
        };
        for _ in 0..2 {
            drop(PostgresStore::connect(&db.url, 2).await.unwrap());
        }
        let logged = LOGGED.0.lock().unwrap().clone();
        let notices: Vec<&String> = logged.iter().filter(|l| l.contains("NOTICE")).collect();
        assert!(notices.is_empty(), "{notices:#?}");
    }
}
