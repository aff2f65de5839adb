//! Throttling slows the guesser, never the victim: high-entropy credentials are load-shed per
//! source, passwords are refused before checking per (user, address), per user and per
//! address, and the source is the peer unless a trusted proxy names the client.

use axum::http::StatusCode;
use tessera_core::identity::throttle::{Budget, ThrottleConfig};
use tessera_core::AuthorityConfig;
use tessera_server::{app, AppState, ProxyHeader, TrustedProxies};

use crate::request_span::{captured_log, logged_with};

use crate::support::*;

const ATTACKER: &str = "203.0.113.9";
const OWNER: &str = "198.51.100.7";
const PROXY: &str = "10.0.0.2";

/// Small budgets, so that the tests stay short.
fn small(config: &mut AuthorityConfig) {
    config.throttle = ThrottleConfig {
        credential_failures_per_address: Budget::new(20, 60),
        login_failures_per_user_and_address: Budget::new(5, 300),
        login_failures_per_user: Budget::new(12, 3600),
        login_failures_per_address: Budget::new(50, 300),
        max_tracked_keys: 10_000,
    };
}

async fn harness() -> Harness {
    Harness::with_config(small, TrustedProxies::default()).await
}

async fn behind_proxy() -> Harness {
    Harness::with_config(small, TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap()).await
}

fn refresh_pairs<'a>(client: &'a Client, rt: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client.id.as_str()),
        ("client_secret", secret),
    ]
}

/// A login attempt from `peer`: the login page, then the form, as a browser does.
async fn login_from(
    h: &Harness,
    client: &Client,
    peer: &str,
    headers: &[(&str, &str)],
    username: &str,
    password: &str,
) -> Reply {
    let mut browser = Browser::default();
    let page = h
        .get(
            &h.authorize_url(client, &[("state", "s")]),
            Some(&mut browser),
        )
        .await;
    let html = page.text();
    let body = form(&[
        ("request", &hidden_value(&html, "request").unwrap()),
        ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
        ("username", username),
        ("password", password),
    ]);
    h.post_form_from(
        Some(peer),
        headers,
        "/services/oauth2/authorize/login",
        &body,
        Some(&mut browser),
    )
    .await
}

fn logged_in(reply: &Reply) -> bool {
    matches!(reply.status, StatusCode::FOUND | StatusCode::SEE_OTHER)
}

fn refused(reply: &Reply) -> bool {
    reply.status == StatusCode::TOO_MANY_REQUESTS
        && reply.header("retry-after").is_some()
        && reply.text().contains("Too many failed attempts")
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_never_refuses_the_right_one() {
    let h = harness().await;
    let victim = h.confidential().await;
    let secret = victim.secret.clone().unwrap();
    let rt = h.login(&victim, "api refresh_token").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..40 {
        let guess = format!("guess-{i}");
        let reply = h
            .token_from(ATTACKER, &[], &refresh_pairs(&victim, &rt, &guess))
            .await;
        if i < 19 {
            reply.assert_oauth_error(400, "invalid_client");
        } else {
            // Over its budget, the failing source gets 429 instead of its 400.
            reply.assert_oauth_error(429, "rate_limit_exceeded");
            let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
        // All along, the right secret works from anywhere, the flooding address included.
        for peer in [OWNER, ATTACKER] {
            let ok = h
                .token_from(peer, &[], &refresh_pairs(&victim, &rt, &secret))
                .await;
            assert_eq!(ok.status, StatusCode::OK, "{peer} after {i}: {}", ok.text());
        }
    }
}

#[tokio::test]
async fn guessing_refresh_tokens_from_one_address_is_shed_but_others_are_served() {
    let h = harness().await;
    let c = h.confidential().await;
    let secret = c.secret.clone().unwrap();
    let rt = h.login(&c, "api refresh_token").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..25 {
        let guess = format!("guess-{i}");
        let reply = h
            .token_from(ATTACKER, &[], &refresh_pairs(&c, &guess, &secret))
            .await;
        let expected = if i < 19 { 400 } else { 429 };
        assert_eq!(
            reply.status.as_u16(),
            expected,
            "guess {i}: {}",
            reply.text()
        );
    }
    let other = h
        .token_from(OWNER, &[], &refresh_pairs(&c, "guess-x", &secret))
        .await;
    other.assert_oauth_error(400, "invalid_grant");
    let valid = h
        .token_from(ATTACKER, &[], &refresh_pairs(&c, &rt, &secret))
        .await;
    assert_eq!(valid.status, StatusCode::OK);
}

#[tokio::test]
async fn the_owner_logs_in_while_the_account_is_hammered_from_elsewhere() {
    let h = harness().await;
    let c = h.confidential().await;
    for _ in 0..5 {
        let reply = login_from(&h, &c, ATTACKER, &[], USERNAME, "wrong password").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply
            .text()
            .contains("Please check your username and password"));
    }
    // The attacker's address is now refused before the password is checked, even the right one.
    let blocked = login_from(&h, &c, ATTACKER, &[], USERNAME, PASSWORD).await;
    assert!(refused(&blocked), "{} {}", blocked.status, blocked.text());
    // Usernames are one key whatever their case.
    let shouted = login_from(&h, &c, ATTACKER, &[], &USERNAME.to_uppercase(), PASSWORD).await;
    assert!(refused(&shouted));
    // The owner, from their own address, is not refused.
    let owner = login_from(&h, &c, OWNER, &[], USERNAME, PASSWORD).await;
    assert!(logged_in(&owner), "{} {}", owner.status, owner.text());
}

#[tokio::test]
async fn the_loose_per_user_cap_stops_a_distributed_guesser_and_a_success_resets_its_pair() {
    let h = harness().await;
    let c = h.confidential().await;
    // Four failures from the owner's address, a success, four more: the pair count restarted.
    for _ in 0..4 {
        login_from(&h, &c, OWNER, &[], USERNAME, "typo password").await;
    }
    assert!(logged_in(
        &login_from(&h, &c, OWNER, &[], USERNAME, PASSWORD).await
    ));
    for _ in 0..4 {
        login_from(&h, &c, OWNER, &[], USERNAME, "typo password").await;
    }
    assert!(logged_in(
        &login_from(&h, &c, OWNER, &[], USERNAME, PASSWORD).await
    ));
    // A guesser on many addresses reaches the per-user cap (12): then even the owner waits.
    for i in 0..4 {
        login_from(&h, &c, &format!("192.0.2.{i}"), &[], USERNAME, "guess").await;
    }
    let capped = login_from(&h, &c, OWNER, &[], USERNAME, PASSWORD).await;
    assert!(refused(&capped), "{} {}", capped.status, capped.text());
    h.clock.advance_secs(3600);
    assert!(logged_in(
        &login_from(&h, &c, OWNER, &[], USERNAME, PASSWORD).await
    ));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_source() {
    let h = behind_proxy().await;
    let c = h.confidential().await;
    let attacker = [("x-forwarded-for", ATTACKER)];
    for _ in 0..5 {
        login_from(&h, &c, PROXY, &attacker, USERNAME, "wrong password").await;
    }
    assert!(refused(
        &login_from(&h, &c, PROXY, &attacker, USERNAME, PASSWORD).await
    ));
    // Everyone comes through the same proxy: the owner is another client behind it.
    let owner = [("x-forwarded-for", OWNER)];
    assert!(logged_in(
        &login_from(&h, &c, PROXY, &owner, USERNAME, PASSWORD).await
    ));
}

/// 25 failing refreshes through the trusted proxy: the proxy names the attacker in the header
/// the server reads, and passes the attacker's own copy of the other header through, with a
/// new address each time (`forge(i)`). Each is throttled as the attacker's, and its audit events
/// name the attacker.
async fn forged_header_does_not_escape_throttling(
    h: &Harness,
    real: (&str, &str),
    forge: fn(usize) -> (&'static str, String),
) {
    let c = h.confidential().await;
    let secret = c.secret.clone().unwrap();
    for i in 0..25 {
        let (name, forged) = forge(i);
        let reply = h
            .token_from(
                PROXY,
                &[(name, forged.as_str()), real],
                &refresh_pairs(&c, "guess", &secret),
            )
            .await;
        let expected = if i < 19 { 400 } else { 429 };
        assert_eq!(reply.status.as_u16(), expected, "attempt {i}");
    }
    let throttled = h.events_written("throttled", 1).await;
    for event in &throttled {
        assert_eq!(event.event.source.as_deref(), Some(ATTACKER), "{event:?}");
    }
}

#[tokio::test]
async fn a_forged_forwarded_header_through_a_trusted_proxy_does_not_escape_throttling() {
    let mut h = behind_proxy().await;
    let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap();
    h.app = app(AppState::new(h.authority.clone())
        .with_trusted_proxies(proxies)
        .with_access_log(true));
    let (log, subscriber) = captured_log();
    logged_with(
        subscriber,
        forged_header_does_not_escape_throttling(&h, ("x-forwarded-for", ATTACKER), |i| {
            ("forwarded", format!("for=192.0.2.{i}"))
        }),
    )
    .await;
    // The access log names the X-Forwarded-For hop too, never a forged one.
    let log = log.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tessera::access"))
        .collect();
    assert_eq!(lines.len(), 25, "{log}");
    for line in lines {
        assert!(line.contains(&format!("source={ATTACKER}")), "{line}");
    }
    assert!(!log.contains("192.0.2."), "{log}");
}

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_escape_throttling_when_forwarded_is_the_named_header() {
    let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"])
        .unwrap()
        .with_header(ProxyHeader::Forwarded);
    let h = Harness::with_config(small, proxies).await;
    forged_header_does_not_escape_throttling(
        &h,
        ("forwarded", "for=\"203.0.113.9:5000\";proto=https"),
        |i| ("x-forwarded-for", format!("192.0.2.{i}")),
    )
    .await;
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let h = behind_proxy().await;
    let c = h.confidential().await;
    let secret = c.secret.clone().unwrap();
    // The attacker is not a proxy: claiming a new address each time changes nothing.
    for i in 0..25 {
        let forged = format!("192.0.2.{i}");
        let reply = h
            .token_from(
                ATTACKER,
                &[("x-forwarded-for", forged.as_str())],
                &refresh_pairs(&c, "guess", &secret),
            )
            .await;
        let expected = if i < 19 { 400 } else { 429 };
        assert_eq!(reply.status.as_u16(), expected, "attempt {i}");
    }
}

#[tokio::test]
async fn every_throttle_decision_is_an_audit_event_without_a_secret() {
    let h = harness().await;
    let c = h.confidential().await;
    for i in 0..21 {
        let guess = format!("SeCrEtGuEsS{i}");
        h.token_from(
            ATTACKER,
            &[("user-agent", "guesser/1.0")],
            &refresh_pairs(&c, "rt", &guess),
        )
        .await;
    }
    // Five failures use up the pair's budget; the sixth attempt is refused: the decision.
    for _ in 0..6 {
        login_from(&h, &c, ATTACKER, &[], USERNAME, "PaSsWoRdGuEsS").await;
    }
    let events = h.events_written("throttled", 2).await;
    let credential = events
        .iter()
        .find(|e| e.event.detail.contains("credential failures per address"))
        .expect("a credential throttle event");
    assert_eq!(credential.event.source.as_deref(), Some(ATTACKER));
    assert_eq!(credential.event.user_agent.as_deref(), Some("guesser/1.0"));
    assert_eq!(credential.event.client_id.as_deref(), Some(c.id.as_str()));
    let login = events
        .iter()
        .find(|e| {
            e.event
                .detail
                .contains("login failures per user and address")
        })
        .expect("a login throttle event");
    assert!(
        login.event.detail.contains(USERNAME),
        "{}",
        login.event.detail
    );
    for e in &events {
        assert!(!e.event.detail.contains("SeCrEt") && !e.event.detail.contains("PaSsWoRd"));
    }
    // Failed client authentications carry their source too; past the budget, the one throttle
    // event stands for them all (a flood is not a flood of audit writes).
    let failures = h.events_written("client_auth_failed", 19).await;
    assert!(failures
        .iter()
        .all(|e| e.event.source.as_deref() == Some(ATTACKER)));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(h.events_named("client_auth_failed").await.len(), 19);
    assert_eq!(
        h.events_named("throttled")
            .await
            .iter()
            .filter(|e| e.event.detail.contains("credential failures"))
            .count(),
        1
    );
}

/// Past the cap on concurrent password checks, a login waits a bounded time and is then
/// answered 503 with `Retry-After`, on the login page.
#[tokio::test]
async fn logins_past_the_password_check_cap_get_503_after_a_bounded_wait() {
    let h = std::sync::Arc::new(
        Harness::with_config(
            |config| {
                config.max_concurrent_password_checks = 1;
                config.password_check_wait = std::time::Duration::from_millis(1);
            },
            TrustedProxies::default(),
        )
        .await,
    );
    let c = std::sync::Arc::new(h.confidential().await);
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let (h, c) = (h.clone(), c.clone());
            tokio::spawn(async move {
                let peer = format!("192.0.2.{i}");
                login_from(&h, &c, &peer, &[], USERNAME, PASSWORD).await
            })
        })
        .collect();
    let mut busy = 0;
    for attempt in attempts {
        let reply = attempt.await.unwrap();
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            busy += 1;
            assert!(reply.header("retry-after").is_some());
            assert!(reply.text().contains("The server is busy"));
        } else {
            assert!(logged_in(&reply), "{} {}", reply.status, reply.text());
        }
    }
    assert!(
        busy > 0,
        "eight logins at once, one check slot, 1 ms of patience"
    );
}

#[tokio::test]
async fn spellings_of_one_unicode_username_share_one_budget_and_one_user() {
    let h = harness().await;
    let c = h.confidential().await;
    let jurgen = "jürgen@example.com";
    let created = h
        .authority
        .operator()
        .create_user(
            "JÜRGEN@Example.com",
            tessera_proto::Password::new(PASSWORD),
            None,
        )
        .await
        .unwrap();
    assert_eq!(created.username, jurgen, "stored in its normal form");
    let spellings = [
        "jürgen@example.com",
        "JÜRGEN@example.com",
        "ju\u{308}rgen@example.com",
        "JU\u{308}RGEN@EXAMPLE.COM",
    ];
    // Each spelling logs in as the same user with the right password.
    for spelling in spellings {
        assert!(
            logged_in(&login_from(&h, &c, OWNER, &[], spelling, PASSWORD).await),
            "{spelling:?}"
        );
        let user = h.authority.operator().user(spelling).await.unwrap();
        assert_eq!(user.id, created.id, "{spelling:?}");
    }
    // Five failures spread over the spellings, from one address, exhaust the one
    // (user, address) budget of 5: had each spelling its own, none would be refused yet.
    for i in 0..5 {
        let spelling = spellings[i % spellings.len()];
        let reply = login_from(&h, &c, ATTACKER, &[], spelling, "wrong password").await;
        assert_eq!(reply.status, StatusCode::OK, "{spelling:?}");
    }
    for spelling in spellings {
        let blocked = login_from(&h, &c, ATTACKER, &[], spelling, PASSWORD).await;
        assert!(
            refused(&blocked),
            "{spelling:?}: {} {}",
            blocked.status,
            blocked.text()
        );
    }
    // Another user is not touched by this budget.
    assert!(logged_in(
        &login_from(&h, &c, ATTACKER, &[], USERNAME, PASSWORD).await
    ));
}

// Throttling before the work: a source that has spent its budget is answered 429 without the
// store work only a failure needs, and repeats of one incident are one event per grant per
// window, with their count (docs/security.md, "Throttling" and "The audit trail").

fn rt_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["refresh_token"].as_str().unwrap().to_owned()
}

/// The failures a source of the small budget (20 a minute) may have before its next is a 429.
const FAILURES_BEFORE_429: usize = 19;

/// Runs housekeeping once the repeat window has passed: it writes the summaries of windows
/// whose count no later event carried.
async fn after_the_repeat_window(h: &Harness) {
    h.clock.advance_secs(61);
    h.authority.housekeeping().await.unwrap();
}

/// A client without a retry window, its first refresh token and the successor that rotated
/// it out, past the grace for duplicates: a replay of the first is now reuse.
async fn rotated_past_the_grace(h: &Harness) -> (Client, String, String, String) {
    let c = h.rotating(0).await;
    let secret = c.secret.clone().unwrap();
    let rt1 = rt_of_login(h, &c).await;
    let rt2 = rt_of(&h.token(&refresh_pairs(&c, &rt1, &secret)).await);
    h.clock.advance_secs(3);
    (c, secret, rt1, rt2)
}

#[tokio::test]
async fn throttled_replays_of_a_rotated_out_token_write_no_events() {
    let h = harness().await;
    let (c, secret, rt1, rt2) = rotated_past_the_grace(&h).await;
    // The first replay is reuse: the family is revoked and that is recorded.
    flood_writes_one_event_and_its_count(&h, &refresh_pairs(&c, &rt1, &secret), "reuse_detected")
        .await;
    // The family stays revoked, its successor included.
    h.token(&refresh_pairs(&c, &rt2, &secret))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

async fn rt_of_login(h: &Harness, c: &Client) -> String {
    h.login(c, "api refresh_token").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn code_pairs<'a>(client: &'a Client, code: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client.id.as_str()),
        ("client_secret", secret),
        ("redirect_uri", REDIRECT),
    ]
}

#[tokio::test]
async fn throttled_presentations_of_a_spent_code_write_no_events() {
    let h = harness().await;
    let c = h.confidential().await;
    let secret = c.secret.clone().unwrap();
    let code = h
        .code(&c, &[("scope", "api refresh_token"), ("state", "s")])
        .await;
    let first = h.token(&code_pairs(&c, &code, &secret)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    // The second presentation revokes what the first issued, and is recorded.
    flood_writes_one_event_and_its_count(&h, &code_pairs(&c, &code, &secret), "code_reused").await;
    assert!(
        !h.api_works(&access).await,
        "what the code issued is revoked"
    );
}

/// Sends `pairs` from the attacker 300 times. The first is the incident, recorded once as
/// `kind`; the rest of the budget are repeats, counted and not written; past the budget come
/// 429s that do no store work (still 429 with the database gone, not 503) and write nothing.
/// Once the window has ended, one summary carries the count of the repeats.
async fn flood_writes_one_event_and_its_count(h: &Harness, pairs: &[(&str, &str)], kind: &str) {
    for i in 0..FAILURES_BEFORE_429 {
        let reply = h.token_from(ATTACKER, &[], pairs).await;
        reply.assert_oauth_error(400, "invalid_grant");
        assert_eq!(h.events_named(kind).await.len(), 1, "after {i}");
    }
    h.token_from(ATTACKER, &[], pairs)
        .await
        .assert_oauth_error(429, "rate_limit_exceeded");
    h.events_written("throttled", 1).await;
    h.store.fail(true);
    for i in 0..280 {
        let reply = h.token_from(ATTACKER, &[], pairs).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "attempt {i}");
    }
    h.store.fail(false);
    assert_eq!(h.events_named(kind).await.len(), 1);
    assert_eq!(h.events_named("throttled").await.len(), 1);
    after_the_repeat_window(h).await;
    let events = h.events_named(kind).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.event.detail.contains("(+18 repeats since")),
        "{events:?}"
    );
}

#[tokio::test]
async fn duplicates_of_a_refresh_that_just_committed_write_one_event_with_their_count() {
    let h = harness().await;
    let c = h.rotating(0).await;
    let secret = c.secret.clone().unwrap();
    let rt1 = rt_of_login(&h, &c).await;
    let rt2 = rt_of(&h.token(&refresh_pairs(&c, &rt1, &secret)).await);
    // Fifty duplicates within the grace after the rotation: each is refused as in progress (not
    // a failure of the client's: never throttled), and one event stands for them all.
    for i in 0..50 {
        let reply = h
            .token_from(OWNER, &[], &refresh_pairs(&c, &rt1, &secret))
            .await;
        reply.assert_oauth_error(400, "invalid_grant");
        assert_eq!(
            reply.json()["error_description"],
            "token request is already being processed",
            "duplicate {i}"
        );
    }
    assert_eq!(h.events_named("concurrent_refresh_refused").await.len(), 1);
    // The duplicates revoked nothing.
    let rt3 = rt_of(&h.token(&refresh_pairs(&c, &rt2, &secret)).await);
    after_the_repeat_window(&h).await;
    let events = h.events_named("concurrent_refresh_refused").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.event.detail.contains("(+49 repeats since")),
        "{events:?}"
    );
    assert!(h.events_named("reuse_detected").await.is_empty());
    assert_eq!(
        h.token(&refresh_pairs(&c, &rt3, &secret)).await.status,
        StatusCode::OK
    );
}

/// Spends the attacker's budget with guessed refresh tokens: its next failure is a 429.
async fn spend_the_attackers_budget(h: &Harness, c: &Client, secret: &str) {
    for i in 0..FAILURES_BEFORE_429 {
        let guess = format!("guess-{i}");
        let reply = h
            .token_from(ATTACKER, &[], &refresh_pairs(c, &guess, secret))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "guess {i}");
    }
}

#[tokio::test]
async fn a_throttled_source_still_gets_its_replay_inside_the_retry_window() {
    let h = harness().await;
    let c = h.rotating(60).await;
    let secret = c.secret.clone().unwrap();
    let rt1 = rt_of_login(&h, &c).await;
    let second = h
        .token_from(ATTACKER, &[], &refresh_pairs(&c, &rt1, &secret))
        .await;
    let rt2 = rt_of(&second);
    // The source shares its address with a guesser (a NAT) that spends its budget…
    spend_the_attackers_budget(&h, &c, &secret).await;
    // …and then loses a response: its retry is valid, so it is answered, not throttled.
    let replay = h
        .token_from(ATTACKER, &[], &refresh_pairs(&c, &rt1, &secret))
        .await;
    assert_eq!(rt_of(&replay), rt2);
    // And the successor it was given works from there too.
    let next = h
        .token_from(ATTACKER, &[], &refresh_pairs(&c, &rt2, &secret))
        .await;
    assert_ne!(rt_of(&next), rt2);
}

#[tokio::test]
async fn exhausting_a_shared_address_budget_does_not_switch_off_reuse_detection() {
    let h = harness().await;
    // A thief rotated the stolen token; the owner's client holds the rotated-out one.
    let (c, secret, rt1, stolen_successor) = rotated_past_the_grace(&h).await;
    spend_the_attackers_budget(&h, &c, &secret).await;
    // The owner, behind the exhausted address, presents its token: refused with 429 as a
    // failure from there, but the family is revoked all the same, and that is recorded.
    h.token_from(ATTACKER, &[], &refresh_pairs(&c, &rt1, &secret))
        .await
        .assert_oauth_error(429, "rate_limit_exceeded");
    h.token(&refresh_pairs(&c, &stolen_successor, &secret))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
}
