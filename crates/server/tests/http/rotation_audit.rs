//! Rotation audit mode (docs/controls.md, "Rotation audit mode") through HTTP: a rotated-out
//! refresh token answered 200 and recorded, then the same sequence revoking the family once the
//! client is switched to rotation on.

use axum::http::StatusCode;
use serde_json::Value;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";
const WINDOW: u64 = 60;

fn audit() -> ClientSettings {
    ClientSettings {
        rotation_audit: Some(true),
        refresh_retry_window_secs: Some(WINDOW),
        ..Default::default()
    }
}

fn rotation_on() -> ClientSettings {
    ClientSettings {
        rotate_refresh_tokens: Some(true),
        rotation_audit: Some(false),
        ..Default::default()
    }
}

fn refresh_token(reply: &Value) -> String {
    reply["refresh_token"].as_str().unwrap().to_owned()
}

/// Logs in, rotates the first refresh token once, lets the retry window pass, and presents the
/// first token again from `peer`: the client that did not keep its new token. Returns the
/// token the rotation issued and the last reply.
pub(crate) async fn present_a_token_rotated_out_past_the_window(
    h: &Harness,
    client: &Client,
    peer: &str,
) -> (String, Reply) {
    let first = refresh_token(&h.login(client, SCOPE).await);
    let rotated = h.refresh(client, &first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let second = refresh_token(&rotated.json());
    h.clock.advance_secs(WINDOW + 1);
    (second, h.refresh_from(peer, client, &first).await)
}

async fn audit_mode_answers_a_rotated_out_token_then_rotation_on_revokes_the_family_for_the_same_sequence(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let client = h.client(false, audit()).await;

    let (second, reply) =
        present_a_token_rotated_out_past_the_window(&h, &client, "198.51.100.7").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answered = reply.json();
    let third = refresh_token(&answered);
    assert_ne!(third, second, "a new pair");
    assert!(
        h.api_works(answered["access_token"].as_str().unwrap())
            .await
    );
    let audited = h.events_named("rotation_audit").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].event.source.as_deref(), Some("198.51.100.7"));
    assert!(
        audited[0]
            .event
            .detail
            .contains("did not keep the new token"),
        "{:?}",
        audited[0].event
    );
    assert!(h.events_named("reuse_detected").await.is_empty());
    // Nothing was revoked: the new token refreshes, and so would the family go on.
    let next = h.refresh(&client, &third).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());

    // The evidence read, the client is switched to rotation on: the same sequence is reuse.
    h.authority
        .operator()
        .update_client(&client.id, &rotation_on())
        .await
        .unwrap();
    let (second, reply) =
        present_a_token_rotated_out_past_the_window(&h, &client, "198.51.100.7").await;
    reply.assert_oauth_error(400, "invalid_grant");
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
    h.refresh(&client, &second)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        h.events_named("rotation_audit").await.len(),
        1,
        "no more audits"
    );
    // The family audit mode kept alive is untouched by the switch.
    let kept = refresh_token(&next.json());
    let still = h.refresh(&client, &kept).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text());
}

async fn in_audit_mode_the_retry_window_still_answers_the_same_pair_and_a_revoked_family_stays_refused(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let client = h.client(false, audit()).await;
    let first = refresh_token(&h.login(&client, SCOPE).await);
    let rotated = h.refresh(&client, &first).await.json();
    // Inside the window: the replay rule, the same pair, no audit event.
    let replayed = h.refresh(&client, &first).await.json();
    assert_eq!(replayed["refresh_token"], rotated["refresh_token"]);
    assert_eq!(replayed["access_token"], rotated["access_token"]);
    assert!(h.events_named("rotation_audit").await.is_empty());
    // Revoked (RFC 7009, by the holder of the current token): every token of the family is
    // refused, the rotated-out one too, audit mode or not.
    let revoked = h.revoke(&refresh_token(&rotated)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    h.clock.advance_secs(WINDOW + 1);
    h.refresh(&client, &first)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(h.events_named("rotation_audit").await.is_empty());
}

on_sqlite_and_postgres!(
    audit_mode_answers_a_rotated_out_token_then_rotation_on_revokes_the_family_for_the_same_sequence,
    in_audit_mode_the_retry_window_still_answers_the_same_pair_and_a_revoked_family_stays_refused,
);
