//! The store conformance suite on SQLite, and what only this backend has to show: its file
//! survives a crash, holds no token in clear, group commit batches, and `open` takes the
//! locations it documents.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tessera_core::store::prelude::*;
use tessera_core::store::{ClientPurge, Issuance, PurgePlan, RefreshOutcome};
use tessera_core::time::Timestamp;
use tessera_store_conformance::{self as conformance, hash, World, T0};
use tessera_store_sqlite::{SqliteStore, SCHEMA_VERSION};

/// A store on a new file in a temporary directory, deleted with the directory.
fn open_fresh() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&db_path(&dir).display().to_string()).expect("open");
    (store, dir)
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("tessera.db")
}

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let (store, dir) = open_fresh();
    (Arc::new(store), dir)
}

tessera_store_conformance::store_conformance_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db_path(&dir).display());
    conformance::data_survives_reopen(|| {
        let url = url.clone();
        async move { Arc::new(SqliteStore::open(&url).expect("open")) as Arc<dyn Store> }
    })
    .await;
}

/// Where `crash_child` writes; set only in the child process.
const CRASH_DB: &str = "TESSERA_STORE_SQLITE_CRASH_DB";

/// Not a behaviour of its own: the process `acknowledged_writes_survive_a_crash` kills. Does
/// nothing unless started by it.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_DB) else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    World::create(&store).await.issue("grant-1").await;
    // Die at once: no destructor, no close, no checkpoint. Only what was committed remains.
    std::process::abort();
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--test-threads=1"])
        .env(CRASH_DB, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");

    let store = SqliteStore::open(&path.display().to_string()).unwrap();
    let family = store
        .family("grant-1")
        .await
        .unwrap()
        .expect("the acknowledged grant is there");
    assert_eq!(family.current, Some(hash("grant-1/rt0")));
    assert_eq!(family.grant.created_at, T0);
}

/// Every file of the database: the main file and, while open, its WAL.
fn database_bytes(dir: &TempDir) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tessera.db")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_holds_no_token_or_secret_in_clear() {
    const REFRESH: &str = "5Aep861ThisRefreshTokenMustNeverBeWrittenAnywhere";
    const SUCCESSOR: &str = "5Aep861ThisRotatedRefreshTokenMustNeverBeWrittenEither";
    const CODE: &str = "aPrxThisAuthorizationCodeMustNeverBeWrittenAnywhere";
    let (store, dir) = fresh().await;
    let world = World::create(&store).await;
    let code = world.code(CODE, &world.client);
    store.insert_code(&code).await.unwrap();
    let issuance = Issuance {
        refresh_token_hash: Some(hash(REFRESH)),
        code_hash: Some(code.code_hash),
        ..world.issuance_at("grant-1", &world.client, true, T0)
    };
    conformance::issued(&store, &issuance).await;
    world
        .commit(&issuance.grant, REFRESH, Some(SUCCESSOR), T0.plus_secs(60))
        .await;

    let secrets = [REFRESH, SUCCESSOR, CODE, "secret of app-one"];
    // While open (the rows are in the WAL) and after closing (checkpointed into the main file).
    let open = database_bytes(&dir);
    let username = world.user.username.clone();
    drop((world, store));
    let closed = database_bytes(&dir);
    for bytes in [open, closed] {
        for secret in secrets {
            assert!(
                !holds(&bytes, secret.as_bytes()),
                "{secret:?} is stored in clear"
            );
        }
        // The search does find what is there: the hashes, and plain text such as the username.
        assert!(holds(&bytes, &hash(REFRESH)));
        assert!(holds(&bytes, &hash(SUCCESSOR)));
        assert!(holds(&bytes, username.as_bytes()));
    }
}

/// Holds SQLite's write lock from another connection, as another process would.
fn lock_writes(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_answers_many_writes_with_few_commits() {
    const WRITES: usize = 200;
    let (store, dir) = open_fresh();
    let store = Arc::new(store);
    let world = World::create(&(Arc::clone(&store) as Arc<dyn Store>)).await;
    let before = store.write_stats();

    // With the lock held elsewhere the writes queue up behind the first one, as under load.
    let lock = lock_writes(&db_path(&dir));
    let tasks: Vec<_> = (0..WRITES)
        .map(|n| {
            let note = conformance::note(&format!("002{n:012}AAA"), &world.user.id, T0);
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert_note(&note).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reads do not wait for writers (WAL).
    assert_eq!(store.default_org().await.unwrap(), Some(world.org.clone()));
    lock.execute_batch("ROLLBACK").unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let after = store.write_stats();
    let (commits, jobs) = (after.commits - before.commits, after.jobs - before.jobs);
    assert_eq!(jobs, WRITES as u64);
    assert!(
        commits < WRITES as u64 / 10,
        "{commits} commits for {jobs} writes"
    );
    assert_eq!(
        store.list_notes(&world.user.id, 1000).await.unwrap().len(),
        WRITES
    );
}

#[tokio::test]
async fn opening_sets_wal_mode_the_schema_version_and_owner_only_permissions() {
    let dir = tempfile::tempdir().unwrap();
    // Parent directories are created.
    let path = dir.path().join("nested/deeper/tessera.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).unwrap();
    assert_eq!(store.path(), path);
    drop(store);
    // Opening again migrates nothing and keeps the data.
    drop(SqliteStore::open(&path.display().to_string()).unwrap());

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_is_one_database_for_all_its_connections_and_vanishes_on_drop() {
    let store = SqliteStore::open("sqlite::memory:").unwrap();
    let path = store.path().to_owned();
    // Written by the writer thread, read back through the reader pool.
    let org = conformance::org("00D000000000001AAA");
    store.insert_org(&org).await.unwrap();
    assert_eq!(store.default_org().await.unwrap(), Some(org));
    let other = SqliteStore::open("sqlite::memory:").unwrap();
    assert_eq!(other.default_org().await.unwrap(), None);
    drop(store);
    assert!(!path.exists());
}

/// The database does not grow without bound: under steady rotating refresh traffic (every
/// family rotating every 10 s, each rotation with its audit event) with a purge every minute, a
/// family stays one row, and events what the retention keeps. The counts are printed (`--nocapture`) as the
/// measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_rotation_with_a_purge_every_minute_keeps_the_tables_bounded() {
    const FAMILIES: u64 = 50;
    const ROTATIONS: u64 = 40;
    const STEP_SECS: u64 = 10;
    const PURGE_EVERY_SECS: u64 = 60;
    const EVENT_RETENTION_SECS: u64 = 120;
    let (store, dir) = fresh().await;
    let world = World::create(&store).await;
    let family = |n: u64, name: &str| format!("f{n}/{name}");
    let mut grants = Vec::new();
    for n in 0..FAMILIES {
        let issuance = world.issuance_at(&format!("f{n}"), &world.client, true, T0);
        conformance::issued(&store, &issuance).await;
        grants.push(issuance.grant);
    }
    let mut next_purge = T0.plus_secs(PURGE_EVERY_SECS);
    let mut sizes = Vec::new();
    for round in 1..=ROTATIONS {
        // Mid-step, so that no rotation falls on a purge's cut-off.
        let now = T0.plus_secs(round * STEP_SECS - STEP_SECS / 2);
        let commits: Vec<_> = grants
            .iter()
            .enumerate()
            .map(|(n, grant)| {
                let n = n as u64;
                let commit = world.refresh(
                    grant,
                    &family(n, &format!("rt{}", round - 1)),
                    Some(&family(n, &format!("rt{round}"))),
                    now,
                );
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.commit_refresh(&commit).await })
            })
            .collect();
        for commit in commits {
            assert_eq!(commit.await.unwrap().unwrap(), RefreshOutcome::Committed);
        }
        let now = T0.plus_secs(round * STEP_SECS);
        if now < next_purge {
            continue;
        }
        next_purge = now.plus_secs(PURGE_EVERY_SECS);
        let plan = PurgePlan {
            batch: u32::MAX,
            access_expired_before: now,
            codes_expired_before: now,
            revoked_before: now,
            events_before: Timestamp(now.0 - EVENT_RETENTION_SECS as i64 * 1000),
            idle_expired_before: now,
            changes_before: now,
            dpop_proofs_expired_before: now,
            clients: vec![ClientPurge {
                client_id: world.client.client_id.clone(),
                created_before: None,
                access_only_created_before: now,
            }],
        };
        let purged = store.purge(&plan).await.unwrap();
        assert!(purged.complete);
        let after = conformance::row_counts(&store).await;
        let bytes: u64 = ["tessera.db", "tessera.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum();
        eprintln!(
            "growth: t={:>3}s purged {purged:?}; now grants={} events={} database {} KiB",
            round * STEP_SECS,
            after["grants"],
            after["events"],
            bytes / 1024,
        );
        sizes.push(after["events"]);
        assert_eq!(after["grants"], FAMILIES);
        assert!(after["events"] <= FAMILIES * (1 + EVENT_RETENTION_SECS / STEP_SECS));
    }
    // Every family still works from its current token, its old ones rotated out.
    for (n, grant) in grants.iter().enumerate() {
        let f = world.family(&grant.id).await;
        assert_eq!(
            f.current,
            Some(hash(&family(n as u64, &format!("rt{ROTATIONS}"))))
        );
        assert_eq!(
            f.previous,
            Some(hash(&family(n as u64, &format!("rt{}", ROTATIONS - 1))))
        );
    }
}

/// A database of schema version 3, with families in the refresh-token table (a current token, a
/// rotated-out one with its sealed successor, a revoked family, a client with an idle limit), is
/// brought to version 4 with each family on its grant's row (and on to the current version, which
/// drops sealed successors: a rotation's pair is derived since version 5).
#[test]
fn a_version_3_database_is_migrated_to_families_on_grant_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (n, sql) in [
            include_str!("../../../migrations/sqlite/0001_init.sql"),
            include_str!("../../../migrations/sqlite/0002_lifecycle.sql"),
            include_str!("../../../migrations/sqlite/0003_hardening.sql"),
        ]
        .iter()
        .enumerate()
        {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", n + 1).unwrap();
        }
        let h = |n: u8| format!("x'{}'", format!("{n:02x}").repeat(32));
        let sql = format!(
            "INSERT INTO orgs VALUES ('00D', 'Org');
             INSERT INTO users VALUES ('005', '00D', 'ada', NULL, 'hash', 0, 0);
             INSERT INTO clients VALUES ('app', 'App', NULL, '[]', 'api', 'infinite', 60, 1, 0, 0, 60);
             INSERT INTO clients VALUES ('idle', 'Idle', NULL, '[]', 'api', 'specific_inactivity:2:HOURS', 60, 1, 0, 0, 60);
             INSERT INTO grants VALUES ('g1', 'app', '005', '00D', 'api', 0, 5000, NULL, 1);
             INSERT INTO grants VALUES ('g2', 'idle', '005', '00D', 'api', 0, 7000, NULL, 1);
             INSERT INTO grants VALUES ('g3', 'app', '005', '00D', 'api', 0, 0, 9000, 1);
             INSERT INTO refresh_tokens VALUES ({h1}, 'g1', 0, 5000, {h2}, x'AA');
             INSERT INTO refresh_tokens VALUES ({h2}, 'g1', 5000, NULL, NULL, NULL);
             INSERT INTO refresh_tokens VALUES ({h3}, 'g2', 0, NULL, NULL, NULL);
             INSERT INTO refresh_tokens VALUES ({h4}, 'g3', 0, 9000, NULL, NULL);",
            h1 = h(1),
            h2 = h(2),
            h3 = h(3),
            h4 = h(4),
        );
        conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{e}"));
    }
    let store = SqliteStore::open(&path.display().to_string()).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let row = |id: &str| {
        conn.query_row(
            "SELECT refresh_hash, previous_hash, rotated_at, sealed_successor, idle_expires_at \
             FROM grants WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, Option<Vec<u8>>>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            },
        )
        .unwrap()
    };
    assert_eq!(
        row("g1"),
        (Some(vec![2; 32]), Some(vec![1; 32]), Some(5000), None, None)
    );
    assert_eq!(
        row("g2"),
        (Some(vec![3; 32]), None, None, None, Some(7000 + 7_200_000))
    );
    assert_eq!(row("g3").0, None, "a revoked family has no current token");
    let legacy: i64 = conn
        .query_row("SELECT count(*) FROM legacy_refresh_tokens", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(legacy, 2);
    let revoked: String = conn
        .query_row(
            "SELECT key FROM changes WHERE kind = 'grant_revoked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(revoked, "g3");
}
