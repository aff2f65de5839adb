//! Correctness gaps closed by the hardening: replays held to the grant's scope and lifetime,
//! one issuance per code even under concurrency, a client's removed scopes and a user's new
//! password taking effect on live grants, case-insensitive usernames, security events with
//! their source, and a clock stepped back.

use axum::http::{Method, StatusCode};
use tessera_core::operations::admin::ClientSettings;
use tessera_proto::Password;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";

fn rt(body: &serde_json::Value) -> String {
    body["refresh_token"].as_str().unwrap().to_owned()
}

fn at(body: &serde_json::Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

async fn refresh_with_scope(h: &Harness, c: &Client, token: &str, scope: &str) -> Reply {
    h.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", &c.id),
        ("client_secret", c.secret.as_deref().unwrap()),
        ("scope", scope),
    ])
    .await
}

#[tokio::test]
async fn a_replay_asking_for_more_than_the_grant_is_invalid_scope() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, "api refresh_token").await;
    let rotated = h.refresh(&c, &rt(&first)).await;
    assert_eq!(rotated.status, StatusCode::OK);
    refresh_with_scope(&h, &c, &rt(&first), "api refresh_token web")
        .await
        .assert_oauth_error(400, "invalid_scope");
    // The same replay within the grant's scope still gets the same pair.
    let replay = refresh_with_scope(&h, &c, &rt(&first), "api").await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(
        replay.json()["refresh_token"],
        rotated.json()["refresh_token"]
    );
}

#[tokio::test]
async fn no_replay_after_the_grants_absolute_lifetime() {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                refresh_retry_window_secs: Some(60),
                refresh_token_policy: Some("specific_lifetime:100:SECONDS".parse().unwrap()),
                ..Default::default()
            },
        )
        .await;
    let first = h.login(&c, SCOPE).await;
    h.clock.advance_secs(90);
    assert_eq!(h.refresh(&c, &rt(&first)).await.status, StatusCode::OK);
    h.clock.advance_secs(20);
    // Inside the retry window, but the family's lifetime is over.
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn two_concurrent_uses_of_one_code_never_leave_live_tokens() {
    for _ in 0..5 {
        let h = Harness::new().await;
        let c = h.confidential().await;
        let code = h.code(&c, &[("scope", SCOPE)]).await;
        let (a, b) = tokio::join!(h.exchange(&c, &code, None), h.exchange(&c, &code, None));
        let ok: Vec<&Reply> = [&a, &b]
            .into_iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert!(ok.len() <= 1, "two issuances from one code");
        for reply in [&a, &b] {
            if reply.status != StatusCode::OK {
                reply.assert_oauth_error(400, "invalid_grant");
            }
        }
        // Whatever a use issued, the other use revoked it (RFC 6749 §4.1.2).
        for issued in ok {
            let body = issued.json();
            assert!(!h.api_works(&at(&body)).await);
            h.refresh(&c, &rt(&body))
                .await
                .assert_oauth_error(400, "invalid_grant");
        }
    }
}

#[tokio::test]
async fn removing_scopes_from_a_client_takes_effect_on_live_grants() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    h.authority
        .operator()
        .update_client(
            &c.id,
            &ClientSettings {
                scopes: Some("id refresh_token".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cut = h.refresh(&c, &rt(&first)).await;
    assert_eq!(cut.status, StatusCode::OK, "{}", cut.text());
    assert_eq!(cut.json()["scope"], "id refresh_token");
    let reply = h
        .api(Method::GET, "/services/data/v65.0/", &at(&cut.json()), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "the API is no longer granted"
    );
    h.authority
        .operator()
        .update_client(
            &c.id,
            &ClientSettings {
                scopes: Some("api id".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_password_change_revokes_the_users_grants_unless_kept() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let kept = h.login(&c, SCOPE).await;
    let (_, revoked) = h
        .authority
        .operator()
        .set_user_password(USERNAME, Password::new("new password one"), true)
        .await
        .unwrap();
    assert_eq!(revoked, 0);
    assert_eq!(h.refresh(&c, &rt(&kept)).await.status, StatusCode::OK);

    let (_, revoked) = h
        .authority
        .operator()
        .set_user_password(USERNAME, Password::new("new password two"), false)
        .await
        .unwrap();
    assert!(revoked >= 1);
    assert!(!h.api_works(&at(&kept)).await);
    h.refresh(&c, &rt(&kept))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn usernames_are_case_insensitive_at_login() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h
        .get(&h.authorize_url(&c, &[("state", "s")]), Some(&mut browser))
        .await;
    let html = page.text();
    let body = form(&[
        ("request", &hidden_value(&html, "request").unwrap()),
        ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
        ("username", &USERNAME.to_uppercase()),
        ("password", PASSWORD),
    ]);
    let reply = h
        .post_form(
            "/services/oauth2/authorize/login",
            &body,
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let twin = h
        .authority
        .operator()
        .create_user(&USERNAME.to_uppercase(), Password::new("another one"), None)
        .await;
    assert!(twin.is_err(), "a username differing only in case is taken");
}

#[tokio::test]
async fn reuse_detection_records_the_source_and_user_agent() {
    let h = Harness::new().await;
    let c = h.rotating(0).await;
    let first = h.login(&c, SCOPE).await;
    assert_eq!(h.refresh(&c, &rt(&first)).await.status, StatusCode::OK);
    h.clock.advance_secs(5);
    let old = rt(&first);
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", old.as_str()),
        ("client_id", c.id.as_str()),
        ("client_secret", c.secret.as_deref().unwrap()),
    ];
    h.token_from("203.0.113.50", &[("user-agent", "thief/2.0")], &pairs)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let events = h.events_named("reuse_detected").await;
    let event = &events.last().expect("a reuse_detected event").event;
    assert_eq!(event.source.as_deref(), Some("203.0.113.50"));
    assert_eq!(event.user_agent.as_deref(), Some("thief/2.0"));
}

#[tokio::test]
async fn a_clock_stepped_back_does_not_revive_an_expired_access_token() {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                access_token_ttl_secs: Some(60),
                ..Default::default()
            },
        )
        .await;
    let body = h.login(&c, SCOPE).await;
    let access = at(&body);
    assert!(h.api_works(&access).await);
    h.clock.advance_secs(120);
    assert!(!h.api_works(&access).await, "expired");
    // An hour back: the token's expiry is in the future again, but it was issued ahead of this
    // clock, which therefore cannot be trusted with it.
    h.clock.advance_millis(-3_600_000);
    assert!(!h.api_works(&access).await, "revived by the clock step");
    let introspected = h.introspect(&c, &access).await.json();
    assert_eq!(introspected["active"], false);
    // Tokens issued after the step work as usual.
    let fresh = h.refresh(&c, &rt(&body)).await.json();
    assert!(h.api_works(&at(&fresh)).await);
}
