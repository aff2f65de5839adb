//! The refresh-token lifecycle on the HTTP surface: rotation, the retry window, reuse
//! detection, concurrency, revocation, introspection, the approval limit, housekeeping and the
//! audit trail (docs/security.md, "Rotation" through "Reuse detection", "Revocation and
//! introspection", "The audit trail"; docs/decisions.md, "Retry window of 60 seconds").

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";

fn rt(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

fn at(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn rotation_replaces_the_refresh_token_at_every_refresh() {
    let h = Harness::new().await;
    let c = h.rotating(0).await;
    let mut token = rt(&h.login(&c, SCOPE).await);
    let mut seen = vec![token.clone()];
    for _ in 0..5 {
        let reply = h.refresh(&c, &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        token = rt(&reply.json());
        assert!(!seen.contains(&token));
        seen.push(token.clone());
    }
}

#[tokio::test]
async fn reuse_outside_the_window_revokes_the_family_including_the_newest_access_token() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    h.clock.advance_secs(61);
    let reuse = h.refresh(&c, &rt(&first)).await;
    reuse.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        reuse.json()["error_description"],
        "expired access/refresh token"
    );
    // The revocation stood although the request failed: the newest pair is dead.
    h.refresh(&c, &rt(&second))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!h.api_works(&at(&second)).await);
    assert!(!h.api_works(&at(&first)).await);
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
}

#[tokio::test]
async fn replay_inside_the_window_returns_the_identical_pair_however_often() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    for _ in 0..3 {
        h.clock.advance_secs(10);
        let again = h.refresh(&c, &rt(&first)).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        let again = again.json();
        assert_eq!(again["refresh_token"], second["refresh_token"]);
        assert_eq!(again["access_token"], second["access_token"]);
        assert_eq!(again["issued_at"], second["issued_at"]);
        assert_eq!(again["signature"], second["signature"]);
    }
    // Nothing was revoked: the successor works, and so does its access token.
    assert!(h.api_works(&at(&second)).await);
    let third = h.refresh(&c, &rt(&second)).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(h.events_named("retry_replayed").await.len(), 3);
}

#[tokio::test]
async fn replay_after_the_successor_was_used_is_reuse() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    let third = h.refresh(&c, &rt(&second)).await.json();
    // Still inside the window, but the successor has been used.
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.refresh(&c, &rt(&third))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!h.api_works(&at(&third)).await);
}

#[tokio::test]
async fn only_the_immediately_previous_token_may_be_replayed() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    let third = h.refresh(&c, &rt(&second)).await.json();
    // The token two generations back: reuse (django-oauth-toolkit #1617 must not happen here).
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!h.api_works(&at(&third)).await);
}

#[tokio::test]
async fn replay_after_the_window_is_reuse() {
    let h = Harness::new().await;
    let c = h.rotating(30).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    h.clock.advance_secs(29);
    assert_eq!(
        h.refresh(&c, &rt(&first)).await.json()["refresh_token"],
        second["refresh_token"]
    );
    h.clock.advance_secs(1);
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.refresh(&c, &rt(&second))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn window_zero_is_salesforce_strict() {
    let h = Harness::new().await;
    let c = h.rotating(0).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    // Right after the rotation a duplicate is taken for a simultaneous request: refused,
    // nothing issued, nothing revoked.
    let duplicate = h.refresh(&c, &rt(&first)).await;
    duplicate.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        duplicate.json()["error_description"],
        "token request is already being processed"
    );
    assert!(h.api_works(&at(&second)).await);
    // Any later replay is reuse.
    h.clock.advance_secs(2);
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.refresh(&c, &rt(&second))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!h.api_works(&at(&second)).await);
}

#[tokio::test]
async fn tampered_or_forged_refresh_tokens_revoke_nothing() {
    let h = Harness::new().await;
    let c = h.rotating(0).await;
    let other = h.login(&c, SCOPE).await;
    let mine = h.login(&c, SCOPE).await;
    let token = rt(&mine);
    let mut flipped = token.clone().into_bytes();
    flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // A forged family id: another family's id spliced onto this token.
    let forged = format!("{}{}", &rt(&other)[..24], &token[24..]);
    for bad in [flipped, forged] {
        h.refresh(&c, &bad)
            .await
            .assert_oauth_error(400, "invalid_grant");
    }
    assert_eq!(h.refresh(&c, &token).await.status, StatusCode::OK);
    assert_eq!(h.refresh(&c, &rt(&other)).await.status, StatusCode::OK);
    assert!(h.events_named("reuse_detected").await.is_empty());
}

async fn rotating_with_policy(h: &Harness, policy: &str) -> Client {
    let settings = tessera_core::operations::admin::ClientSettings {
        rotate_refresh_tokens: Some(true),
        refresh_token_policy: Some(policy.parse().unwrap()),
        ..Default::default()
    };
    h.client(false, settings).await
}

#[tokio::test]
async fn lifetime_counts_from_the_original_grant_across_rotations() {
    let h = Harness::new().await;
    let c = rotating_with_policy(&h, "specific_lifetime:1:HOURS").await;
    let mut token = rt(&h.login(&c, SCOPE).await);
    for _ in 0..3 {
        h.clock.advance_secs(1000);
        token = rt(&h.refresh(&c, &token).await.json());
    }
    h.clock.advance_secs(600);
    h.refresh(&c, &token)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn idle_lifetime_slides_across_rotations() {
    let h = Harness::new().await;
    let c = rotating_with_policy(&h, "specific_inactivity:1:HOURS").await;
    let mut token = rt(&h.login(&c, SCOPE).await);
    for _ in 0..5 {
        h.clock.advance_secs(3500);
        let reply = h.refresh(&c, &token).await;
        assert_eq!(reply.status, StatusCode::OK);
        token = rt(&reply.json());
    }
    h.clock.advance_secs(3600);
    h.refresh(&c, &token)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

/// Fires `n` refreshes of the same token at once; returns (status, body) of each.
async fn simultaneous_refreshes(
    h: &Arc<Harness>,
    c: &Arc<Client>,
    token: &str,
    n: usize,
) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (h, c, token, barrier) = (h.clone(), c.clone(), token.to_owned(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let reply = h.refresh(&c, &token).await;
            (
                reply.status,
                serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_refreshes_inside_the_window_share_one_successor() {
    let h = Arc::new(Harness::new().await);
    let c = Arc::new(h.rotating(60).await);
    let mut token = rt(&h.login(&c, SCOPE).await);
    for round in 0..20 {
        let results = simultaneous_refreshes(&h, &c, &token, 50).await;
        assert!(
            results.iter().all(|(s, _)| !s.is_server_error()),
            "round {round}: a 5xx"
        );
        assert!(
            results.iter().all(|(s, _)| *s == StatusCode::OK),
            "round {round}: {results:?}"
        );
        let successors: std::collections::HashSet<String> =
            results.iter().map(|(_, b)| rt(b)).collect();
        assert_eq!(
            successors.len(),
            1,
            "round {round}: {} live successors",
            successors.len()
        );
        token = successors.into_iter().next().unwrap();
    }
    // The last successor is live, and the chain is intact.
    assert_eq!(h.refresh(&c, &token).await.status, StatusCode::OK);
    assert!(h.events_named("reuse_detected").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_refreshes_with_window_zero_let_exactly_one_through() {
    let h = Arc::new(Harness::new().await);
    let c = Arc::new(h.rotating(0).await);
    let mut token = rt(&h.login(&c, SCOPE).await);
    for round in 0..20 {
        let results = simultaneous_refreshes(&h, &c, &token, 50).await;
        assert!(
            results.iter().all(|(s, _)| !s.is_server_error()),
            "round {round}: a 5xx"
        );
        let winners: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::BAD_REQUEST);
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(
                body["error_description"], "token request is already being processed",
                "round {round}"
            );
        }
        // Exactly one live successor, and the losers revoked nothing.
        token = rt(winners[0]);
    }
    assert_eq!(h.refresh(&c, &token).await.status, StatusCode::OK);
    assert!(h.events_named("reuse_detected").await.is_empty());
    assert!(!h
        .events_named("concurrent_refresh_refused")
        .await
        .is_empty());
}

fn form_body(reply: &Reply) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(&reply.body)
        .into_owned()
        .collect()
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_grant_and_every_access_token() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    let other = h.login(&c, SCOPE).await;
    let reply = h.revoke(&rt(&first)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    // The very next request fails, for every access token of the grant.
    assert!(!h.api_works(&at(&first)).await);
    assert!(!h.api_works(&at(&second)).await);
    h.refresh(&c, &rt(&first))
        .await
        .assert_oauth_error(400, "invalid_grant");
    // Another grant of the same user and client is untouched.
    assert!(h.api_works(&at(&other)).await);
    // Revoking again is fine.
    assert_eq!(h.revoke(&rt(&first)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_an_access_token_revokes_only_it() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    let reply = h
        .get(
            &format!(
                "/services/oauth2/revoke?token={}",
                url::form_urlencoded::byte_serialize(at(&first).as_bytes()).collect::<String>()
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!h.api_works(&at(&first)).await);
    assert!(h.api_works(&at(&second)).await);
    assert_eq!(h.refresh(&c, &rt(&first)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revocation_errors_are_form_encoded() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, SCOPE).await;
    let unknown = h.revoke("not-a-token").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(form_body(&unknown)["error"], "invalid_token");
    let missing = h.post_form("/services/oauth2/revoke", "", None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(form_body(&missing)["error"], "invalid_request");
    let json = h
        .send(
            axum::http::Request::post("/services/oauth2/revoke")
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert_eq!(form_body(&json)["error"], "invalid_request");
    // A tampered refresh token is invalid and revokes nothing; a hint never matters.
    let mut tampered = rt(&body).into_bytes();
    tampered[50] = if tampered[50] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(h.revoke(&tampered).await.status, StatusCode::BAD_REQUEST);
    assert!(h.api_works(&at(&body)).await);
    let hinted = h
        .post_form(
            "/services/oauth2/revoke",
            &form(&[("token", &at(&body)), ("token_type_hint", "refresh_token")]),
            None,
        )
        .await;
    assert_eq!(hinted.status, StatusCode::OK);
    assert!(!h.api_works(&at(&body)).await);
}

#[tokio::test]
async fn introspection_describes_own_tokens_and_nothing_else() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let other = h.confidential().await;
    let body = h.login(&c, SCOPE).await;
    let access = h.introspect(&c, &at(&body)).await;
    assert_eq!(access.status, StatusCode::OK);
    assert_eq!(access.header("cache-control"), Some("no-store"));
    let a = access.json();
    assert_eq!(a["active"], true);
    assert_eq!(a["token_type"], "access_token");
    assert_eq!(a["client_id"], c.id);
    assert_eq!(a["username"], USERNAME);
    assert_eq!(a["scope"], "api id refresh_token");
    assert!(a["sub"].as_str().unwrap().contains("/id/00D"));
    assert_eq!(
        a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(a["nbf"], a["iat"]);
    let refresh = h.introspect(&c, &rt(&body)).await.json();
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    // Another client's token, garbage, revoked or expired tokens: {"active": false} and nothing else.
    let inactive = serde_json::json!({ "active": false });
    assert_eq!(h.introspect(&other, &at(&body)).await.json(), inactive);
    assert_eq!(h.introspect(&c, "garbage").await.json(), inactive);
    h.revoke(&at(&body)).await;
    assert_eq!(h.introspect(&c, &at(&body)).await.json(), inactive);
    let fresh = h.refresh(&c, &rt(&body)).await.json();
    h.clock.advance_secs(7200);
    assert_eq!(h.introspect(&c, &at(&fresh)).await.json(), inactive);
}

#[tokio::test]
async fn introspection_requires_client_authentication() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let public = h.client(true, Default::default()).await;
    let body = h.login(&c, SCOPE).await;
    let token = at(&body);
    h.post_form(
        "/services/oauth2/introspect",
        &form(&[("token", &token)]),
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_client_id");
    h.post_form(
        "/services/oauth2/introspect",
        &form(&[
            ("token", &token),
            ("client_id", &c.id),
            ("client_secret", "wrong"),
        ]),
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_client");
    h.introspect(&public, &token)
        .await
        .assert_oauth_error(400, "invalid_client");
    h.post_form(
        "/services/oauth2/introspect",
        &form(&[
            ("client_id", &c.id),
            ("client_secret", c.secret.as_ref().unwrap()),
        ]),
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    assert_eq!(
        h.get("/services/oauth2/introspect", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn the_sixth_approval_revokes_the_oldest_and_rotation_is_not_an_approval() {
    let h = Harness::new().await;
    let c = h.rotating(0).await;
    let mut families = Vec::new();
    for _ in 0..5 {
        families.push(h.login(&c, SCOPE).await);
        // "Oldest" is by creation time; grants issued in the same millisecond have no order.
        h.clock.advance_secs(1);
    }
    // Rotating the newest family many times creates no approval.
    let mut token = rt(&families[4]);
    for _ in 0..8 {
        h.clock.advance_secs(3);
        token = rt(&h.refresh(&c, &token).await.json());
    }
    for f in &families[..4] {
        assert!(h.api_works(&at(f)).await);
    }
    let sixth = h.login(&c, SCOPE).await;
    let evicted = h.refresh(&c, &rt(&families[0])).await;
    evicted.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        evicted.json()["error_description"],
        "expired access/refresh token"
    );
    assert!(!h.api_works(&at(&families[0])).await);
    for f in &families[1..4] {
        assert!(h.api_works(&at(f)).await);
    }
    assert_eq!(h.refresh(&c, &token).await.status, StatusCode::OK);
    assert!(h.api_works(&at(&sixth)).await);
    // Logins without a refresh token are not approvals.
    for _ in 0..3 {
        h.login(&c, "api id").await;
    }
    assert!(h.api_works(&at(&families[1])).await);
}

#[tokio::test]
async fn housekeeping_keeps_the_database_bounded_and_reuse_detection_alive() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let old = rt(&first);
    let mut token = rt(&h.refresh(&c, &old).await.json());
    for _ in 0..30 {
        h.clock.advance_secs(120);
        token = rt(&h.refresh(&c, &token).await.json());
    }
    let count = |counts: &[(String, u64)], table: &str| {
        counts
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
            .unwrap()
    };
    // A family is one row however often it rotated, and access tokens have none.
    let before = h.store.row_counts().await.unwrap();
    assert_eq!(count(&before, "grants"), 1, "{before:?}");
    assert_eq!(count(&before, "access_tokens"), 0, "{before:?}");
    h.clock.advance_secs(7200);
    h.authority.housekeeping().await.unwrap();
    let after = h.store.row_counts().await.unwrap();
    assert_eq!(count(&after, "grants"), 1, "{after:?}");
    // The newest token still works, and a replay of the very first one, whose row is long
    // gone, is still recognised as reuse of its family.
    let newest = h.refresh(&c, &token).await;
    assert_eq!(newest.status, StatusCode::OK);
    h.clock.advance_secs(120);
    h.refresh(&c, &old)
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.refresh(&c, &rt(&newest.json()))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
}

#[tokio::test]
async fn the_audit_trail_records_the_lifecycle_and_never_a_token() {
    let h = Harness::new().await;
    let c = h.rotating(60).await;
    let first = h.login(&c, SCOPE).await;
    let second = h.refresh(&c, &rt(&first)).await.json();
    h.refresh(&c, &rt(&first)).await;
    h.clock.advance_secs(61);
    h.refresh(&c, &rt(&first)).await;
    h.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt(&second)),
        ("client_id", &c.id),
        ("client_secret", "wrong"),
    ])
    .await;
    let other = h.login(&c, SCOPE).await;
    h.revoke(&rt(&other)).await;
    for kind in [
        "issued",
        "rotated",
        "retry_replayed",
        "reuse_detected",
        "revoked",
        "client_auth_failed",
    ] {
        assert!(!h.events_named(kind).await.is_empty(), "no {kind} event");
    }
    let filter = tessera_core::store::EventFilter {
        limit: 10_000,
        ..Default::default()
    };
    let all = h.store.events(&filter).await.unwrap();
    let text = format!("{all:?}");
    for secret in [
        rt(&first),
        at(&first),
        rt(&second),
        at(&second),
        c.secret.clone().unwrap(),
    ] {
        assert!(!text.contains(&secret), "an event holds a secret");
    }
    let issued = &h.events_named("issued").await[0];
    assert_eq!(issued.event.client_id.as_deref(), Some(c.id.as_str()));
    assert!(issued.event.user_id.as_deref().unwrap().starts_with("005"));
    assert!(issued.event.grant_id.is_some());
}
