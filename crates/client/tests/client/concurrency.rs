//! One refresh at a time: tasks of one process, managers sharing one file, and real processes.

use std::sync::Arc;

use tessera_client::{
    Clock, FileTokenStore, KeySource, ManagerConfig, ManualClock, RefreshOutcome, TokenManager,
};

use crate::support::*;

const HOURS_3: i64 = 3 * 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_concurrent_calls_after_expiry_make_exactly_one_refresh() {
    let server = Server::start().await;
    // Rotation without a retry window: a second refresh with the same token would fail.
    let client = server.rotating(0, 3600).await;
    let dirs = Dirs::new();
    let clock = Arc::new(ManualClock::new(now_ms()));
    let (manager, events) = manager_with(&server, dirs.store(), clock.clone());
    manager
        .login_with(server.credential(&client, clock.now_ms()).await)
        .await
        .unwrap();
    clock.advance_ms(HOURS_3);

    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(clear(&t.await.unwrap().unwrap()));
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(server.refreshes().await, 1);
    let seen = events.events();
    let refreshed = seen
        .iter()
        .filter(|e| e.outcome == RefreshOutcome::Refreshed)
        .count();
    assert_eq!(refreshed, 1);
    assert!(seen.iter().all(|e| matches!(
        e.outcome,
        RefreshOutcome::Refreshed | RefreshOutcome::Adopted
    )));
    assert!(server.api_works(&tokens[0]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managers_sharing_one_file_adopt_each_others_refresh() {
    let server = Server::start().await;
    let client = server.rotating(0, 3600).await;
    let dirs = Dirs::new();
    let clock = Arc::new(ManualClock::new(now_ms()));
    // Each manager has its own store instance: its own lock-file descriptor, as a separate
    // process would.
    let managers: Vec<_> = (0..3)
        .map(|_| manager_with(&server, dirs.store(), clock.clone()))
        .collect();
    managers[0]
        .0
        .login_with(server.credential(&client, clock.now_ms()).await)
        .await
        .unwrap();
    clock.advance_ms(HOURS_3);

    let mut tasks = Vec::new();
    for (m, _) in &managers {
        for _ in 0..4 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move { m.access_token().await }));
        }
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(clear(&t.await.unwrap().unwrap()));
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1);
    assert_eq!(server.refreshes().await, 1);
    let adopted: usize = managers
        .iter()
        .map(|(_, e)| {
            e.events()
                .iter()
                .filter(|e| e.outcome == RefreshOutcome::Adopted)
                .count()
        })
        .sum();
    assert!(adopted >= 2, "the other managers adopted the refresh");
}

/// The environment variable that turns [`child_process_prints_a_token`] into a worker.
const CHILD_ENV: &str = "TESSERA_CLIENT_TEST_CHILD";

#[tokio::test]
async fn processes_started_together_after_expiry_refresh_once() {
    let server = Server::start().await;
    let client = server.rotating(0, 3600).await;
    let dirs = Dirs::new();
    let (manager, _) = open_manager(&server, dirs.store());
    manager
        .login_with(server.credential(&client, now_ms()).await)
        .await
        .unwrap();
    let spec = format!(
        "{}\n{}\n{}",
        dirs.data().display(),
        dirs.key().display(),
        now_ms() + HOURS_3
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "concurrency::child_process_prints_a_token",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let output = child.wait_with_output().await.unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).unwrap();
        let token = stdout
            .lines()
            .find_map(|l| l.split_once("TOKEN=").map(|(_, token)| token.trim()))
            .unwrap_or_else(|| panic!("no token in {stdout}"));
        tokens.push(token.to_owned());
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "all processes print the same token");
    assert_eq!(server.refreshes().await, 1);
    assert!(server.api_works(&tokens[0]).await);
}

/// A worker for the test above: does nothing unless started by it.
#[tokio::test]
async fn child_process_prints_a_token() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lines = spec.lines();
    let data = lines.next().unwrap().into();
    let key = lines.next().unwrap().into();
    let now: i64 = lines.next().unwrap().parse().unwrap();
    let store = FileTokenStore::open(data, KeySource::KeyFile(key)).unwrap();
    let config = ManagerConfig {
        clock: Arc::new(ManualClock::new(now)),
        ..ManagerConfig::new(tessera_client::default_http_client().unwrap())
    };
    let manager = TokenManager::new(Arc::new(store), config);
    let token = manager.access_token().await.unwrap();
    println!("TOKEN={}", clear(&token));
}
