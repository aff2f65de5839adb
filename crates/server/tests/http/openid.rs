//! ID tokens as a relying party receives them (docs/openid-connect.md, "ID tokens"): from the
//! code exchange, the `token id_token` fragment and every refresh, each verified against the
//! keys `/id/keys` publishes; and the authorization requests OpenID Connect adds that are
//! refused.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::model::SigningAlg;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

const OPENID: &str = "api id refresh_token openid";
const NONCE: &str = "n-0S6_WzA2Mj";
/// The harness clock's start, in seconds.
const START: i64 = 1_800_000_000;

/// A confidential client allowed `openid` (and the User-Agent flow), with `settings`.
async fn openid_client(h: &Harness, settings: ClientSettings) -> Client {
    h.client(
        false,
        ClientSettings {
            scopes: Some(OPENID.into()),
            allow_user_agent_flow: Some(true),
            ..settings
        },
    )
    .await
}

/// A harness whose signing keys exist (housekeeping makes them on a server), and a client
/// allowed `openid` with `settings`.
async fn openid_harness(settings: ClientSettings) -> (Harness, Client) {
    let h = Harness::new().await;
    h.authority.rotate_signing_keys_when_due().await.unwrap();
    let c = openid_client(&h, settings).await;
    (h, c)
}

/// What OpenID Connect Core §3.1.3.6 says `at_hash` is, computed here independently.
fn expected_at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The claims of `id_token`, its signature verified with the key `/id/keys` publishes under
/// its `kid`, for the audience `client`, as a relying party verifies it. (`exp` is checked by
/// the tests against the harness clock, not against this machine's.)
async fn verified(h: &Harness, id_token: &str, client: &Client) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&h.get("/id/keys", None).await.text()).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().expect("a kid"))
        .expect("the kid is published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&client.id]);
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(
        id_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap_or_else(|e| panic!("{e}: {id_token}"))
    .claims;
    (header, claims)
}

fn id_token_of(body: &Value) -> &str {
    body["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {body}"))
}

/// The Web Server flow with `extra` parameters, logged in `login_delay_secs` before the
/// authorization that gives the code (the browser keeps its session meanwhile): the token
/// response.
async fn code_flow(
    h: &Harness,
    c: &Client,
    extra: &[(&str, &str)],
    login_delay_secs: u64,
) -> Value {
    let mut browser = Browser::default();
    let mut params = vec![("scope", OPENID), ("state", "s")];
    params.extend_from_slice(extra);
    h.authorize_in(&mut browser, c, &params).await;
    h.clock.advance_secs(login_delay_secs);
    let location = h.authorize_in(&mut browser, c, &params).await;
    let code = url_param(&location, "code").expect("a code");
    let reply = h.exchange(c, &code, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

fn refresh_token_of(body: &Value) -> &str {
    body["refresh_token"].as_str().unwrap()
}

#[tokio::test]
async fn the_code_exchange_of_an_openid_grant_returns_an_id_token_that_verifies() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    let body = code_flow(&h, &c, &[("nonce", NONCE)], 100).await;
    let (header, claims) = verified(&h, id_token_of(&body), &c).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(claims["iss"], ISSUER);
    // The identity URL, as the token response's `id` and userinfo's `sub`.
    assert_eq!(claims["sub"], body["id"]);
    assert_eq!(claims["aud"], c.id.as_str());
    assert_eq!(claims["azp"], c.id.as_str());
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(
        claims["at_hash"],
        expected_at_hash(body["access_token"].as_str().unwrap())
    );
    // auth_time is when the user typed the password, not when the code was made.
    assert_eq!(claims["auth_time"], START);
    assert_eq!(claims["iat"], START + 100);
    assert_eq!(claims["exp"], START + 100 + 120);
    assert!(claims.get("preferred_username").is_none(), "{claims}");
}

#[tokio::test]
async fn without_openid_no_id_token_is_issued_nor_on_refresh() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    let body = h.login(&c, "api refresh_token").await;
    assert!(body.get("id_token").is_none(), "{body}");
    let refreshed = h.refresh(&c, refresh_token_of(&body)).await.json();
    assert!(refreshed.get("id_token").is_none(), "{refreshed}");
}

#[tokio::test]
async fn every_refresh_returns_a_new_id_token_with_the_same_identity_and_no_nonce() {
    for rotate in [false, true] {
        let (h, c) = openid_harness(ClientSettings {
            rotate_refresh_tokens: Some(rotate),
            ..Default::default()
        })
        .await;
        let first = code_flow(&h, &c, &[("nonce", NONCE)], 0).await;
        let (_, original) = verified(&h, id_token_of(&first), &c).await;
        let mut refresh_token = refresh_token_of(&first).to_owned();
        for step in 1..=2 {
            h.clock.advance_secs(300);
            let reply = h.refresh(&c, &refresh_token).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let body = reply.json();
            let (_, claims) = verified(&h, id_token_of(&body), &c).await;
            // OpenID Connect Core §12.2, as the conformance suite's CompareIdTokenClaims checks.
            for same in ["iss", "sub", "aud", "azp", "auth_time"] {
                assert_eq!(claims[same], original[same], "{same} (rotate {rotate})");
            }
            assert_eq!(claims["iat"], START + 300 * step);
            assert!(claims["iat"].as_i64() > original["iat"].as_i64());
            assert!(claims.get("nonce").is_none(), "{claims}");
            assert_eq!(
                claims["at_hash"],
                expected_at_hash(body["access_token"].as_str().unwrap())
            );
            if rotate {
                refresh_token = refresh_token_of(&body).to_owned();
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_asks_gets_the_nonce_again_on_refresh() {
    let (h, c) = openid_harness(ClientSettings {
        echo_nonce_on_refresh: Some(true),
        ..Default::default()
    })
    .await;
    let first = code_flow(&h, &c, &[("nonce", NONCE)], 0).await;
    let body = h.refresh(&c, refresh_token_of(&first)).await.json();
    let (_, claims) = verified(&h, id_token_of(&body), &c).await;
    assert_eq!(claims["nonce"], NONCE);
}

#[tokio::test]
async fn a_replay_inside_the_retry_window_returns_the_identical_id_token() {
    let (h, c) = openid_harness(ClientSettings {
        rotate_refresh_tokens: Some(true),
        refresh_retry_window_secs: Some(60),
        ..Default::default()
    })
    .await;
    let first = code_flow(&h, &c, &[], 0).await;
    let rotated = h.refresh(&c, refresh_token_of(&first)).await.json();
    h.clock.advance_secs(10);
    let replayed = h.refresh(&c, refresh_token_of(&first)).await.json();
    assert_eq!(replayed["refresh_token"], rotated["refresh_token"]);
    assert_eq!(id_token_of(&replayed), id_token_of(&rotated));
}

/// The authorization URL of `c` with `response_type` and `extra` parameters.
fn authorize_url_for(
    h: &Harness,
    c: &Client,
    response_type: &str,
    extra: &[(&str, &str)],
) -> String {
    h.authorize_url(c, extra).replace(
        "response_type=code",
        &form(&[("response_type", response_type)]),
    )
}

/// The User-Agent flow with `response_type` and `extra` parameters: the final redirect's
/// Location, or the error redirect when the request is refused.
async fn user_agent_flow(
    h: &Harness,
    c: &Client,
    response_type: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = vec![("state", "ua")];
    params.extend_from_slice(extra);
    let mut browser = Browser::default();
    let url = authorize_url_for(h, c, response_type, &params);
    let reply = h.get(&url, Some(&mut browser)).await;
    if reply.status == StatusCode::FOUND {
        return reply.location();
    }
    let after_login = h.submit_login(&mut browser, &reply, PASSWORD).await;
    if after_login.status == StatusCode::FOUND {
        // Consented before.
        return after_login.location();
    }
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    h.submit_consent(&mut browser, &consent, "allow")
        .await
        .location()
}

#[tokio::test]
async fn token_id_token_puts_an_id_token_with_at_hash_and_nonce_in_the_fragment() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    for response_type in ["token id_token", "id_token token"] {
        let location = user_agent_flow(
            &h,
            &c,
            response_type,
            &[("nonce", NONCE), ("scope", "openid api")],
        )
        .await;
        assert!(location.starts_with(&format!("{REDIRECT}#")), "{location}");
        let id_token = url_param(&location, "id_token").expect("an id_token in the fragment");
        let access_token = url_param(&location, "access_token").unwrap();
        let (_, claims) = verified(&h, &id_token, &c).await;
        assert_eq!(claims["nonce"], NONCE);
        assert_eq!(claims["at_hash"], expected_at_hash(&access_token));
        assert_eq!(claims["auth_time"], START);
        assert_eq!(
            Some(claims["sub"].as_str().unwrap().to_owned()),
            url_param(&location, "id")
        );
    }
    // `token` alone answers what an OAuth client expects: no ID token in its fragment.
    let location = user_agent_flow(&h, &c, "token", &[("scope", "openid api")]).await;
    assert!(url_param(&location, "access_token").is_some(), "{location}");
    assert!(url_param(&location, "id_token").is_none(), "{location}");
}

#[tokio::test]
async fn token_id_token_without_a_nonce_or_without_openid_is_refused_in_the_fragment() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    for (extra, description) in [
        (
            vec![("scope", "openid api")],
            "nonce is required with response_type id_token",
        ),
        (
            vec![("scope", "api"), ("nonce", NONCE)],
            "response_type id_token requires the openid scope",
        ),
    ] {
        let location = user_agent_flow(&h, &c, "token id_token", &extra).await;
        assert!(
            location.starts_with(&format!("{REDIRECT}#error=invalid_request")),
            "{location}"
        );
        assert_eq!(
            url_param(&location, "error_description").as_deref(),
            Some(description)
        );
        assert_eq!(url_param(&location, "state").as_deref(), Some("ua"));
    }
}

#[tokio::test]
async fn a_ten_kilobyte_nonce_is_an_invalid_request_at_the_redirect() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    let nonce = "n".repeat(10 * 1024);
    let reply = h
        .get(
            &h.authorize_url(&c, &[("scope", OPENID), ("nonce", &nonce)]),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
    let location = reply.location();
    assert!(
        location.starts_with(&format!("{REDIRECT}?error=invalid_request")),
        "{location}"
    );
    assert_eq!(
        url_param(&location, "error_description").as_deref(),
        Some("nonce is too long")
    );
}

#[tokio::test]
async fn the_response_types_salesforce_refuses_are_unsupported() {
    let (h, c) = openid_harness(ClientSettings::default()).await;
    for response_type in [
        "id_token",
        "code id_token",
        "code token",
        "code id_token token",
        "none",
    ] {
        let url = authorize_url_for(
            &h,
            &c,
            response_type,
            &[("scope", OPENID), ("nonce", NONCE)],
        );
        let reply = h.get(&url, None).await;
        assert_eq!(
            reply.status,
            StatusCode::FOUND,
            "{response_type}: {}",
            reply.text()
        );
        assert_eq!(
            url_param(&reply.location(), "error").as_deref(),
            Some("unsupported_response_type"),
            "{response_type}"
        );
    }
}

#[tokio::test]
async fn openid_asked_by_a_client_not_allowed_it_is_an_invalid_scope() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let reply = h
        .get(
            &h.authorize_url(&c, &[("scope", "api openid"), ("nonce", NONCE)]),
            None,
        )
        .await;
    assert_eq!(
        url_param(&reply.location(), "error").as_deref(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn an_es256_client_gets_id_tokens_its_ec_key_verifies() {
    let (h, c) = openid_harness(ClientSettings {
        id_token_alg: Some(SigningAlg::Es256),
        ..Default::default()
    })
    .await;
    let body = code_flow(&h, &c, &[("nonce", NONCE)], 0).await;
    let (header, claims) = verified(&h, id_token_of(&body), &c).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["nonce"], NONCE);
    let keys = h.get("/id/keys", None).await.json();
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.as_deref().unwrap())
        .unwrap()
        .clone();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let refreshed = h.refresh(&c, refresh_token_of(&body)).await.json();
    let (header, _) = verified(&h, id_token_of(&refreshed), &c).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

#[tokio::test]
async fn the_clients_id_token_settings_shape_its_tokens() {
    let (h, c) = openid_harness(ClientSettings {
        id_token_validity_secs: Some(5 * 60),
        id_token_audiences: Some(vec!["https://api.example.com".into()]),
        id_token_standard_claims: Some(true),
        ..Default::default()
    })
    .await;
    let body = code_flow(&h, &c, &[], 0).await;
    let (_, claims) = verified(&h, id_token_of(&body), &c).await;
    assert_eq!(
        claims["aud"],
        serde_json::json!([c.id, "https://api.example.com"])
    );
    assert_eq!(claims["azp"], c.id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(claims["preferred_username"], USERNAME);
    assert!(claims.get("nonce").is_none(), "no nonce was sent: {claims}");
}

#[tokio::test]
async fn without_a_key_that_can_sign_the_exchange_answers_503_and_issues_nothing() {
    // No housekeeping has run: no key exists.
    let h = Harness::new().await;
    let c = openid_client(&h, ClientSettings::default()).await;
    let code = h.code(&c, &[("scope", OPENID)]).await;
    let reply = h.exchange(&c, &code, None).await;
    reply.assert_oauth_error(503, "temporarily_unavailable");
    assert!(h.events_named("issued").await.is_empty());
}
