//! The hardening as an attacker meets it, against a real `tessera serve` process: memory stays
//! bounded under a flood from 100,000 addresses and under 100 concurrent logins, and a clock
//! stepped back (libfaketime) does not revive an expired access token.

use crate::common;

use std::sync::Arc;
use std::time::Instant;

use crate::common::Server;

/// Runs `count` requests made by `make`, `concurrency` at a time; returns how many got each
/// status.
async fn run_all<F>(
    count: usize,
    concurrency: usize,
    make: F,
) -> std::collections::BTreeMap<u16, usize>
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return seen;
                    }
                    let status = make(i).send().await.unwrap().status().as_u16();
                    *seen.entry(status).or_insert(0) += 1;
                }
            })
        })
        .collect();
    let mut total = std::collections::BTreeMap::new();
    for worker in workers {
        for (status, n) in worker.await.unwrap() {
            *total.entry(status).or_insert(0) += n;
        }
    }
    total
}

/// 100,000 distinct client addresses, each failing once, reach the server through a trusted
/// proxy: the throttle remembers at most its cap of them, so memory levels off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_100_000_addresses_keeps_memory_bounded() {
    let _lane = common::lane(common::lanes::HARDENING);
    const FLOOD: usize = 100_000;
    let server = Server::start(&["--trusted-proxies", "127.0.0.1"], &[]);
    let http = reqwest::Client::new();
    let token_url = format!("{}/services/oauth2/token", server.base);
    let failing = move |i: usize| {
        let address = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        http.post(&token_url)
            .header("x-forwarded-for", address)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "guess"),
                ("client_id", "3MVG9NoSuchClient"),
            ])
    };
    let failing = Arc::new(failing);
    let warm = failing.clone();
    run_all(2_000, 16, move |i| warm(FLOOD + i)).await;
    let (before, _) = server.memory_kib();
    let started = Instant::now();
    let flood = failing.clone();
    let statuses = run_all(FLOOD, 32, move |i| flood(i)).await;
    let (after, peak) = server.memory_kib();
    eprintln!(
        "flood of {FLOOD} addresses in {:.1}s: RSS {before} KiB before, {after} KiB after \
         (+{} KiB), peak {peak} KiB; statuses {statuses:?}",
        started.elapsed().as_secs_f64(),
        after.saturating_sub(before),
    );
    assert_eq!(
        statuses.get(&400),
        Some(&FLOOD),
        "each address failed once: {statuses:?}"
    );
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "memory grew by {} KiB",
        after - before
    );
}

/// 100 logins at once: at most one Argon2 check per core runs at a time, in 19 MiB of working
/// memory kept for it; the rest wait their turn, so memory stays near the idle server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_logins_keep_memory_bounded() {
    let _lane = common::lane(common::lanes::HARDENING);
    // Budgets out of the way: this is about how many checks run at once, not about guessing.
    let server = Server::start(
        &[
            "--login-failures-per-user-and-address",
            "1000/5m",
            "--login-failures-per-user",
            "1000/5m",
            "--login-failures-per-address",
            "1000/5m",
        ],
        &[],
    );
    let (client_id, _) = server.user_and_client("2h", &[]);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        server.base
    );
    let page = browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| tessera_testkit::hidden_value(&page, name).unwrap();
    let form = Arc::new([
        ("request", field("request")),
        ("csrf_token", field("csrf_token")),
        ("username", "ada@example.com".to_owned()),
        ("password", "ada's password".to_owned()),
    ]);
    let (idle, _) = server.memory_kib();
    let login_url = format!("{}/services/oauth2/authorize/login", server.base);
    let statuses = run_all(100, 100, move |_| browser.post(&login_url).form(&*form)).await;
    let (_, peak) = server.memory_kib();
    eprintln!("100 concurrent logins: idle RSS {idle} KiB, peak {peak} KiB; statuses {statuses:?}");
    let answered: usize = statuses
        .iter()
        .filter(|(s, _)| matches!(**s, 302 | 303 | 503))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        answered, 100,
        "logins or 503 when busy, nothing else: {statuses:?}"
    );
    assert!(statuses.get(&303).is_some_and(|n| *n > 0), "{statuses:?}");
    // Uncapped, 100 checks at once would need 100 × 19 MiB; allocated afresh each time, even
    // two at a time grew the heap to 750 MiB.
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
}

/// The server's clock is moved with libfaketime while it runs (its offset is re-read from a
/// file at every clock read): an access token valid for a minute expires, then the clock is
/// stepped back two hours, and the token stays refused — it was issued ahead of the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_does_not_revive_an_expired_token() {
    let _lane = common::lane(common::lanes::HARDENING);
    if !common::libfaketime("clock-step test") {
        return;
    }
    let offset = tempfile::NamedTempFile::new().unwrap();
    let set_offset = |spec: &str| std::fs::write(offset.path(), format!("{spec}\n")).unwrap();
    set_offset("+2h");
    let path = offset.path().to_str().unwrap().to_owned();
    let faked = [
        ("LD_PRELOAD", common::LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", path.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let server = Server::start(&[], &faked);
    let (client_id, _) = server.user_and_client("60s", &[]);
    // Minted on the same faked clock, two hours ahead of the real one.
    let minted = server.mint(&client_id, &faked);
    let access = minted["access_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let api = |token: String| {
        let request = http
            .get(format!("{}/services/data/v65.0/", server.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(api(access.clone()).await, 200);
    set_offset("+2h2m");
    assert_eq!(api(access.clone()).await, 401, "expired after its minute");
    set_offset("+0");
    assert_eq!(
        api(access.clone()).await,
        401,
        "the clock went back two hours: the expired token must not work again"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("clock stepped back"),
        "no loud log of the step: {log}"
    );
    // A token issued after the step works.
    let fresh = server.admin(
        &[
            "token",
            "mint",
            "--client-id",
            &client_id,
            "--username",
            "ada@example.com",
            "--scope",
            "api",
        ],
        None,
        &faked,
    );
    assert_eq!(
        api(fresh["access_token"].as_str().unwrap().to_owned()).await,
        200
    );
}
