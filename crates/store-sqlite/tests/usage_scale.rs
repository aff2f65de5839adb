//! The measurement of OAuth Usage at scale (docs/usage.md, BENCHMARKS.md): one client with a
//! million live grants over half a million users, then the time of the users listing's first
//! page, a page deep in the keyset, and the apps listing. Ignored by default (the seeding takes
//! a while); run it with
//! `cargo test --release -p tessera-store-sqlite --test usage_scale -- --ignored --nocapture`.
//! It prints its figures and asserts only what the listing returns, never a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;

use tessera_core::store::prelude::*;
use tessera_store_conformance::{World, T0};
use tessera_store_sqlite::SqliteStore;

const GRANTS: usize = 1_000_000;
const GRANTS_PER_USER: usize = 2;
const PAGE: u32 = 100;

/// The id of user `n`: 18 characters, in the order of `n`.
fn user_id(n: usize) -> String {
    format!("005{n:012}BBB")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: seeds a million grants"]
async fn the_users_listing_of_an_app_with_a_million_grants_pages_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path.to_str().unwrap()).unwrap());
    let world = World::create(&store).await;
    let users = GRANTS / GRANTS_PER_USER;

    // Seeded straight into the file: one transaction, prepared inserts.
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut user = tx
            .prepare(
                "INSERT INTO users (id, org_id, username, password_hash, disabled, created_at) \
                 VALUES (?1, ?2, ?3, 'x', 0, ?4)",
            )
            .unwrap();
        let mut grant = tx
            .prepare(
                "INSERT INTO grants (id, client_id, user_id, org_id, scope, created_at, \
                 last_used_at, has_refresh_token, use_count) \
                 VALUES (?1, ?2, ?3, ?4, 'api refresh_token', ?5, ?6, 1, ?7)",
            )
            .unwrap();
        for n in 0..users {
            let id = user_id(n);
            user.execute(rusqlite::params![
                id,
                world.org.id,
                format!("user{n}@example.com"),
                T0.0
            ])
            .unwrap();
            for g in 0..GRANTS_PER_USER {
                let at = T0.0 + (n * GRANTS_PER_USER + g) as i64;
                grant
                    .execute(rusqlite::params![
                        format!("grant-{n}-{g}"),
                        world.client.client_id,
                        id,
                        world.org.id,
                        at,
                        at + 1000,
                        (g + 1) as i64
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    drop(conn);
    eprintln!(
        "seeded {GRANTS} grants of {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let app = &world.client.client_id;
    let now = T0;
    let timed = |label: &'static str| {
        let started = Instant::now();
        move |rows: usize| {
            eprintln!(
                "{label}: {rows} rows in {:.2} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    };

    let done = timed("users, first page");
    let first = store.app_users_usage(app, None, PAGE, now).await.unwrap();
    done(first.len());
    assert_eq!(first.len(), PAGE as usize);
    assert_eq!(first[0].user_id, user_id(0));
    assert_eq!((first[0].token_count, first[0].use_count), (2, 3));

    let deep_after = user_id(users - 1000);
    let done = timed("users, a page 499,000 users deep");
    let deep = store
        .app_users_usage(app, Some(&deep_after), PAGE, now)
        .await
        .unwrap();
    done(deep.len());
    assert_eq!(deep[0].user_id, user_id(users - 999));

    let done = timed("users, the last page");
    let last = store
        .app_users_usage(app, Some(&user_id(users - 50)), PAGE, now)
        .await
        .unwrap();
    done(last.len());
    assert_eq!(last.len(), 49);

    let done = timed("one user's tokens");
    let tokens = store
        .user_tokens_usage(app, &user_id(users / 2), now)
        .await
        .unwrap();
    done(tokens.len());
    assert_eq!(tokens.len(), 2);

    let done = timed("apps (counts over every grant)");
    let apps = store.app_usage(now).await.unwrap();
    done(apps.len());
    let ours = apps.iter().find(|a| &a.client_id == app).unwrap();
    assert_eq!(ours.token_count, GRANTS as u64);
    assert_eq!(ours.user_count, users as u64);
}
