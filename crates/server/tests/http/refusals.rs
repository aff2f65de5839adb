//! Why a refresh was refused, and why no refresh token was issued: said on the server (the
//! audit trail), never on the wire, where every refused refresh token gets Salesforce's one
//! answer.

use axum::http::StatusCode;
use serde_json::json;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::policy::{PolicyUnit, RefreshTokenPolicy};

use crate::support::*;

const SOURCE: &str = "198.51.100.20";

/// The refresh token of a login with `api refresh_token`.
async fn refresh_token_of(h: &Harness, client: &Client) -> String {
    h.login(client, "api refresh_token").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `refresh_token` presented by `client` from [`SOURCE`]: answered exactly as Salesforce
/// answers a token it does not accept.
async fn refused(h: &Harness, client: &Client, refresh_token: &str) {
    let reply = h.refresh_from(SOURCE, client, refresh_token).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
}

/// The `refresh_refused` events, once `count` of them have been written.
async fn refusal_events(h: &Harness, count: usize) -> Vec<tessera_core::model::Event> {
    h.events_written("refresh_refused", count)
        .await
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn each_refused_refresh_is_recorded_with_its_reason_and_never_the_token() {
    let h = Harness::new().await;
    let app = h.rotating(60).await;
    let other = h.rotating(60).await;
    let short_lived = h
        .client(
            false,
            ClientSettings {
                refresh_token_policy: Some(RefreshTokenPolicy::SpecificLifetime {
                    amount: 90,
                    unit: PolicyUnit::Seconds,
                }),
                ..Default::default()
            },
        )
        .await;
    let withdrawn = h.confidential().await;

    let genuine = refresh_token_of(&h, &app).await;
    let forged = format!("{}{}", &genuine[..24], "A".repeat(genuine.len() - 24));
    let unknown = "a-token-this-server-never-issued".to_owned();
    let expiring = refresh_token_of(&h, &short_lived).await;
    let revoked = refresh_token_of(&h, &app).await;
    let withdrawn_token = refresh_token_of(&h, &withdrawn).await;

    refused(&h, &app, &forged).await;
    refused(&h, &app, &unknown).await;
    refused(&h, &other, &genuine).await;
    h.clock.advance_secs(100);
    refused(&h, &short_lived, &expiring).await;
    assert_eq!(h.revoke(&revoked).await.status, StatusCode::OK);
    refused(&h, &app, &revoked).await;
    h.authority
        .operator()
        .update_client(
            &withdrawn.id,
            &ClientSettings {
                scopes: Some("api id".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    refused(&h, &withdrawn, &withdrawn_token).await;

    let events = refusal_events(&h, 6).await;
    let expected = [
        (&app, "malformed token", &forged),
        (&app, "unknown token", &unknown),
        (&other, "issued to another client", &genuine),
        (
            &short_lived,
            "expired under the refresh token policy",
            &expiring,
        ),
        (&app, "revoked family", &revoked),
        (
            &withdrawn,
            "client no longer allowed refresh tokens",
            &withdrawn_token,
        ),
    ];
    assert_eq!(events.len(), expected.len(), "{events:?}");
    for (client, reason, token) in expected {
        let event = events
            .iter()
            .find(|e| e.detail == reason)
            .unwrap_or_else(|| panic!("no event for {reason}: {events:?}"));
        assert_eq!(event.client_id.as_deref(), Some(client.id.as_str()));
        assert_eq!(event.source.as_deref(), Some(SOURCE));
        assert_eq!(event.grant_id, None);
        let written = format!("{event:?}");
        let hash = hex(tessera_core::tokens::hash::secret_hash(token).as_ref());
        assert!(!written.contains(token.as_str()), "{written}");
        assert!(!written.contains(&hash), "{written}");
    }
    // Still refused, and the valid token still refreshes: nothing was revoked by a refusal.
    assert_eq!(h.refresh(&app, &genuine).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_refusal_repeated_from_one_source_is_one_event_with_its_count() {
    let h = Harness::new().await;
    let app = h.rotating(60).await;
    for i in 0..5 {
        refused(&h, &app, &format!("a-made-up-token-{i}")).await;
    }
    let events = refusal_events(&h, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    // Once the window has ended, housekeeping reports the repeats, from that source.
    h.clock.advance_secs(61);
    h.authority.housekeeping().await.unwrap();
    let events = refusal_events(&h, 2).await;
    let summary = events.last().unwrap();
    assert!(
        summary
            .detail
            .starts_with("unknown token: repeats (+4 repeats since"),
        "{summary:?}"
    );
    assert_eq!(summary.source.as_deref(), Some(SOURCE));
    assert_eq!(summary.client_id.as_deref(), Some(app.id.as_str()));
}

#[tokio::test]
async fn a_successful_refresh_and_a_reuse_write_no_refusal_event() {
    let h = Harness::new().await;
    let app = h.rotating(0).await;
    let rt1 = refresh_token_of(&h, &app).await;
    let reply = h.refresh(&app, &rt1).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Past the grace, the rotated-out token is reuse: `reuse_detected` is its one record.
    h.clock.advance_secs(3);
    refused(&h, &app, &rt1).await;
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
    // A refusal after it is written, and it is the only one: the reuse wrote none.
    refused(&h, &app, "a-made-up-token").await;
    let events = refusal_events(&h, 1).await;
    let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["unknown token"]);
}

#[tokio::test]
async fn a_login_without_refresh_scope_records_why_no_refresh_token_was_issued() {
    let h = Harness::new().await;
    let app = h.confidential().await;
    let without = h.login(&app, "api").await;
    assert!(without.get("refresh_token").is_none(), "{without}");
    let with = h.login(&app, "api refresh_token").await;
    assert!(with["refresh_token"].is_string(), "{with}");
    let issued = h.events_named("issued").await;
    let details: Vec<&str> = issued.iter().map(|e| e.event.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "no refresh token: scope lacks refresh_token / offline_access",
            ""
        ]
    );
}

#[tokio::test]
async fn a_refused_refresh_shows_on_the_consoles_events_page_under_its_kind() {
    let h = crate::console::with_admin().await;
    let app = h.rotating(60).await;
    refused(&h, &app, "a-made-up-token").await;
    refusal_events(&h, 1).await;
    let mut browser = crate::console::logged_in_admin(&h).await;
    let page = h
        .get("/admin/events?kind=refresh_refused", Some(&mut browser))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(
        text.contains("option value=\"refresh_refused\" selected"),
        "{text}"
    );
    assert!(text.contains("data-kind=\"refresh_refused\""), "{text}");
    assert!(text.contains("unknown token"), "{text}");
    assert!(text.contains(SOURCE), "{text}");
    assert!(!text.contains("a-made-up-token"), "{text}");
}
