//! The OpenID Connect ID token: verified at login and on every refresh against a JWKS served by
//! a small issuer of the test's own (its keys made here, its token endpoint answering what the
//! test says), kept encrypted with the credential, and shown by `status`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tessera_client::{
    ClientError, Credential, Endpoints, IdToken, IdTokenClaims, IdTokenError, TokenManager,
    TokenStore,
};
use tessera_core::model::SigningAlg;
use tessera_core::time::{SystemRandom, Timestamp};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::tokens::signing_keys::SigningKey;
use tessera_proto::AccessToken;

use crate::support::*;

const CLIENT_ID: &str = "3MVG9oidc-client";
const NONCE: &str = "n-0S6_WzA2Mj-this-login";

/// What the test issuer publishes and answers.
#[derive(Default)]
struct IssuerState {
    /// The JWKS's keys, as JSON.
    keys: Mutex<Vec<serde_json::Value>>,
    jwks_requests: AtomicUsize,
    /// The ID token the next refresh returns.
    next_id_token: Mutex<Option<String>>,
    refreshes: AtomicUsize,
}

/// An issuer on 127.0.0.1: `GET /id/keys` and a token endpoint that refreshes.
struct Issuer {
    base: String,
    state: Arc<IssuerState>,
    server_key: ServerKey,
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> impl axum::response::IntoResponse {
    state.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let keys = state.keys.lock().unwrap().clone();
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=86400")],
        Json(serde_json::json!({ "keys": keys })),
    )
}

async fn token(State(state): State<Arc<IssuerState>>) -> Json<serde_json::Value> {
    let n = state.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    let mut body = serde_json::json!({
        "access_token": format!("00D!refreshed-access-{n}"),
        "refresh_token": format!("refreshed-refresh-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "openid api refresh_token",
    });
    if let Some(id_token) = state.next_id_token.lock().unwrap().clone() {
        body["id_token"] = id_token.into();
    }
    Json(body)
}

impl Issuer {
    async fn start() -> Self {
        let state = Arc::new(IssuerState::default());
        let router = axum::Router::new()
            .route("/id/keys", get(jwks))
            .route("/services/oauth2/token", post(token))
            .with_state(state.clone());
        Self {
            base: serve(router).await,
            state,
            server_key: ServerKey::generate(&SystemRandom),
        }
    }

    /// A new RSA key, not yet published.
    fn rsa_key(&self) -> SigningKey {
        let now = Timestamp(now_ms());
        SigningKey::generate(&self.server_key, &SystemRandom, SigningAlg::Rs256, now, now).unwrap()
    }

    fn rsa_jwk(&self, key: &SigningKey) -> serde_json::Value {
        serde_json::to_value(key.public_jwk(&self.server_key).unwrap()).unwrap()
    }

    fn publish(&self, jwk: serde_json::Value) {
        self.state.keys.lock().unwrap().push(jwk);
    }

    fn sign(&self, key: &SigningKey, claims: &serde_json::Value) -> IdToken {
        IdToken::new(key.sign_jws(&self.server_key, claims).unwrap())
    }

    fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    fn next_refresh_returns(&self, id_token: &IdToken) {
        *self.state.next_id_token.lock().unwrap() = Some(clear(id_token));
    }

    /// The claims Salesforce puts in the ID token of this login, issued now.
    fn claims(&self) -> serde_json::Value {
        let now = now_ms() / 1000;
        serde_json::json!({
            "iss": self.base,
            "sub": format!("{}/id/00D000000000001AAA/005000000000001AAA", self.base),
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "auth_time": now - 5,
            "nonce": NONCE,
            "name": "Ada Lovelace",
            "preferred_username": "ada@example.com",
            "email": "ada@example.com",
        })
    }

    /// The claims of a refresh's ID token: the login's, issued later, without the nonce.
    fn refreshed_claims(&self, login: &serde_json::Value) -> serde_json::Value {
        let mut claims = login.clone();
        claims["iat"] = (login["iat"].as_i64().unwrap() + 1).into();
        claims["exp"] = (login["exp"].as_i64().unwrap() + 1).into();
        claims.as_object_mut().unwrap().remove("nonce");
        claims
    }

    /// A credential as the code exchange gives it, carrying `id_token`, for this issuer.
    fn credential(&self, id_token: IdToken) -> Credential {
        let now = now_ms();
        Credential {
            endpoints: Endpoints {
                issuer: self.base.clone(),
                token: format!("{}/services/oauth2/token", self.base),
                revocation: None,
                introspection: None,
                authorization: None,
                jwks_uri: Some(format!("{}/id/keys", self.base)),
            },
            client_id: CLIENT_ID.into(),
            client_secret: None,
            identity_url: None,
            instance_url: self.base.clone(),
            scope: "openid api refresh_token".into(),
            issued_at_ms: now,
            expires_at_ms: Some(now + 3_600_000),
            id_token: Some(id_token),
            ..sample_credential("00D!login-access", "login-refresh")
        }
    }
}

fn manager_over(dirs: &Dirs) -> Arc<TokenManager> {
    let config = tessera_client::ManagerConfig::new(tessera_client::default_http_client().unwrap());
    Arc::new(TokenManager::new(dirs.store(), config))
}

/// A manager logged in with an RS256 ID token signed by a published key.
async fn logged_in(issuer: &Issuer) -> (Arc<TokenManager>, Dirs, SigningKey, serde_json::Value) {
    let key = issuer.rsa_key();
    issuer.publish(issuer.rsa_jwk(&key));
    let claims = issuer.claims();
    let dirs = Dirs::new();
    let manager = manager_over(&dirs);
    manager
        .login_with_nonce(issuer.credential(issuer.sign(&key, &claims)), NONCE)
        .await
        .unwrap();
    (manager, dirs, key, claims)
}

/// The login refused for this ID token, and nothing stored.
async fn refused_login(issuer: &Issuer, id_token: IdToken) -> IdTokenError {
    let dirs = Dirs::new();
    let manager = manager_over(&dirs);
    let error = manager
        .login_with_nonce(issuer.credential(id_token), NONCE)
        .await
        .unwrap_err();
    assert!(
        dirs.store().load().unwrap().is_none(),
        "a refused login stored a credential"
    );
    let text = error.to_string();
    assert!(text.starts_with("the ID token was refused: "), "{text}");
    match error {
        ClientError::IdToken(why) => why,
        other => panic!("not an ID token error: {other}"),
    }
}

#[tokio::test]
async fn a_valid_id_token_verifies_and_its_claims_are_exposed() {
    let issuer = Issuer::start().await;
    let (manager, dirs, _, claims) = logged_in(&issuer).await;
    let identity = manager.identity().await.unwrap().expect("verified claims");
    assert_eq!(identity.sub, claims["sub"].as_str().unwrap());
    assert_eq!(identity.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
    assert_eq!(identity.aud, [CLIENT_ID]);
    assert_eq!(identity.nonce.as_deref(), Some(NONCE));
    assert_eq!(identity.exp, claims["exp"].as_i64().unwrap());
    assert_eq!(issuer.jwks_requests(), 1);

    // Another process (a new manager over the same file) reads the same identity, and status
    // says who logged in without asking the server anything.
    let status = manager_over(&dirs).status().await.unwrap();
    assert_eq!(status.identity.as_ref(), Some(&identity));
    assert_eq!(status.username.as_deref(), Some("ada@example.com"));
    let text = status.to_string();
    assert!(
        text.starts_with("user      Ada Lovelace <ada@example.com> (005000000000001AAA)\n"),
        "{text}"
    );
    assert!(text.contains("\nid token  verified, issued "), "{text}");
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn an_es256_id_token_verifies_against_its_ec_key() {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let issuer = Issuer::start().await;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    issuer.publish(serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &issuer.claims(),
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap();
    let dirs = Dirs::new();
    let manager = manager_over(&dirs);
    manager
        .login_with_nonce(issuer.credential(IdToken::new(token)), NONCE)
        .await
        .unwrap();
    assert!(manager.identity().await.unwrap().is_some());

    // The same EC key named by an RS256 header: the header's alg does not match the key.
    let rsa = issuer.rsa_key();
    let rs256_token = clear(&issuer.sign(&rsa, &issuer.claims()));
    let (_, rest) = rs256_token.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"ec-1"}"#)
    );
    assert!(matches!(
        refused_login(&issuer, IdToken::new(relabelled)).await,
        IdTokenError::KeyMismatch { .. }
    ));
}

#[tokio::test]
async fn a_key_published_after_the_jwks_was_cached_is_found_with_exactly_one_refetch() {
    let issuer = Issuer::start().await;
    let (manager, _dirs, _, login_claims) = logged_in(&issuer).await;
    assert_eq!(issuer.jwks_requests(), 1);

    // The issuer rotates: a new key, published after this client cached the JWKS.
    let next_key = issuer.rsa_key();
    issuer.publish(issuer.rsa_jwk(&next_key));
    let refreshed = issuer.refreshed_claims(&login_claims);
    issuer.next_refresh_returns(&issuer.sign(&next_key, &refreshed));
    let at = manager
        .refresh_after_rejection(&AccessToken::new("00D!login-access"))
        .await
        .unwrap();
    assert_eq!(clear(&at), "00D!refreshed-access-1");
    assert_eq!(issuer.jwks_requests(), 2, "one refetch for the unknown kid");
    let identity = manager.identity().await.unwrap().unwrap();
    assert_eq!(identity.iat, refreshed["iat"].as_i64().unwrap());
    assert_eq!(identity.nonce, None);

    // The refetched JWKS is cached: the next token signed with the new key costs nothing.
    let mut again = refreshed.clone();
    again["iat"] = (refreshed["iat"].as_i64().unwrap() + 1).into();
    issuer.next_refresh_returns(&issuer.sign(&next_key, &again));
    manager.refresh_after_rejection(&at).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 2);
    assert_eq!(
        manager.identity().await.unwrap().unwrap().iat,
        again["iat"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn a_bogus_kid_fails_after_one_refetch_and_never_a_second() {
    let issuer = Issuer::start().await;
    // Never published: its kid is unknown before and after the refetch.
    let unpublished = issuer.rsa_key();
    let (manager, _dirs, _, login_claims) = logged_in(&issuer).await;
    assert_eq!(issuer.jwks_requests(), 1);
    let login_identity = manager.identity().await.unwrap().unwrap();

    issuer
        .next_refresh_returns(&issuer.sign(&unpublished, &issuer.refreshed_claims(&login_claims)));
    // The refresh itself succeeds (see the manager's documentation): the new tokens are kept,
    // the ID token that failed is dropped and the login's stays.
    let at = manager
        .refresh_after_rejection(&AccessToken::new("00D!login-access"))
        .await
        .unwrap();
    assert_eq!(clear(&at), "00D!refreshed-access-1");
    assert_eq!(issuer.jwks_requests(), 2, "exactly one refetch");
    assert_eq!(manager.identity().await.unwrap(), Some(login_identity));

    // Each token gets its one refetch, no more, however often it comes back.
    manager.refresh_after_rejection(&at).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 3);

    // At login, with nothing cached: one fetch, then the login is refused.
    let fresh = Issuer::start().await;
    let unknown = fresh.rsa_key();
    fresh.publish(fresh.rsa_jwk(&fresh.rsa_key()));
    let why = refused_login(&fresh, fresh.sign(&unknown, &fresh.claims())).await;
    assert!(
        matches!(&why, IdTokenError::UnknownKey { kid, .. } if *kid == unknown.kid),
        "{why}"
    );
    assert_eq!(fresh.jwks_requests(), 1);
}

/// `claims` with `key` replaced by `value` (`null` removes it).
fn with(claims: &serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut claims = claims.clone();
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

#[tokio::test]
async fn forged_replayed_and_misaddressed_id_tokens_refuse_the_login_each_with_its_reason() {
    let issuer = Issuer::start().await;
    let key = issuer.rsa_key();
    let jwk = issuer.rsa_jwk(&key);
    issuer.publish(jwk.clone());
    let claims = issuer.claims();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());

    // alg none, unsigned.
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid));
    let why = refused_login(&issuer, IdToken::new(format!("{header}.{payload}."))).await;
    assert_eq!(why, IdTokenError::Algorithm { alg: "none".into() });
    assert!(why.to_string().contains("RS256 or ES256 only"), "{why}");

    // HS256 with the public key (its JWK's modulus) as the HMAC secret: the classic confusion.
    let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.kid = Some(key.kid.clone());
    let forged = jsonwebtoken::encode(
        &hs256,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwk["n"].as_str().unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        refused_login(&issuer, IdToken::new(forged)).await,
        IdTokenError::Algorithm {
            alg: "HS256".into()
        }
    );

    // Signed by a key of the issuer, then altered.
    let genuine = clear(&issuer.sign(&key, &claims));
    let (head, rest) = genuine.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_user = with(
        &claims,
        "sub",
        format!("{}/id/00D/005other", issuer.base).into(),
    );
    let tampered = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other_user).unwrap())
    );
    assert!(matches!(
        refused_login(&issuer, IdToken::new(tampered)).await,
        IdTokenError::Signature { .. }
    ));

    let now = now_ms() / 1000;
    /// What is wrong with the token, its claims, and the refusal expected.
    type Case = (&'static str, serde_json::Value, fn(&IdTokenError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "another issuer",
            with(&claims, "iss", "https://login.evil.example".into()),
            |e| matches!(e, IdTokenError::Issuer { .. }),
        ),
        (
            "another client",
            with(&claims, "aud", "3MVG9another-client".into()),
            |e| matches!(e, IdTokenError::Audience { .. }),
        ),
        (
            "several audiences without azp",
            with(&claims, "aud", serde_json::json!([CLIENT_ID, "urn:extra"])),
            |e| matches!(e, IdTokenError::AuthorizedParty { .. }),
        ),
        (
            "expired",
            with(
                &with(&claims, "exp", (now - 3600).into()),
                "iat",
                (now - 7200).into(),
            ),
            |e| matches!(e, IdTokenError::Expired { .. }),
        ),
        (
            "issued in the future",
            with(&claims, "iat", (now + 3600).into()),
            |e| matches!(e, IdTokenError::IssuedInFuture { .. }),
        ),
        (
            "another login's nonce",
            with(&claims, "nonce", "n-another-login".into()),
            |e| *e == IdTokenError::Nonce { present: true },
        ),
        (
            "no nonce",
            with(&claims, "nonce", serde_json::Value::Null),
            |e| *e == IdTokenError::Nonce { present: false },
        ),
    ];
    for (case, claims, expected) in cases {
        let why = refused_login(&issuer, issuer.sign(&key, &claims)).await;
        assert!(expected(&why), "{case}: {why}");
    }
}

#[tokio::test]
async fn a_refreshed_id_token_naming_another_user_is_dropped_and_the_logins_kept() {
    let issuer = Issuer::start().await;
    let (manager, dirs, key, login_claims) = logged_in(&issuer).await;
    let login_identity: IdTokenClaims = manager.identity().await.unwrap().unwrap();
    let login_token = dirs.store().load().unwrap().unwrap().id_token;

    for (claim, value) in [
        (
            "sub",
            format!("{}/id/00D000000000001AAA/005other", issuer.base).into(),
        ),
        (
            "auth_time",
            (login_claims["auth_time"].as_i64().unwrap() + 60).into(),
        ),
        ("iat", (login_claims["iat"].as_i64().unwrap() - 1).into()),
    ] {
        let changed = with(&issuer.refreshed_claims(&login_claims), claim, value);
        issuer.next_refresh_returns(&issuer.sign(&key, &changed));
        let current = manager.access_token().await.unwrap();
        let next = manager.refresh_after_rejection(&current).await.unwrap();
        assert_ne!(next, current, "{claim}: the new access token is used");
        let stored = dirs.store().load().unwrap().unwrap();
        assert_eq!(stored.access_token, next, "{claim}");
        assert_eq!(
            stored.id_token, login_token,
            "{claim}: the login's ID token stays"
        );
        assert_eq!(
            stored.id_token_claims.as_ref(),
            Some(&login_identity),
            "{claim}"
        );
    }
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn the_id_token_and_its_claims_are_stored_encrypted() {
    let issuer = Issuer::start().await;
    let (_manager, dirs, _, _) = logged_in(&issuer).await;
    let stored = dirs.store().load().unwrap().unwrap();
    let id_token = clear(stored.id_token.as_ref().unwrap());
    let bytes = std::fs::read(dirs.data()).unwrap();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for part in id_token.split('.') {
        assert!(!contains(&part[..24]), "a part of the ID token is in clear");
    }
    for claim in [
        "Ada Lovelace",
        "ada@example.com",
        "005000000000001AAA",
        NONCE,
    ] {
        assert!(!contains(claim), "{claim} is in clear");
    }
    assert!(!contains("id_token"));
}
