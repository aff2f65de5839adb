//! DPoP (RFC 9449) in the token manager, against a stub server that checks every proof and
//! demands a fresh nonce on every first request: the token endpoint answers 400
//! `use_dpop_nonce`, the API 401 `WWW-Authenticate: DPoP error="use_dpop_nonce"`, each with a
//! `DPoP-Nonce` header, and a nonce is good for one request.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_client::{
    ClientError, CodeGrant, Endpoints, ManagerConfig, ReauthReason, TokenManager, TokenStore,
};
use tessera_proto::dpop::{access_token_hash, jwk_thumbprint, normalize_htu};

use crate::support::*;

/// What the stub saw and decided. A proof that fails a check is recorded in `faults` and
/// refused, so that a test fails on `faults` whatever the manager then did.
#[derive(Default)]
struct Seen {
    /// The nonce the next proof must carry; `None` until the first challenge.
    nonce: Option<String>,
    nonces_issued: u32,
    jtis: HashSet<String>,
    thumbprints: HashSet<String>,
    faults: Vec<String>,
    token_requests: u32,
    api_requests: u32,
    /// Requests to the API without a DPoP proof (a Bearer downgrade).
    unproven_api_requests: u32,
    /// The tokens issued last.
    access_token: String,
    refresh_token: String,
    grants: u32,
}

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Seen>>,
    /// The `token_type` the token endpoint answers (servers differ in case).
    token_type: &'static str,
}

enum Verdict {
    Good,
    NeedsNonce,
    Bad(String),
}

impl Stub {
    fn new(token_type: &'static str) -> Self {
        Self {
            seen: Arc::default(),
            token_type,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// RFC 9449 §4.3's checks, as a resource or token endpoint makes them.
    fn check(
        &self,
        headers: &HeaderMap,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
    ) -> Verdict {
        let Some(proof) = headers.get("DPoP").and_then(|v| v.to_str().ok()) else {
            return Verdict::Bad("no DPoP header".into());
        };
        let header = match jsonwebtoken::decode_header(proof) {
            Ok(h) => h,
            Err(e) => return Verdict::Bad(format!("header: {e}")),
        };
        if header.typ.as_deref() != Some("dpop+jwt") || header.alg != Algorithm::ES256 {
            return Verdict::Bad(format!("typ {:?} alg {:?}", header.typ, header.alg));
        }
        let Some(jwk) = header.jwk else {
            return Verdict::Bad("no jwk".into());
        };
        let public = serde_json::to_value(&jwk).unwrap();
        if public.get("d").is_some() {
            return Verdict::Bad("a private key in jwk".into());
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let claims = match jsonwebtoken::decode::<serde_json::Value>(proof, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Verdict::Bad(format!("signature: {e}")),
        };
        let host = headers.get(header::HOST).unwrap().to_str().unwrap();
        let htu = normalize_htu(&format!("http://{host}{uri}")).unwrap();
        if claims["htm"] != method.as_str() || claims["htu"] != htu.as_str() {
            return Verdict::Bad(format!("htm/htu {} {}", claims["htm"], claims["htu"]));
        }
        let iat = claims["iat"].as_i64().unwrap_or_default();
        if (iat - now_ms() / 1000).abs() > 60 {
            return Verdict::Bad(format!("iat {iat} is off"));
        }
        let expected_ath = access_token.map(access_token_hash);
        if claims.get("ath").and_then(|a| a.as_str()) != expected_ath.as_deref() {
            return Verdict::Bad(format!("ath {:?}", claims.get("ath")));
        }
        let mut seen = self.seen();
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        if jti.len() < 16 || !seen.jtis.insert(jti) {
            return Verdict::Bad("a replayed or short jti".into());
        }
        seen.thumbprints.insert(jwk_thumbprint(&public).unwrap());
        let nonce = claims.get("nonce").and_then(|n| n.as_str());
        if nonce.is_none() || nonce != seen.nonce.as_deref() {
            return Verdict::NeedsNonce;
        }
        // One request per nonce: the next one is challenged again.
        seen.nonce = None;
        Verdict::Good
    }

    /// `response` with a new nonce, the only one the next proof may carry.
    fn with_new_nonce(&self, mut response: Response) -> Response {
        let mut seen = self.seen();
        seen.nonces_issued += 1;
        let nonce = format!("nonce-{}", seen.nonces_issued);
        response
            .headers_mut()
            .insert("DPoP-Nonce", nonce.parse().unwrap());
        seen.nonce = Some(nonce);
        response
    }

    fn fault(&self, fault: String) {
        self.seen().faults.push(fault);
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn token_endpoint(
    State(stub): State<Stub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    stub.seen().token_requests += 1;
    match stub.check(&headers, &method, &uri, None) {
        Verdict::Good => {}
        Verdict::NeedsNonce => {
            return stub.with_new_nonce(json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "use_dpop_nonce", "error_description": "a nonce is required"}),
            ))
        }
        Verdict::Bad(why) => {
            stub.fault(format!("token endpoint: {why}"));
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_dpop_proof"}),
            );
        }
    }
    let mut seen = stub.seen.lock().unwrap();
    let grant_ok = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => form.get("code").map(String::as_str) == Some("code-1"),
        Some("refresh_token") => form.get("refresh_token") == Some(&seen.refresh_token),
        _ => false,
    };
    if !grant_ok {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_grant", "error_description": "unknown grant"}),
        );
    }
    seen.grants += 1;
    seen.access_token = format!("access-{}", seen.grants);
    seen.refresh_token = format!("refresh-{}", seen.grants);
    let host = headers.get(header::HOST).unwrap().to_str().unwrap();
    json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": seen.access_token,
            "refresh_token": seen.refresh_token,
            "token_type": stub.token_type,
            "expires_in": 3600,
            "scope": "api refresh_token",
            "instance_url": format!("http://{host}"),
        }),
    )
}

async fn api(State(stub): State<Stub>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    stub.seen().api_requests += 1;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(token) = authorization.strip_prefix("DPoP ") else {
        stub.seen().unproven_api_requests += 1;
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "DPoP")],
        )
            .into_response();
    };
    let challenge = |error: &str| {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!("DPoP algs=\"ES256\", error=\"{error}\""),
            )],
        )
            .into_response()
    };
    match stub.check(&headers, &method, &uri, Some(token)) {
        Verdict::Good => {}
        Verdict::NeedsNonce => return stub.with_new_nonce(challenge("use_dpop_nonce")),
        Verdict::Bad(why) => {
            stub.fault(format!("API: {why}"));
            return challenge("invalid_dpop_proof");
        }
    }
    if token != stub.seen().access_token {
        return challenge("invalid_token");
    }
    json(StatusCode::OK, serde_json::json!({"ok": true}))
}

async fn start(stub: Stub) -> String {
    serve(
        Router::new()
            .route("/services/oauth2/token", post(token_endpoint))
            .route("/services/data/{*rest}", any(api))
            .with_state(stub),
    )
    .await
}

fn dpop_manager(store: Arc<dyn TokenStore>, dpop: bool) -> Arc<TokenManager> {
    let config = ManagerConfig {
        dpop,
        ..ManagerConfig::new(tessera_client::default_http_client().unwrap())
    };
    Arc::new(TokenManager::new(store, config))
}

fn grant(base: &str) -> CodeGrant {
    CodeGrant {
        endpoints: Endpoints::salesforce(base),
        client_id: "public-client".into(),
        client_secret: None,
        code: "code-1".into(),
        redirect_uri: "http://127.0.0.1:8976/callback".into(),
        code_verifier: "v".repeat(64),
        dpop_key: None,
    }
}

/// A manager with DPoP on, logged in at `base` through the code exchange.
async fn logged_in(base: &str, dirs: &Dirs) -> Arc<TokenManager> {
    let manager = dpop_manager(dirs.store(), true);
    let credential = manager.exchange_code(grant(base)).await.unwrap();
    assert!(credential.dpop_key.is_some() && credential.dpop_bound);
    manager.login_with(credential).await.unwrap();
    manager
}

#[tokio::test]
async fn login_refresh_and_api_calls_each_prove_the_key_and_retry_once_for_a_nonce() {
    let stub = Stub::new("DPoP");
    let base = start(stub.clone()).await;
    let dirs = Dirs::new();
    let manager = logged_in(&base, &dirs).await;
    // The code exchange: refused for a nonce, then granted.
    assert_eq!(stub.seen().token_requests, 2);

    let api = manager.http_client();
    let response = api
        .get("/services/data/v65.0/query?q=SELECT+Id+FROM+Account")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stub.seen().api_requests, 2);

    let first = manager.access_token().await.unwrap();
    let second = manager.refresh_after_rejection(&first).await.unwrap();
    assert_eq!(clear(&second), "access-2");
    assert_eq!(stub.seen().token_requests, 4);

    let response = api.get("/services/data/v65.0/").await.unwrap();
    assert_eq!(response.status(), 200);

    let seen = stub.seen();
    assert!(seen.faults.is_empty(), "{:?}", seen.faults);
    assert_eq!((seen.api_requests, seen.unproven_api_requests), (4, 0));
    // One challenge per request: two token requests, two API calls.
    assert_eq!(seen.nonces_issued, 4);
    assert_eq!(seen.jtis.len(), 8, "every proof has a jti of its own");
    // The same key across the rotation, and it is the one stored with the rotated tokens.
    let stored = dirs.store().load().unwrap().unwrap();
    let key = stored.dpop_key.expect("the key is kept with the tokens");
    assert_eq!(
        seen.thumbprints,
        HashSet::from([key.thumbprint()]),
        "one key signs every proof"
    );
    assert_eq!(clear(stored.refresh_token.as_ref().unwrap()), "refresh-2");
    assert!(stored.dpop_bound);
}

#[tokio::test]
async fn a_lower_case_dpop_token_type_is_sent_with_the_dpop_scheme() {
    let stub = Stub::new("dpop");
    let base = start(stub.clone()).await;
    let dirs = Dirs::new();
    let manager = logged_in(&base, &dirs).await;
    let response = manager
        .http_client()
        .get("/services/data/v65.0/")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = stub.seen();
    assert!(seen.faults.is_empty(), "{:?}", seen.faults);
    assert_eq!(seen.unproven_api_requests, 0);
}

#[tokio::test]
async fn the_status_names_the_keys_thumbprint_and_the_binding() {
    let stub = Stub::new("DPoP");
    let base = start(stub.clone()).await;
    let dirs = Dirs::new();
    let manager = logged_in(&base, &dirs).await;
    let status = manager.status().await.unwrap();
    let stored = dirs.store().load().unwrap().unwrap();
    let thumbprint = stored.dpop_key.unwrap().thumbprint();
    assert_eq!(status.dpop_thumbprint.as_deref(), Some(thumbprint.as_str()));
    assert!(status.dpop_bound);
    assert!(
        status
            .to_string()
            .contains(&format!("dpop      bound to key {thumbprint}")),
        "{status}"
    );
}

#[tokio::test]
async fn a_bound_credential_whose_key_is_lost_asks_for_a_login_and_never_sends_bearer() {
    let stub = Stub::new("DPoP");
    let base = start(stub.clone()).await;
    let dirs = Dirs::new();
    let manager = logged_in(&base, &dirs).await;
    let store = dirs.store();
    let mut stored = store.load().unwrap().unwrap();
    let refresh_token = stored.refresh_token.clone();
    stored.dpop_key = None;
    store.save(refresh_token.as_ref(), &stored).unwrap();
    drop(manager);

    let manager = dpop_manager(dirs.store(), true);
    let lost = |result: Result<_, ClientError>| {
        matches!(
            result,
            Err(ClientError::ReauthRequired {
                reason: ReauthReason::DpopKeyLost
            })
        )
    };
    assert!(lost(manager.access_token().await.map(drop)));
    assert!(lost(
        manager
            .http_client()
            .get("/services/data/v65.0/")
            .await
            .map(drop)
    ));
    assert!(lost(
        manager
            .refresh_after_rejection(&stored.access_token)
            .await
            .map(drop)
    ));
    let seen = stub.seen();
    assert_eq!((seen.api_requests, seen.token_requests), (0, 2));
}

#[tokio::test]
async fn a_credential_stored_without_a_key_still_loads_and_goes_as_bearer() {
    let dirs = Dirs::new();
    let store = dirs.store();
    let stub = Stub::new("Bearer");
    let base = start(stub.clone()).await;
    let mut old = sample_credential("access-0", "refresh-0");
    old.endpoints = Endpoints::salesforce(&base);
    old.instance_url = base.clone();
    old.issued_at_ms = now_ms();
    old.expires_at_ms = Some(now_ms() + 3_600_000);
    store.save(None, &old).unwrap();
    // DPoP on in the library does not turn a stored Bearer credential into a bound one.
    let manager = dpop_manager(store.clone(), true);
    assert_eq!(clear(&manager.access_token().await.unwrap()), "access-0");
    let response = manager
        .http_client()
        .get("/services/data/v65.0/")
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(stub.seen().unproven_api_requests, 1);
    let status = manager.status().await.unwrap();
    assert_eq!((status.dpop_thumbprint, status.dpop_bound), (None, false));
}

#[tokio::test]
async fn the_middleware_proves_the_key_on_api_calls_and_retries_once_for_a_nonce() {
    let stub = Stub::new("DPoP");
    let base = start(stub.clone()).await;
    let dirs = Dirs::new();
    let manager = logged_in(&base, &dirs).await;
    let client =
        reqwest_middleware::ClientBuilder::new(tessera_client::default_http_client().unwrap())
            .with(tessera_client::TokenMiddleware::new(manager.clone()))
            .build();
    let response = client
        .get(format!("{base}/services/data/v65.0/sobjects?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = stub.seen();
    assert!(seen.faults.is_empty(), "{:?}", seen.faults);
    assert_eq!((seen.api_requests, seen.unproven_api_requests), (2, 0));
}

#[tokio::test]
async fn a_token_endpoint_that_asks_for_a_nonce_again_and_again_gets_one_retry_not_a_loop() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let base = serve(Router::new().route(
        "/services/oauth2/token",
        post(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut response = json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "use_dpop_nonce"}),
                );
                response
                    .headers_mut()
                    .insert("DPoP-Nonce", format!("nonce-{n}").parse().unwrap());
                response
            }
        }),
    ))
    .await;
    let dirs = Dirs::new();
    let store = dirs.store();
    let manager = dpop_manager(store.clone(), true);
    let refused = manager.exchange_code(grant(&base)).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::CodeExchangeRefused { error, .. } if error == "use_dpop_nonce"),
        "{refused:?}"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    // The same for a refresh: one more request, then the refusal, and the tokens stay.
    let mut expired = sample_credential("access-0", "refresh-0");
    expired.endpoints = Endpoints::salesforce(&base);
    expired.dpop_key = Some(tessera_client::DpopKey::generate().unwrap());
    expired.issued_at_ms = now_ms() - 7_200_000;
    expired.expires_at_ms = Some(now_ms() - 3_600_000);
    store.save(None, &expired).unwrap();
    let refused = manager.access_token().await.unwrap_err();
    assert!(matches!(refused, ClientError::Protocol(_)), "{refused:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    let stored = store.load().unwrap().unwrap();
    assert_eq!(clear(stored.refresh_token.as_ref().unwrap()), "refresh-0");
    assert!(stored.dead.is_none());
}
