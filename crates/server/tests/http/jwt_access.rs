//! JWT access tokens (RFC 9068) for a client that asks for them: what the token endpoint and
//! the User-Agent flow hand out, what the REST API accepts and refuses, revocation and
//! introspection (docs/openid-connect.md, "JWT access tokens").

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::Clock;

use crate::resource::assert_invalid_session;
use crate::support::*;

const TTL_SECS: u64 = 900;
const SCOPE: &str = "api id refresh_token";

/// A harness with a signing key, and a rotating client with JWT access tokens and a retry
/// window.
async fn jwt_client() -> (Harness, Client) {
    let h = Harness::new().await;
    h.authority.rotate_signing_keys_when_due().await.unwrap();
    let client = h
        .client(
            false,
            ClientSettings {
                jwt_access_tokens: Some(true),
                access_token_ttl_secs: Some(TTL_SECS),
                rotate_refresh_tokens: Some(true),
                refresh_retry_window_secs: Some(30),
                allow_user_agent_flow: Some(true),
                ..Default::default()
            },
        )
        .await;
    (h, client)
}

fn part(token: &str, index: usize) -> Value {
    let encoded = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

fn encoded(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The token's claims, verified as a relying party would: against `GET /id/keys`, by kid.
async fn verified_claims(h: &Harness, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&h.get("/id/keys", None).await.text()).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    // Judged on the harness's clock, below, not the machine's.
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

fn access_token(response: &Value) -> String {
    response["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_jwt_client_gets_an_at_jwt_that_verifies_against_the_jwks_and_opens_the_api() {
    let (h, client) = jwt_client().await;
    let response = h.login(&client, SCOPE).await;
    let token = access_token(&response);
    assert_eq!(token.split('.').count(), 3, "{token}");
    let header = part(&token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());

    let claims = verified_claims(&h, &token).await;
    let now = h.clock.now().seconds();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], ISSUER);
    assert_eq!(claims["sub"], response["id"]);
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], response["scope"]);
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + TTL_SECS as i64);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    assert_eq!(claims["tessera_grant"].as_str().unwrap().len(), 24);

    assert!(h.api_works(&token).await);
    let identity = h
        .api(Method::GET, response["id"].as_str().unwrap(), &token, None)
        .await;
    assert_eq!(identity.status, StatusCode::OK, "{}", identity.text());
    assert_eq!(identity.json()["username"], USERNAME);
}

#[tokio::test]
async fn a_rotation_and_its_in_window_replay_return_the_same_jwt_access_token() {
    let (h, client) = jwt_client().await;
    let first = h.login(&client, SCOPE).await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    h.clock.advance_secs(5);
    let rotated = h.refresh(&client, first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let rotated = rotated.json();
    let token = access_token(&rotated);
    assert_ne!(token, access_token(&first));
    let claims = verified_claims(&h, &token).await;
    assert_eq!(claims["iat"], h.clock.now().seconds());
    assert_ne!(claims["jti"], part(&access_token(&first), 1)["jti"]);

    // The response was lost; the client sends the same refresh token again.
    h.clock.advance_secs(10);
    let replayed = h.refresh(&client, first_refresh).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.text());
    assert_eq!(access_token(&replayed.json()), token);
    assert_eq!(replayed.json()["refresh_token"], rotated["refresh_token"]);
    assert!(h.api_works(&token).await);
}

#[tokio::test]
async fn the_user_agent_flow_puts_a_jwt_access_token_in_the_fragment() {
    let (h, client) = jwt_client().await;
    let url = h
        .authorize_url(&client, &[("state", "ua")])
        .replace("response_type=code", "response_type=token");
    let location = h.after_login_and_consent(&url, "allow").await;
    let token = url_param(&location, "access_token").unwrap();
    assert_eq!(part(&token, 0)["typ"], "at+jwt");
    assert_eq!(verified_claims(&h, &token).await["client_id"], client.id);
    assert!(h.api_works(&token).await);
}

#[tokio::test]
async fn expired_tampered_forged_unknown_kid_and_oversized_jwts_get_invalid_session() {
    let (h, client) = jwt_client().await;
    let token = access_token(&h.login(&client, SCOPE).await);
    let (header, claims) = (part(&token, 0), part(&token, 1));
    let signature = token.rsplit('.').next().unwrap();

    let mut widened = claims.clone();
    widened["scope"] = json!("api id refresh_token full");
    let tampered = format!("{}.{}.{signature}", encoded(&header), encoded(&widened));
    let none_header = json!({ "alg": "none", "typ": "at+jwt", "kid": header["kid"] });
    let alg_none = format!("{}.{}.", encoded(&none_header), encoded(&claims));
    // HS256 keyed with the published RSA key: the algorithm confusion.
    let jwks = h.get("/id/keys", None).await.text();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut other_kid = header.clone();
    other_kid["kid"] = json!("00112233445566778899aabb");
    let unknown_kid = format!("{}.{}.{signature}", encoded(&other_kid), encoded(&claims));
    let oversized = format!("{}.{}.{signature}", encoded(&header), "A".repeat(10_240));

    let reads_before = h.store.signing_key_reads();
    for (what, bad) in [
        ("tampered payload", tampered),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("unknown kid", unknown_kid.clone()),
        ("unknown kid again", unknown_kid),
        ("10 KB", oversized),
        ("garbage", "eyJ.eyJ.sig".to_owned()),
    ] {
        let reply = h
            .api(Method::GET, "/services/data/v65.0/", &bad, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_invalid_session(&reply);
    }
    assert!(
        h.store.signing_key_reads() <= reads_before + 1,
        "an unknown kid read the keys more than once"
    );

    assert!(h.api_works(&token).await);
    h.clock.advance_secs(TTL_SECS);
    assert_invalid_session(
        &h.api(Method::GET, "/services/data/v65.0/", &token, None)
            .await,
    );
}

#[tokio::test]
async fn a_revoked_jwt_access_token_or_grant_is_refused_on_the_next_request() {
    let (h, client) = jwt_client().await;
    let first = access_token(&h.login(&client, SCOPE).await);
    let second = h.login(&client, SCOPE).await;
    assert!(h.api_works(&first).await);
    assert_eq!(h.revoke(&first).await.status, StatusCode::OK);
    assert!(!h.api_works(&first).await);
    // Revoking it again is a success that changes nothing.
    assert_eq!(h.revoke(&first).await.status, StatusCode::OK);

    let second_token = access_token(&second);
    assert!(h.api_works(&second_token).await);
    let revoked = h.revoke(second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(!h.api_works(&second_token).await);
}

#[tokio::test]
async fn introspection_answers_for_jwt_and_opaque_access_tokens() {
    let (h, client) = jwt_client().await;
    let response = h.login(&client, SCOPE).await;
    let token = access_token(&response);
    let claims = part(&token, 1);
    let answer = h.introspect(&client, &token).await.json();
    assert_eq!(
        answer,
        json!({
            "active": true,
            "scope": response["scope"],
            "client_id": client.id,
            "username": USERNAME,
            "sub": response["id"],
            "token_type": "access_token",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "nbf": claims["iat"],
            "jti": claims["jti"],
        })
    );

    let opaque_client = h.confidential().await;
    let opaque = access_token(&h.login(&opaque_client, SCOPE).await);
    let answer = h.introspect(&opaque_client, &opaque).await.json();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "access_token");
    assert!(answer.get("jti").is_none(), "{answer}");
    // Another client's JWT is not this client's to introspect.
    assert_eq!(
        h.introspect(&opaque_client, &token).await.json(),
        json!({ "active": false })
    );

    h.revoke(&token).await;
    assert_eq!(
        h.introspect(&client, &token).await.json(),
        json!({ "active": false })
    );
}
