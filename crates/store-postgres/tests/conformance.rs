//! The store conformance suite on PostgreSQL, and what only this backend has to show: several
//! stores (processes, nodes) on one database see each other's writes and hear each other's
//! changes, the change feed is gap-free in commit order, migrations run once when several
//! processes start at once, and a database from an earlier version is migrated.
//!
//! Each test gets a database of its own, `tessera_test_<random hex>`, created on the server of
//! `TESSERA_TEST_POSTGRES_URL` (a `postgres://` URL; its database is where the others are
//! created from) or, when that is unset, `postgres://postgres@127.0.0.1:5432/postgres`, and
//! dropped when the test ends. When the variable is set and the server cannot be reached, every
//! test fails; when it is unset, every test says so loudly and passes without PostgreSQL.

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

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::model::ChangeKind;
use tessera_core::store::memory::MemoryStore;
use tessera_core::store::prelude::*;
use tessera_core::store::{ChangeNotice, StoreError};
use tessera_core::time::{Clock, SystemClock};
use tessera_store_conformance::{self as conformance, hash, World, T0};
use tessera_store_postgres::{PostgresStore, SCHEMA_VERSION};
use tessera_testkit::postgres::{self, TestDatabase};
use url::Url;

const POOL_SIZE: usize = 8;
/// How the store's listening connection names itself (`src/listener.rs`).
const LISTENER: &str = "tessera-listener";

/// A database of its own for one test, `tessera_test_<random hex>`, dropped when it is; `None`
/// (said loudly) when the server cannot be reached and was not required.
async fn test_database() -> Option<TestDatabase> {
    TestDatabase::create_or_skip(
        "tessera_test",
        "Every test of this file passes without PostgreSQL (a conformance behaviour runs \
         against the in-memory store instead).",
    )
    .await
}

/// What these tests open on their database.
trait Open {
    /// A client on this database, for what the store does not show.
    async fn admin(&self) -> tokio_postgres::Client;
    async fn connect(&self) -> PostgresStore;
}

impl Open for TestDatabase {
    async fn admin(&self) -> tokio_postgres::Client {
        postgres::connect(&self.url).await.unwrap()
    }

    async fn connect(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, POOL_SIZE).await.unwrap()
    }
}

/// A store on a new database, with the database's guard; the in-memory store when PostgreSQL
/// is not there and not required.
async fn fresh() -> (Arc<dyn Store>, Option<TestDatabase>) {
    let Some(database) = test_database().await else {
        return (Arc::new(MemoryStore::new()), None);
    };
    let store = database.connect().await;
    (Arc::new(store), Some(database))
}

tessera_store_conformance::store_conformance_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reconnecting() {
    let Some(database) = test_database().await else {
        return;
    };
    let url = database.url.clone();
    conformance::data_survives_reopen(|| {
        let url = url.clone();
        async move {
            Arc::new(PostgresStore::connect(&url, POOL_SIZE).await.unwrap()) as Arc<dyn Store>
        }
    })
    .await;
}

/// Waits until `count` stores listen to the change feed of `database`, then a little longer:
/// a store wakes its followers once right after it starts listening, and that wake-up must not
/// be taken for the one a test is waiting for.
async fn wait_for_listeners(database: &TestDatabase, count: i64) {
    let admin = database.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = $2 AND state = 'idle' \
                 AND query = 'LISTEN tessera_changes'",
                &[&database.name, &LISTENER],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{count} listeners never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Two stores on one database, as two nodes: a DPoP proof one of them has seen is a replay to
/// the other, and of two nodes remembering the same proof at once exactly one gets it as new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_seen_by_one_node_is_a_replay_to_another() {
    let Some(database) = test_database().await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(database.connect().await);
    let second: Arc<dyn Store> = Arc::new(database.connect().await);
    assert!(first.shares_dpop_proofs() && second.shares_dpop_proofs());
    let (now, expires) = (T0, T0.plus_secs(70));
    let proof = hash("app-one|https://as.example.com/token|jti-1");
    assert!(first
        .remember_dpop_proof(&proof, expires, now)
        .await
        .unwrap());
    assert!(!second
        .remember_dpop_proof(&proof, expires, now)
        .await
        .unwrap());
    assert!(!first
        .remember_dpop_proof(&proof, expires, now)
        .await
        .unwrap());

    for round in 0..20 {
        let key = hash(&format!(
            "app-one|https://as.example.com/token|race-{round}"
        ));
        let (a, b) = tokio::join!(
            first.remember_dpop_proof(&key, expires, now),
            second.remember_dpop_proof(&key, expires, now),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a ^ b,
            "round {round}: exactly one node sees it first ({a}, {b})"
        );
    }
    // A replay cache, not a record: no WAL write per proof.
    let persistence: i8 = database
        .admin()
        .await
        .query_one(
            "SELECT relpersistence FROM pg_class WHERE relname = 'dpop_proofs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(persistence as u8, b'u', "dpop_proofs is UNLOGGED");
}

/// Two stores on one database, as two server processes: each sees what the other wrote, and a
/// revocation by one wakes the other's change signal, whose feed then holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_see_each_others_writes_and_hear_each_others_changes() {
    let Some(database) = test_database().await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(database.connect().await);
    let second: Arc<dyn Store> = Arc::new(database.connect().await);
    let world = World::create(&first).await;
    let grant = world.issue("grant-1").await;
    assert_eq!(second.grant("grant-1").await.unwrap(), Some(grant));
    let note = conformance::note("002A", &world.user.id, T0);
    second.insert_note(&note).await.unwrap();
    assert_eq!(first.note("002A").await.unwrap(), Some(note));

    wait_for_listeners(&database, 2).await;
    let mut notices = second
        .change_notices()
        .expect("PostgreSQL pushes change notices");
    assert!(first
        .revoke_grant("grant-1", T0.plus_secs(1))
        .await
        .unwrap());
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("the second store hears of the first's revocation")
        .unwrap();
    let ChangeNotice::Entry(entry) = notice else {
        panic!("the notice carries its entry: {notice:?}");
    };
    assert_eq!(
        (entry.kind, entry.key.as_str()),
        (ChangeKind::GrantRevoked, "grant-1")
    );
    let changes = second.changes_since(0, 10).await.unwrap();
    let fed: Vec<(ChangeKind, &str)> = changes.iter().map(|c| (c.kind, c.key.as_str())).collect();
    assert_eq!(fed, [(ChangeKind::GrantRevoked, "grant-1")]);
    assert_eq!(changes[0], entry, "the notice is the feed's entry");
}

/// When its listening connection is lost, the store tells its followers to read the feed
/// (appends may have gone unannounced), listens again, and goes on passing entries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notices_outlive_their_connection() {
    let Some(database) = test_database().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(database.connect().await);
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    let mut notices = store.change_notices().unwrap();
    wait_for_listeners(&database, 1).await;

    let admin = database.admin().await;
    let terminated = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = $2",
            &[&database.name, &LISTENER],
        )
        .await
        .unwrap();
    assert_eq!(terminated.get::<_, i64>(0), 1);
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("losing the connection tells the followers")
        .unwrap();
    assert_eq!(
        notice,
        ChangeNotice::ReadFeed,
        "read the feed: appends went unannounced"
    );

    wait_for_listeners(&database, 1).await;
    assert!(store
        .revoke_grant("grant-1", T0.plus_secs(1))
        .await
        .unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let notice = tokio::time::timeout_at(deadline, notices.recv())
            .await
            .expect("notices flow again once listening again")
            .unwrap();
        if let ChangeNotice::Entry(entry) = notice {
            assert_eq!(entry.key, "grant-1");
            break;
        }
    }
}

/// Appends from two stores race while a follower reads the feed from where it left off: it
/// ends up with every entry. Sequence numbers are handed out at insert; without appends
/// serialized until commit, a smaller number committing after a larger one was read would be
/// skipped for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_the_feed_misses_nothing_appended_concurrently() {
    const GRANTS: usize = 120;
    let Some(database) = test_database().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(database.connect().await),
        Arc::new(database.connect().await),
    ];
    let world = World::create(&stores[0]).await;
    for n in 0..GRANTS {
        world.issue(&format!("grant-{n}")).await;
    }

    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let store = Arc::clone(&stores[1]);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.changes_since(last, 1000).await.unwrap();
                if finished && page.is_empty() {
                    return seen;
                }
                for change in page {
                    assert!(change.seq > last);
                    last = change.seq;
                    seen.push(change.seq);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..GRANTS)
        .map(|n| {
            let store = Arc::clone(&stores[n % 2]);
            tokio::spawn(async move {
                let grant_id = format!("grant-{n}");
                assert!(store
                    .revoke_grant(&grant_id, T0.plus_secs(1))
                    .await
                    .unwrap());
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = follower.await.unwrap();

    let all: Vec<i64> = stores[0]
        .changes_since(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(all.len(), GRANTS);
    assert_eq!(seen, all, "the follower skipped entries");
    let (_, newest) = stores[1].live_changes(T0).await.unwrap();
    assert_eq!(Some(&newest), all.last());
}

/// `ready` answers for a database at this build's schema, and only for one; a process of this
/// build refuses to start on a newer schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_at_this_builds_schema() {
    let Some(database) = test_database().await else {
        return;
    };
    let store = database.connect().await;
    store.ready().await.unwrap();
    assert!(store.database_time().await.unwrap().is_some());

    let newer = i32::try_from(SCHEMA_VERSION + 1).unwrap();
    database
        .admin()
        .await
        .execute("UPDATE schema_version SET version = $1", &[&newer])
        .await
        .unwrap();
    assert!(matches!(
        store.ready().await,
        Err(StoreError::Unavailable(_))
    ));
    let refused = PostgresStore::connect(&database.url, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
}

/// The pool's gauges, read when metrics are rendered: after a query the pool holds a
/// connection, idle again, and nobody waits for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_gauges_show_its_connections() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tessera_core::operations::metrics::{
        POOL_AVAILABLE, POOL_SIZE as POOL_CONNECTIONS, POOL_WAITING,
    };
    let Some(database) = test_database().await else {
        return;
    };
    let store = database.connect().await;
    store.ready().await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || store.publish_gauges());
    let gauges: std::collections::HashMap<String, f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(value) => Some((key.key().name().to_owned(), value.into_inner())),
            _ => None,
        })
        .collect();
    assert!(gauges[POOL_CONNECTIONS] >= 1.0, "{gauges:?}");
    assert!(gauges[POOL_CONNECTIONS] <= POOL_SIZE as f64, "{gauges:?}");
    assert_eq!(
        gauges[POOL_AVAILABLE], gauges[POOL_CONNECTIONS],
        "{gauges:?}"
    );
    assert_eq!(gauges[POOL_WAITING], 0.0, "{gauges:?}");
}

/// The database's clock agrees with this machine's (they are the same machine here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_time_is_the_servers_clock_in_milliseconds() {
    let Some(database) = test_database().await else {
        return;
    };
    let store = database.connect().await;
    let before = SystemClock.now();
    let database_now = store.database_time().await.unwrap().unwrap();
    assert!(
        (database_now.0 - before.0).abs() < 5_000,
        "{database_now:?} vs {before:?}"
    );
}

/// Several processes starting at once on a new database: each migration is applied once, and
/// every process starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_at_once_migrate_once() {
    let Some(database) = test_database().await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url, 2).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().unwrap());
    }
    for store in &stores {
        store.ready().await.unwrap();
    }
    let version: i32 = database
        .admin()
        .await
        .query_one("SELECT version FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(u32::try_from(version).unwrap(), SCHEMA_VERSION);
}

/// A database of schema version 3, with families in the refresh-token table (a current token, a
/// rotated-out one with its sealed successor, a revoked family, a client with an idle limit), is
/// brought to version 4 with each family on its grant's row, and on to the current version,
/// which drops sealed successors: SQLite's migration test, on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_is_migrated_to_families_on_grant_rows() {
    let Some(database) = test_database().await else {
        return;
    };
    let admin = database.admin().await;
    for sql in [
        include_str!("../../../migrations/postgres/0001_init.sql"),
        include_str!("../../../migrations/postgres/0002_lifecycle.sql"),
        include_str!("../../../migrations/postgres/0003_hardening.sql"),
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let h = |n: u8| format!("'\\x{}'::bytea", format!("{n:02x}").repeat(32));
    let sql = format!(
        "CREATE TABLE schema_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), \
             version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES (3);
         INSERT INTO orgs VALUES ('00D', 'Org');
         INSERT INTO users VALUES ('005', '00D', 'ada', NULL, 'hash', false, 0);
         INSERT INTO clients VALUES ('app', 'App', NULL, '[]', 'api', 'infinite', 60, true, false, 0, 60);
         INSERT INTO clients VALUES ('idle', 'Idle', NULL, '[]', 'api', 'specific_inactivity:2:HOURS', 60, true, false, 0, 60);
         INSERT INTO grants VALUES ('g1', 'app', '005', '00D', 'api', 0, 5000, NULL, true);
         INSERT INTO grants VALUES ('g2', 'idle', '005', '00D', 'api', 0, 7000, NULL, true);
         INSERT INTO grants VALUES ('g3', 'app', '005', '00D', 'api', 0, 0, 9000, true);
         INSERT INTO refresh_tokens VALUES ({h1}, 'g1', 0, 5000, {h2}, '\\xAA');
         INSERT INTO refresh_tokens VALUES ({h2}, 'g1', 5000, NULL, NULL, NULL);
         INSERT INTO refresh_tokens VALUES ({h3}, 'g2', 0, NULL, NULL, NULL);
         INSERT INTO refresh_tokens VALUES ({h4}, 'g3', 0, 9000, NULL, NULL);",
        h1 = h(1),
        h2 = h(2),
        h3 = h(3),
        h4 = h(4),
    );
    admin.batch_execute(&sql).await.unwrap();

    let store = database.connect().await;
    store.ready().await.unwrap();
    drop(store);
    type FamilyRow = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<i64>,
        Option<Vec<u8>>,
        Option<i64>,
    );
    let row = |id: &'static str| {
        let admin = &admin;
        async move {
            let row = admin
                .query_one(
                    "SELECT refresh_hash, previous_hash, rotated_at, sealed_successor, \
                     idle_expires_at FROM grants WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            let family: FamilyRow = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            family
        }
    };
    assert_eq!(
        row("g1").await,
        (Some(vec![2; 32]), Some(vec![1; 32]), Some(5000), None, None)
    );
    assert_eq!(
        row("g2").await,
        (Some(vec![3; 32]), None, None, None, Some(7000 + 7_200_000))
    );
    assert_eq!(
        row("g3").await.0,
        None,
        "a revoked family has no current token"
    );
    let legacy: i64 = admin
        .query_one("SELECT count(*) FROM legacy_refresh_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(legacy, 2);
    let revoked: String = admin
        .query_one("SELECT key FROM changes WHERE kind = 'grant_revoked'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(revoked, "g3");
    // The migrated feed goes on from the migrated entry.
    let store: Arc<dyn Store> = Arc::new(database.connect().await);
    let (live, newest) = store.live_changes(T0).await.unwrap();
    assert_eq!(newest, 1);
    assert!(
        live.is_empty(),
        "revoked at 9 s after the epoch: long out of force"
    );
    assert_eq!(
        store
            .legacy_refresh_grant(&[3; 32])
            .await
            .unwrap()
            .as_deref(),
        Some("g2")
    );
}

/// A transaction that PostgreSQL rolls back to break a deadlock is run again by the store: the
/// caller sees it succeed. Another session holds the second of a user's grants and, once the
/// store's revocation holds the first and waits for the second, asks for the first: the store's
/// session, which detects the deadlock first (the other's detection is set later), is the one
/// rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolled_back_to_break_a_deadlock_is_run_again() {
    let Some(database) = test_database().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(database.connect().await);
    let world = World::create(&store).await;
    for (grant_id, secs) in [("g0", 0), ("g1", 1)] {
        let issuance = world.issuance_at(grant_id, &world.client, true, T0.plus_secs(secs));
        conformance::issued(&store, &issuance).await;
    }
    let mut other = database.admin().await;
    let other = other.transaction().await.unwrap();
    other
        .batch_execute(
            "SET LOCAL deadlock_timeout = '30s'; \
             SELECT 1 FROM grants WHERE id = 'g1' FOR UPDATE",
        )
        .await
        .unwrap();
    let revocation = {
        let store = Arc::clone(&store);
        let user_id = world.user.id.clone();
        tokio::spawn(async move { store.revoke_grants_of_user(&user_id, T0.plus_secs(9)).await })
    };
    // The store revokes g0, then waits for g1.
    let admin = database.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND wait_event_type = 'Lock' AND application_name = 'tessera'",
                &[&database.name],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the store never waited for g1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Granted once the store's transaction is rolled back.
    other
        .batch_execute("SELECT 1 FROM grants WHERE id = 'g0' FOR UPDATE")
        .await
        .unwrap();
    other.commit().await.unwrap();
    let revoked = revocation.await.unwrap().unwrap();
    assert_eq!(revoked, ["g0", "g1"]);
    let fed: Vec<String> = store
        .changes_since(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(fed, ["g0", "g1"], "the rolled-back try appended nothing");
}

/// Errors never quote a stored value: not a hash, not a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_no_values() {
    let Some(database) = test_database().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(database.connect().await);
    let world = World::create(&store).await;
    let mut code = world.code("code-1", &world.client);
    code.client_id = "no-such-client".to_owned();
    let error = store.insert_code(&code).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Internal(_)), "{text}");
    assert!(!text.contains("no-such-client"), "{text}");
    let hex: String = hash("code-1").iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex), "{text}");

    let code = world.code("code-2", &world.client);
    store.insert_code(&code).await.unwrap();
    let again = store.insert_code(&code).await.unwrap_err();
    assert!(
        matches!(again, StoreError::Conflict("authorization code")),
        "{again}"
    );
}

/// The URL's password is never shown: not by `Debug`, not in a connection error; a database
/// that cannot be reached is `Unavailable`, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_never_shown() {
    const PASSWORD: &str = "hunter2-but-longer";
    let started = Instant::now();
    let unreachable =
        PostgresStore::connect(&format!("postgres://tessera:{PASSWORD}@127.0.0.1:1/db"), 2).await;
    let error = unreachable.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let malformed = PostgresStore::connect(&format!("postgres://x:{PASSWORD}@[nonsense/"), 2)
        .await
        .unwrap_err();
    assert!(!malformed.to_string().contains(PASSWORD), "{malformed}");

    let Some(database) = test_database().await else {
        return;
    };
    // Trust authentication takes any password: the store connects, and keeps it to itself.
    let mut url = Url::parse(&database.url).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let store = PostgresStore::connect(url.as_str(), 2).await.unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains(&database.name), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    store.ready().await.unwrap();
}

/// Many refreshes of distinct families at once, on a small pool: all commit, each with its
/// event (the pool's connections are shared, never exhausted for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_pool_serves_many_concurrent_refreshes() {
    const FAMILIES: usize = 64;
    let Some(database) = test_database().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&database.url, 2).await.unwrap());
    let world = World::create(&store).await;
    let mut grants = Vec::new();
    for n in 0..FAMILIES {
        grants.push(world.issue(&format!("f{n}")).await);
    }
    let commits: Vec<_> = grants
        .iter()
        .map(|grant| {
            let commit = world.refresh(
                grant,
                &format!("{}/rt0", grant.id),
                Some(&format!("{}/rt1", grant.id)),
                T0.plus_secs(60),
            );
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.commit_refresh(&commit).await })
        })
        .collect();
    for commit in commits {
        assert_eq!(
            commit.await.unwrap().unwrap(),
            tessera_core::store::RefreshOutcome::Committed
        );
    }
    let counts: BTreeSet<(String, u64)> = store.row_counts().await.unwrap().into_iter().collect();
    assert!(counts.contains(&("events".to_owned(), 2 * FAMILIES as u64)));
}
