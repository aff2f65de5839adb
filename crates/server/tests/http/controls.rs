//! The per-client refresh-token controls (docs/controls.md) through HTTP: the idle-limit cap,
//! PKCE required, rotation required, and blocking a client.

use axum::http::{Method, StatusCode};
use tessera_core::operations::admin::{
    ClientSettings, PKCE_REQUIRED_IS_FOREVER, ROTATION_IS_REQUIRED,
};
use tessera_core::time::Clock;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";
const HOUR: u64 = 3600;
const VERIFIER: &str = "a-verifier-long-enough-for-pkce-0123456789-abcdefgh";

async fn client_with(h: &Harness, settings: ClientSettings) -> Client {
    h.client(false, settings).await
}

async fn update(h: &Harness, client: &Client, settings: ClientSettings) -> Result<(), String> {
    h.authority
        .operator()
        .update_client(&client.id, &settings)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

async fn pkce_required_client(h: &Harness) -> Client {
    let settings = ClientSettings {
        pkce_required: Some(true),
        ..Default::default()
    };
    client_with(h, settings).await
}

fn blocked(block: bool) -> ClientSettings {
    ClientSettings {
        blocked: Some(block),
        ..Default::default()
    }
}

async fn the_idle_cap_ends_an_infinite_grant_left_unused_for_the_cap_and_use_keeps_it_alive(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let c = client_with(
        &h,
        ClientSettings {
            idle_cap_secs: Some(Some(HOUR)),
            ..Default::default()
        },
    )
    .await;
    let first = h.login(&c, SCOPE).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    // Each refresh inside the hour restarts it: two hours after the login, still alive.
    for _ in 0..2 {
        h.clock.advance_secs(HOUR - 1);
        let reply = h.refresh(&c, refresh_token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    h.clock.advance_secs(HOUR);
    h.refresh(&c, refresh_token)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

async fn without_the_idle_cap_an_infinite_grant_outlives_any_idle_time(store: TestStore) {
    let h = Harness::on(store).await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    h.clock.advance_secs(400 * 86_400);
    let reply = h
        .refresh(&c, first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn an_idle_cap_set_after_the_login_reaches_the_grant_and_introspection(store: TestStore) {
    let h = Harness::on(store).await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let cap = ClientSettings {
        idle_cap_secs: Some(Some(HOUR)),
        ..Default::default()
    };
    update(&h, &c, cap).await.unwrap();
    let introspected = h.introspect(&c, refresh_token).await.json();
    assert_eq!(introspected["active"], true, "{introspected}");
    let login_secs = h.clock.now().seconds();
    assert_eq!(introspected["exp"].as_i64(), Some(login_secs + HOUR as i64));

    h.clock.advance_secs(HOUR);
    assert_eq!(
        h.introspect(&c, refresh_token).await.json()["active"],
        false
    );
    h.refresh(&c, refresh_token)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

async fn a_pkce_required_client_is_refused_an_authorization_without_a_challenge(store: TestStore) {
    let h = Harness::on(store).await;
    let c = pkce_required_client(&h).await;
    let reply = h
        .get(&h.authorize_url(&c, &[("state", "keep")]), None)
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
    let location = reply.location();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        url_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        url_param(&location, "error_description").as_deref(),
        Some("missing required code challenge")
    );

    // With an S256 challenge it works as for any client.
    let (_, challenge) = pkce(VERIFIER);
    let code = h.code(&c, &[("code_challenge", challenge.as_str())]).await;
    let reply = h.exchange(&c, &code, Some(VERIFIER)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn pkce_required_cannot_be_turned_off(store: TestStore) {
    let h = Harness::on(store).await;
    let c = pkce_required_client(&h).await;
    let unset = ClientSettings {
        pkce_required: Some(false),
        ..Default::default()
    };
    assert_eq!(
        update(&h, &c, unset).await.unwrap_err(),
        PKCE_REQUIRED_IS_FOREVER
    );
    let client = h.authority.operator().client(&c.id).await.unwrap();
    assert!(client.controls.pkce_required);
}

async fn rotation_required_turns_rotation_on_and_refuses_turning_it_off(store: TestStore) {
    let h = Harness::on(store).await;
    let c = client_with(
        &h,
        ClientSettings {
            rotation_required: Some(true),
            ..Default::default()
        },
    )
    .await;
    let first = h.login(&c, SCOPE).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let reply = h.refresh(&c, refresh_token).await.json();
    let successor = reply["refresh_token"].as_str().unwrap();
    assert_ne!(successor, refresh_token, "rotation is on");

    let no_rotation = ClientSettings {
        rotate_refresh_tokens: Some(false),
        ..Default::default()
    };
    assert_eq!(
        update(&h, &c, no_rotation).await.unwrap_err(),
        ROTATION_IS_REQUIRED
    );
    let both_off = ClientSettings {
        rotate_refresh_tokens: Some(false),
        rotation_required: Some(false),
        ..Default::default()
    };
    update(&h, &c, both_off).await.unwrap();
    assert!(
        !h.authority
            .operator()
            .client(&c.id)
            .await
            .unwrap()
            .rotate_refresh_tokens
    );
}

async fn a_blocked_client_is_refused_everywhere_and_unblocking_restores_its_tokens(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let (access, refresh_token) = (
        first["access_token"].as_str().unwrap(),
        first["refresh_token"].as_str().unwrap(),
    );
    assert!(h.api_works(access).await);

    update(&h, &c, blocked(true)).await.unwrap();
    let reply = h.refresh(&c, refresh_token).await;
    reply.assert_oauth_error(400, "unauthorized_client");
    assert_eq!(
        reply.json()["error_description"],
        "this app is blocked by admin"
    );
    assert!(!h.api_works(access).await);
    let userinfo = h
        .api(Method::GET, "/services/oauth2/userinfo", access, None)
        .await;
    // (userinfo answers an invalid token 403, as Salesforce's does.)
    assert_eq!(userinfo.status, StatusCode::FORBIDDEN);
    assert_eq!(h.introspect(&c, access).await.json()["active"], false);
    assert_eq!(
        h.introspect(&c, refresh_token).await.json()["active"],
        false
    );
    let authorization = h.get(&h.authorize_url(&c, &[("state", "s")]), None).await;
    assert_eq!(
        url_param(&authorization.location(), "error").as_deref(),
        Some("unauthorized_client")
    );

    update(&h, &c, blocked(false)).await.unwrap();
    assert!(h.api_works(access).await);
    let reply = h.refresh(&c, refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn a_block_made_on_another_node_takes_effect_on_the_next_request(store: TestStore) {
    let h = Harness::on(store).await;
    let c = h.confidential().await;
    let access = h.login(&c, SCOPE).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // This node has the client cached.
    assert!(h.api_works(&access).await);
    // Blocked in the store, as another node's admin command does; this node hears of it
    // through the change feed only.
    let mut client = h.authority.operator().client(&c.id).await.unwrap();
    client.controls.blocked = true;
    assert!(h.store.update_client(&client, h.clock.now()).await.unwrap());
    h.authority.catch_up().await.unwrap();
    assert!(!h.api_works(&access).await);
}

/// The stamp the store keeps is the harness's manual clock, a hundred days ahead of any real
/// one, and not the database's own (PostgreSQL has one): the controls' timings above rest on it.
async fn the_store_keeps_the_harness_clocks_time_not_the_databases(store: TestStore) {
    let h = Harness::on(store).await;
    h.clock.advance_secs(100 * 86_400);
    let c = h.confidential().await;
    h.login(&c, SCOPE).await;
    let issued = h.events_named("issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].event.at, h.clock.now());
}

on_sqlite_and_postgres!(
    the_store_keeps_the_harness_clocks_time_not_the_databases,
    the_idle_cap_ends_an_infinite_grant_left_unused_for_the_cap_and_use_keeps_it_alive,
    without_the_idle_cap_an_infinite_grant_outlives_any_idle_time,
    an_idle_cap_set_after_the_login_reaches_the_grant_and_introspection,
    a_pkce_required_client_is_refused_an_authorization_without_a_challenge,
    pkce_required_cannot_be_turned_off,
    rotation_required_turns_rotation_on_and_refuses_turning_it_off,
    a_blocked_client_is_refused_everywhere_and_unblocking_restores_its_tokens,
    a_block_made_on_another_node_takes_effect_on_the_next_request,
);
