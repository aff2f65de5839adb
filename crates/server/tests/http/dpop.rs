//! DPoP (RFC 9449) through HTTP: what a proof binds at the token endpoint, what the resource
//! server asks of a bound token, the nonce dance at both, and what a thief holding a token but
//! not its key can and cannot do. Proofs are signed by the token manager's own `DpopKey`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;
use tessera_client::DpopKey;
use tessera_core::model::DpopMode;
use tessera_core::operations::admin::ClientSettings;
use tessera_testkit::pages::{pkce, url_param};

use crate::support::{Client, Harness, Reply, ISSUER, REDIRECT};

const TOKEN_PATH: &str = "/services/oauth2/token";
const API_PATH: &str = "/services/data/v65.0/";
const VERIFIER: &str = "a-verifier-long-enough-for-pkce-0123456789-abcdefgh";

fn key() -> DpopKey {
    DpopKey::generate().unwrap()
}

/// A proof by `key` of a request to `path` on this server, at the harness's time.
fn proof(
    h: &Harness,
    key: &DpopKey,
    method: &str,
    path: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
) -> String {
    key.proof(
        method,
        &format!("{ISSUER}{path}"),
        access_token,
        nonce,
        tessera_core::time::Clock::now(h.clock.as_ref()).seconds(),
    )
    .unwrap()
}

async fn dpop_client(
    h: &Harness,
    public: bool,
    mode: DpopMode,
    nonce: bool,
    window: u64,
) -> Client {
    h.client(
        public,
        ClientSettings {
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(window),
            dpop: Some(mode),
            dpop_require_nonce: Some(nonce),
            ..Default::default()
        },
    )
    .await
}

/// A token request with `pairs` and, if given, a `DPoP` header.
async fn token_with(h: &Harness, pairs: &[(&str, &str)], dpop: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = dpop.map(|p| ("DPoP", p)).into_iter().collect();
    h.post_form_from(
        None,
        &headers,
        TOKEN_PATH,
        &tessera_testkit::pages::form(pairs),
        None,
    )
    .await
}

/// The code of an authorization by `client` with PKCE (and `extra` parameters).
async fn code(h: &Harness, client: &Client, extra: &[(&str, &str)]) -> String {
    let (_, challenge) = pkce(VERIFIER);
    let mut params = vec![
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if !extra.iter().any(|(name, _)| *name == "scope") {
        params.push(("scope", "api refresh_token"));
    }
    params.extend_from_slice(extra);
    let location = h.authorize(client, &params).await;
    url_param(&location, "code").expect("code in redirect")
}

fn credentials<'a>(client: &'a Client, pairs: &mut Vec<(&'a str, &'a str)>) {
    pairs.push(("client_id", client.id.as_str()));
    if let Some(secret) = &client.secret {
        pairs.push(("client_secret", secret.as_str()));
    }
}

/// The code exchange, with a proof by `key` if given.
async fn exchange(h: &Harness, client: &Client, code: &str, key: Option<&DpopKey>) -> Reply {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    credentials(client, &mut pairs);
    let proof = key.map(|k| proof(h, k, "POST", TOKEN_PATH, None, None));
    token_with(h, &pairs, proof.as_deref()).await
}

/// A refresh, with a proof by `key` if given.
async fn refresh(h: &Harness, client: &Client, token: &str, key: Option<&DpopKey>) -> Reply {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    credentials(client, &mut pairs);
    let proof = key.map(|k| proof(h, k, "POST", TOKEN_PATH, None, None));
    token_with(h, &pairs, proof.as_deref()).await
}

/// A login whose code exchange proves `key`: the token response.
async fn bound_login(h: &Harness, client: &Client, key: &DpopKey) -> Value {
    let code = code(h, client, &[]).await;
    let reply = exchange(h, client, &code, Some(key)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

/// An API call with `authorization` and, if given, a `DPoP` header.
async fn api_with(h: &Harness, authorization: &str, dpop: Option<&str>) -> Reply {
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(API_PATH)
        .header(header::AUTHORIZATION, authorization);
    if let Some(proof) = dpop {
        builder = builder.header("DPoP", proof);
    }
    h.send(builder.body(Body::empty()).unwrap()).await
}

/// An API call with a DPoP-bound `token` and a fresh proof by `key`.
async fn dpop_api(h: &Harness, token: &str, key: &DpopKey, nonce: Option<&str>) -> Reply {
    let proof = proof(h, key, "GET", API_PATH, Some(token), nonce);
    api_with(h, &format!("DPoP {token}"), Some(&proof)).await
}

/// A harness, a client with DPoP allowed (public or confidential, rotating with `window`),
/// its owner's key and the response of a login that proved it.
async fn bound(public: bool, window: u64) -> (Harness, Client, DpopKey, Value) {
    let h = Harness::new().await;
    let client = dpop_client(&h, public, DpopMode::Allowed, false, window).await;
    let owner = key();
    let login = bound_login(&h, &client, &owner).await;
    (h, client, owner, login)
}

fn text(body: &Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_public_clients_rotating_chain_stays_bound_to_its_key_across_100_rotations() {
    let (h, client, owner, first) = bound(true, 10).await;
    assert_eq!(first["token_type"], "DPoP");
    let mut rt = text(&first, "refresh_token");
    for rotation in 0..100 {
        let reply = refresh(&h, &client, &rt, Some(&owner)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "rotation {rotation}: {}",
            reply.text()
        );
        let body = reply.json();
        assert_eq!(body["token_type"], "DPoP", "rotation {rotation}");
        let next = text(&body, "refresh_token");
        assert_ne!(next, rt, "rotation {rotation} rotated");
        rt = next;
        // Every successor inherits the binding: without the key, even the current token is
        // refused.
        if rotation % 25 == 0 {
            refresh(&h, &client, &rt, None)
                .await
                .assert_oauth_error(400, "invalid_grant");
        }
    }
    let last = refresh(&h, &client, &rt, Some(&owner)).await.json();
    let access = text(&last, "access_token");
    assert_eq!(
        dpop_api(&h, &access, &owner, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stolen_refresh_token_with_another_key_or_none_is_refused_and_logs_nobody_out() {
    let (h, client, owner, login) = bound(true, 10).await;
    let rt = text(&login, "refresh_token");
    // The thief, with the current token: without a proof, and with a proof of its own key.
    for thief in [None, Some(key())] {
        let reply = refresh(&h, &client, &rt, thief.as_ref()).await;
        reply.assert_oauth_error(400, "invalid_grant");
        assert_ne!(
            reply.json()["error_description"],
            "expired access/refresh token",
            "a key mismatch says so"
        );
    }
    // The owner rotates; the thief then presents the rotated-out token long after the window:
    // still only a refusal, because it does not prove the key.
    let rotated = refresh(&h, &client, &rt, Some(&owner)).await.json();
    h.clock.advance_secs(3600);
    refresh(&h, &client, &rt, Some(&key()))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(h.events_named("reuse_detected").await.is_empty());
    assert!(h.events_named("revoked").await.is_empty());
    // The owner's next refresh works.
    let next = refresh(&h, &client, &text(&rotated, "refresh_token"), Some(&owner)).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    // And the key's holder replaying a rotated-out token outside the window is reuse, as ever.
    refresh(&h, &client, &rt, Some(&owner))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(h.events_named("reuse_detected").await.len(), 1);
}

#[tokio::test]
async fn a_replay_inside_the_window_with_the_same_key_gets_the_same_pair_and_another_key_nothing() {
    let (h, client, owner, login) = bound(true, 10).await;
    let rt = text(&login, "refresh_token");
    let first = refresh(&h, &client, &rt, Some(&owner)).await.json();
    h.clock.advance_secs(2);
    let replay = refresh(&h, &client, &rt, Some(&owner)).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text());
    let replay = replay.json();
    assert_eq!(replay["refresh_token"], first["refresh_token"]);
    assert_eq!(replay["access_token"], first["access_token"]);
    assert_eq!(replay["token_type"], "DPoP");
    refresh(&h, &client, &rt, Some(&key()))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(h.events_named("reuse_detected").await.is_empty());
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound_but_each_access_token_is() {
    let (h, client, first_key, login) = bound(false, 0).await;
    assert_eq!(login["token_type"], "DPoP");
    // Client authentication binds its refresh token: a refresh without a proof is Bearer.
    let plain = refresh(&h, &client, &text(&login, "refresh_token"), None).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text());
    let plain = plain.json();
    assert_eq!(plain["token_type"], "Bearer");
    assert!(h.api_works(&text(&plain, "access_token")).await);
    // A refresh with another key binds its access token to that key.
    let second_key = key();
    let bound = refresh(
        &h,
        &client,
        &text(&plain, "refresh_token"),
        Some(&second_key),
    )
    .await;
    let bound = bound.json();
    assert_eq!(bound["token_type"], "DPoP");
    let access = text(&bound, "access_token");
    assert_eq!(
        dpop_api(&h, &access, &second_key, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        dpop_api(&h, &access, &first_key, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Introspection names the key (RFC 9449 §6.2).
    let introspected = h.introspect(&client, &access).await.json();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["cnf"]["jkt"], second_key.thumbprint());
    let unbound = h
        .introspect(&client, &text(&plain, "access_token"))
        .await
        .json();
    assert!(unbound.get("cnf").is_none(), "{unbound}");
}

#[tokio::test]
async fn a_bound_access_token_is_refused_as_bearer_and_without_a_valid_proof_of_its_key() {
    let (h, _, owner, login) = bound(true, 10).await;
    let access = text(&login, "access_token");
    assert_eq!(
        dpop_api(&h, &access, &owner, None).await.status,
        StatusCode::OK
    );
    // As Bearer (RFC 9449 §7.2).
    let bearer = api_with(&h, &format!("Bearer {access}"), None).await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    // The DPoP scheme without a proof, with a proof for another token (wrong `ath`), for
    // another path, replayed, or of another key.
    let missing = api_with(&h, &format!("DPoP {access}"), None).await;
    let no_ath = proof(&h, &owner, "GET", API_PATH, None, None);
    let other_token = proof(&h, &owner, "GET", API_PATH, Some("another token"), None);
    let other_path = proof(&h, &owner, "GET", "/services/data/", Some(&access), None);
    let used = proof(&h, &owner, "GET", API_PATH, Some(&access), None);
    assert_eq!(
        api_with(&h, &format!("DPoP {access}"), Some(&used))
            .await
            .status,
        StatusCode::OK
    );
    for (what, reply) in [
        ("no proof", missing),
        (
            "no ath",
            api_with(&h, &format!("DPoP {access}"), Some(&no_ath)).await,
        ),
        (
            "wrong ath",
            api_with(&h, &format!("DPoP {access}"), Some(&other_token)).await,
        ),
        (
            "another htu",
            api_with(&h, &format!("DPoP {access}"), Some(&other_path)).await,
        ),
        (
            "replayed",
            api_with(&h, &format!("DPoP {access}"), Some(&used)).await,
        ),
        ("another key", dpop_api(&h, &access, &key(), None).await),
    ] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
            "{what}: {challenge}"
        );
        assert_eq!(reply.json()[0]["errorCode"], "INVALID_SESSION_ID", "{what}");
    }
    // An unbound token with the DPoP scheme is refused too (§7.1).
    let plain_client = h.confidential().await;
    let plain = h.login(&plain_client, "api refresh_token").await;
    let unbound = text(&plain, "access_token");
    assert_eq!(
        dpop_api(&h, &unbound, &owner, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_client_that_requires_dpop_is_refused_a_token_request_without_a_proof() {
    let h = Harness::new().await;
    let client = dpop_client(&h, true, DpopMode::Required, false, 10).await;
    let code = code(&h, &client, &[]).await;
    exchange(&h, &client, &code, None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    let refused = h.events_written("dpop_proof_refused", 1).await;
    assert_eq!(refused[0].event.detail, "proof missing");
    assert_eq!(
        refused[0].event.client_id.as_deref(),
        Some(client.id.as_str())
    );
    // A proof that does not hold is refused as such; nothing is issued.
    let code = self::code(&h, &client, &[]).await;
    let stale = key()
        .proof("POST", &format!("{ISSUER}{TOKEN_PATH}"), None, None, 1_000)
        .unwrap();
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    credentials(&client, &mut pairs);
    token_with(&h, &pairs, Some(&stale))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    // The user-agent flow cannot bind its tokens: refused for such a client, though it may
    // use the flow.
    let implicit = h
        .client(
            true,
            ClientSettings {
                allow_user_agent_flow: Some(true),
                dpop: Some(DpopMode::Required),
                ..Default::default()
            },
        )
        .await;
    let url = h
        .authorize_url(&implicit, &[])
        .replace("response_type=code", "response_type=token");
    let location = h.get(&url, None).await;
    let location = location.location();
    assert!(
        location.contains("error=unauthorized_client")
            && location.contains("DPoP-bound+tokens+cannot+be+issued"),
        "{location}"
    );
}

#[tokio::test]
async fn the_same_proof_twice_at_the_token_endpoint_is_refused() {
    let (h, client, owner, login) = bound(false, 0).await;
    let proof = proof(&h, &owner, "POST", TOKEN_PATH, None, None);
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", login["refresh_token"].as_str().unwrap()),
    ];
    credentials(&client, &mut pairs);
    assert_eq!(
        token_with(&h, &pairs, Some(&proof)).await.status,
        StatusCode::OK
    );
    token_with(&h, &pairs, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
}

#[tokio::test]
async fn dpop_jkt_binds_the_code_to_the_key_its_exchange_must_prove() {
    let h = Harness::new().await;
    let client = dpop_client(&h, true, DpopMode::Allowed, false, 10).await;
    let owner = key();
    let thumbprint = owner.thumbprint();
    for thief in [None, Some(key())] {
        let code = code(&h, &client, &[("dpop_jkt", &thumbprint)]).await;
        exchange(&h, &client, &code, thief.as_ref())
            .await
            .assert_oauth_error(400, "invalid_grant");
    }
    let code = code(&h, &client, &[("dpop_jkt", &thumbprint)]).await;
    let reply = exchange(&h, &client, &code, Some(&owner)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["token_type"], "DPoP");
}

#[tokio::test]
async fn a_client_that_requires_nonces_is_asked_for_one_at_the_token_endpoint_and_the_api() {
    let h = Harness::new().await;
    let client = dpop_client(&h, false, DpopMode::Required, true, 0).await;
    let owner = key();
    let code = code(&h, &client, &[]).await;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    credentials(&client, &mut pairs);
    // Without a nonce: 400 use_dpop_nonce, and the nonce to use in `DPoP-Nonce`.
    let without = proof(&h, &owner, "POST", TOKEN_PATH, None, None);
    let asked = token_with(&h, &pairs, Some(&without)).await;
    asked.assert_oauth_error(400, "use_dpop_nonce");
    let nonce = asked.header("dpop-nonce").expect("a nonce").to_owned();
    // A made-up nonce is no better.
    let made_up = proof(&h, &owner, "POST", TOKEN_PATH, None, Some("made-up"));
    token_with(&h, &pairs, Some(&made_up))
        .await
        .assert_oauth_error(400, "use_dpop_nonce");
    let with = proof(&h, &owner, "POST", TOKEN_PATH, None, Some(&nonce));
    let issued = token_with(&h, &pairs, Some(&with)).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text());
    assert!(
        issued.header("dpop-nonce").is_some(),
        "the next nonce rides on success"
    );
    let access = text(&issued.json(), "access_token");
    // The API: 401 with the DPoP challenge and a nonce, then 200 with it.
    let asked = dpop_api(&h, &access, &owner, None).await;
    assert_eq!(asked.status, StatusCode::UNAUTHORIZED);
    assert!(asked
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("DPoP error=\"use_dpop_nonce\""));
    let nonce = asked.header("dpop-nonce").expect("a nonce").to_owned();
    assert_eq!(
        dpop_api(&h, &access, &owner, Some(&nonce)).await.status,
        StatusCode::OK
    );
    // A nonce three steps old is stale.
    h.clock.advance_secs(200);
    let stale = dpop_api(&h, &access, &owner, Some(&nonce)).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn discovery_advertises_the_proof_algorithms() {
    let h = Harness::new().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc = h.get(path, None).await.json();
        let algs: Vec<&str> = doc["dpop_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(algs, ["ES256", "ES384", "EdDSA", "PS256"], "{path}");
    }
}

#[tokio::test]
async fn userinfo_takes_a_bound_token_with_a_proof_and_answers_a_bad_one_with_the_dpop_challenge() {
    let h = Harness::new().await;
    let client = h
        .client(
            false,
            ClientSettings {
                dpop: Some(DpopMode::Allowed),
                dpop_require_nonce: Some(true),
                scopes: Some("api id openid refresh_token".into()),
                ..Default::default()
            },
        )
        .await;
    let owner = key();
    // The ID token the code exchange answers needs a signing key.
    h.authority.rotate_signing_keys_when_due().await.unwrap();
    let code = code(&h, &client, &[("scope", "openid id")]).await;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    credentials(&client, &mut pairs);
    let asked = token_with(
        &h,
        &pairs,
        Some(&proof(&h, &owner, "POST", TOKEN_PATH, None, None)),
    )
    .await;
    let nonce = asked.header("dpop-nonce").expect("a nonce").to_owned();
    let with = proof(&h, &owner, "POST", TOKEN_PATH, None, Some(&nonce));
    let access = text(
        &token_with(&h, &pairs, Some(&with)).await.json(),
        "access_token",
    );
    let userinfo = "/services/oauth2/userinfo";
    let call = |proof: String| {
        let request = Request::builder()
            .method(Method::GET)
            .uri(userinfo)
            .header(header::AUTHORIZATION, format!("DPoP {access}"))
            .header("DPoP", proof)
            .body(Body::empty())
            .unwrap();
        h.send(request)
    };
    let without_nonce = call(proof(&h, &owner, "GET", userinfo, Some(&access), None)).await;
    assert_eq!(without_nonce.status, StatusCode::UNAUTHORIZED);
    assert!(without_nonce
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("DPoP error=\"use_dpop_nonce\""));
    let nonce = without_nonce
        .header("dpop-nonce")
        .expect("a nonce")
        .to_owned();
    let answered = call(proof(
        &h,
        &owner,
        "GET",
        userinfo,
        Some(&access),
        Some(&nonce),
    ))
    .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text());
    assert!(answered.json()["sub"].is_string());
    let other_key = call(proof(
        &h,
        &key(),
        "GET",
        userinfo,
        Some(&access),
        Some(&nonce),
    ))
    .await;
    assert_eq!(other_key.status, StatusCode::UNAUTHORIZED);
    assert!(other_key
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("DPoP error=\"invalid_dpop_proof\""));
}
