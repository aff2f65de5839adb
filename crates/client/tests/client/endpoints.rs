//! Discovery, and the token endpoint misbehaving: fake endpoints on 127.0.0.1 inject 5xx, 429,
//! concurrent-refresh refusals and dead ports.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tessera_client::{
    discover, ClientError, Credential, Endpoints, ManualClock, RefreshOutcome, TokenStore,
};

use crate::support::*;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

fn tokens(access: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "api refresh_token",
        })
        .to_string(),
    )
        .into_response()
}

/// A token endpoint answering call `n` (from 1) with `reply(n)`; returns (base, call counter).
async fn fake_token_endpoint(
    reply: impl Fn(u32) -> Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/services/oauth2/token",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let reply = reply.clone();
            async move { reply(n) }
        }),
    );
    (serve(router).await, calls)
}

/// A token endpoint that answers every call with the same OAuth error.
async fn refusing_token_endpoint(
    status: StatusCode,
    error: &'static str,
    description: &'static str,
) -> (String, Arc<AtomicU32>) {
    fake_token_endpoint(move |_| oauth_error(status, error, description)).await
}

/// A stored credential for `base` whose access token expired an hour ago (by `clock`).
fn expired_credential(base: &str, clock: &ManualClock) -> Credential {
    use tessera_client::Clock;
    let mut c = sample_credential("00D!old-access", "refresh-1");
    c.endpoints = Endpoints::salesforce(base);
    c.issued_at_ms = clock.now_ms() - 2 * 3_600_000;
    c.expires_at_ms = Some(clock.now_ms() - 3_600_000);
    c
}

struct Setup {
    manager: Arc<tessera_client::TokenManager>,
    events: Recorder,
    store: Arc<dyn TokenStore>,
    clock: Arc<ManualClock>,
    _dirs: Dirs,
}

async fn setup(base: &str, expired: bool) -> Setup {
    let dirs = Dirs::new();
    let store: Arc<dyn TokenStore> = dirs.store();
    let clock = Arc::new(ManualClock::new(now_ms()));
    let mut credential = expired_credential(base, &clock);
    if !expired {
        // Inside the refresh margin, still valid for 20 s.
        use tessera_client::Clock;
        credential.issued_at_ms = clock.now_ms() - 3_580_000;
        credential.expires_at_ms = Some(clock.now_ms() + 20_000);
    }
    store.save(None, &credential).unwrap();
    let events = Recorder::default();
    let sink = events.clone();
    let config = tessera_client::ManagerConfig {
        http: tessera_client::default_http_client().unwrap(),
        clock: clock.clone(),
        session_timeout: None,
        on_event: Some(Arc::new(move |e: &tessera_client::RefreshEvent| {
            sink.0.lock().unwrap().push(e.clone())
        })),
        dpop: false,
    };
    Setup {
        manager: Arc::new(tessera_client::TokenManager::new(store.clone(), config)),
        events,
        store,
        clock,
        _dirs: dirs,
    }
}

#[tokio::test]
async fn discovery_reads_the_servers_metadata() {
    let server = Server::start().await;
    let endpoints = discover(&server.http, &format!("{}/", server.base))
        .await
        .unwrap();
    assert_eq!(endpoints.issuer, server.base);
    assert_eq!(
        endpoints.token,
        format!("{}/services/oauth2/token", server.base)
    );
    assert_eq!(
        endpoints.revocation,
        Some(format!("{}/services/oauth2/revoke", server.base))
    );
    assert!(endpoints.introspection.is_some() && endpoints.authorization.is_some());
}

#[tokio::test]
async fn discovery_falls_back_to_salesforce_paths_and_refuses_another_issuers_metadata() {
    let bare = serve(Router::new()).await;
    let http = tessera_client::default_http_client().unwrap();
    assert_eq!(
        discover(&http, &bare).await.unwrap(),
        Endpoints::salesforce(&bare)
    );

    let impostor = serve(Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async {
            axum::Json(serde_json::json!({
                "issuer": "https://elsewhere.example",
                "token_endpoint": "https://elsewhere.example/token",
            }))
        }),
    ))
    .await;
    assert!(matches!(
        discover(&http, &impostor).await,
        Err(ClientError::Protocol(_))
    ));
    // An issuer nobody answers for is a transient failure, not a guess.
    let closed = format!("http://127.0.0.1:{}", free_port());
    assert!(matches!(
        discover(&http, &closed).await,
        Err(ClientError::Transient { .. })
    ));
}

#[tokio::test]
async fn the_jwks_comes_from_the_openid_document_when_the_rfc_8414_one_names_none() {
    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let document = |issuer: Arc<std::sync::OnceLock<String>>, jwks: Option<&'static str>| {
        move || async move {
            let base = issuer.get().unwrap();
            let mut body = serde_json::json!({
                "issuer": base,
                "token_endpoint": format!("{base}/token"),
            });
            if let Some(path) = jwks {
                body["jwks_uri"] = format!("{base}{path}").into();
            }
            axum::Json(body)
        }
    };
    let base = serve(
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(document(issuer.clone(), None)),
            )
            .route(
                "/.well-known/openid-configuration",
                get(document(issuer.clone(), Some("/oidc/jwks"))),
            ),
    )
    .await;
    issuer.set(base.clone()).unwrap();
    let http = tessera_client::default_http_client().unwrap();
    let endpoints = discover(&http, &base).await.unwrap();
    assert_eq!(endpoints.token, format!("{base}/token"));
    assert_eq!(endpoints.jwks_uri, Some(format!("{base}/oidc/jwks")));
    assert_eq!(endpoints.jwks(), format!("{base}/oidc/jwks"));

    // Neither names one: the JWKS is looked for at Salesforce's path.
    let plain = serve(Router::new()).await;
    let bare = discover(&http, &plain).await.unwrap();
    assert_eq!(bare.jwks(), format!("{plain}/id/keys"));
}

#[tokio::test]
async fn transient_failures_are_retried_honouring_retry_after() {
    let (base, calls) = fake_token_endpoint(|n| match n {
        1 => {
            let mut r = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "1".parse().unwrap());
            r
        }
        2 => (StatusCode::BAD_GATEWAY, "<html>proxy</html>").into_response(),
        _ => tokens("00D!new-access"),
    })
    .await;
    let s = setup(&base, true).await;
    let started = Instant::now();
    let token = s.manager.access_token().await.unwrap();
    assert_eq!(clear(&token), "00D!new-access");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let e = &s.events.events()[0];
    assert_eq!((e.outcome, e.attempts), (RefreshOutcome::Refreshed, 3));
    // Without a new refresh token in the answer, the old one is kept.
    let stored = s.store.load().unwrap().unwrap();
    assert_eq!(clear(stored.refresh_token.as_ref().unwrap()), "refresh-1");
    assert!(stored.in_flight.is_none());
}

#[tokio::test]
async fn transient_failures_give_up_after_three_attempts_without_a_verdict() {
    let (base, calls) = refusing_token_endpoint(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal server error",
    )
    .await;
    let s = setup(&base, true).await;
    let error = s.manager.access_token().await.unwrap_err();
    assert!(matches!(error, ClientError::Transient { .. }), "{error:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stored = s.store.load().unwrap().unwrap();
    // The server answered each time, so nothing was rotated: no marker, no dead token.
    assert!(stored.in_flight.is_none() && stored.dead.is_none());
    assert_eq!(s.events.events()[0].outcome, RefreshOutcome::Failed);

    // A long Retry-After is not slept on: the caller gets it.
    let (base, calls) = fake_token_endpoint(|_| {
        let mut r = oauth_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "slow");
        r.headers_mut()
            .insert(header::RETRY_AFTER, "120".parse().unwrap());
        r
    })
    .await;
    let s = setup(&base, true).await;
    let error = s.manager.access_token().await.unwrap_err();
    let ClientError::Transient { retry_after, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(120)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_proactive_refresh_hands_out_the_still_valid_token() {
    let (base, calls) = refusing_token_endpoint(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "x",
    )
    .await;
    let s = setup(&base, false).await;
    let token = s.manager.access_token().await.unwrap();
    assert_eq!(clear(&token), "00D!old-access");
    assert_eq!(s.events.events()[0].outcome, RefreshOutcome::Failed);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // For a while the valid token is handed out without hammering the server.
    for _ in 0..5 {
        assert_eq!(
            clear(&s.manager.access_token().await.unwrap()),
            "00D!old-access"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Then a refresh is tried again (9 s of validity left).
    s.clock.advance_ms(11_000);
    assert!(s.manager.access_token().await.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    // Once it has expired, the failure is the caller's.
    s.clock.advance_ms(10_000);
    assert!(matches!(
        s.manager.access_token().await,
        Err(ClientError::Transient { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn a_concurrent_refresh_at_the_server_is_transient_not_a_logout() {
    let (base, calls) = refusing_token_endpoint(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "token request is already being processed",
    )
    .await;
    let s = setup(&base, true).await;
    let error = s.manager.access_token().await.unwrap_err();
    assert!(matches!(error, ClientError::Transient { .. }), "{error:?}");
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "retried after a short delay"
    );
    assert!(s.store.load().unwrap().unwrap().dead.is_none());
}

#[tokio::test]
async fn a_misconfigured_client_is_a_reauth_with_its_reason() {
    let (base, _) = refusing_token_endpoint(
        StatusCode::BAD_REQUEST,
        "invalid_client",
        "invalid client credentials",
    )
    .await;
    let s = setup(&base, true).await;
    assert!(matches!(
        s.manager.access_token().await,
        Err(ClientError::ReauthRequired {
            reason: tessera_client::ReauthReason::ClientMisconfigured { .. }
        })
    ));
}

#[tokio::test]
async fn the_in_flight_marker_is_on_disk_before_the_refresh_request_is_sent() {
    let dirs_slot: Arc<Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let seen_marker = Arc::new(Mutex::new(None));
    let (slot, seen) = (dirs_slot.clone(), seen_marker.clone());
    let key_slot: Arc<Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let key = key_slot.clone();
    let (base, _) = fake_token_endpoint(move |_| {
        // What another process would read right now.
        let data = slot.lock().unwrap().clone().unwrap();
        let key = key.lock().unwrap().clone().unwrap();
        let other =
            tessera_client::FileTokenStore::open(data, tessera_client::KeySource::KeyFile(key))
                .unwrap();
        let stored = other.load().unwrap().unwrap();
        *seen.lock().unwrap() = Some(stored.pending_refresh().is_some());
        tokens("00D!after-marker")
    })
    .await;
    let s = setup(&base, true).await;
    *dirs_slot.lock().unwrap() = Some(s._dirs.data());
    *key_slot.lock().unwrap() = Some(s._dirs.key());
    s.manager.access_token().await.unwrap();
    assert_eq!(*seen_marker.lock().unwrap(), Some(true));
    assert!(s.store.load().unwrap().unwrap().in_flight.is_none());
}

#[tokio::test]
async fn a_refresh_with_no_answer_keeps_its_marker_for_the_next_attempt() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let s = setup(&closed, true).await;
    assert!(matches!(
        s.manager.access_token().await,
        Err(ClientError::Transient { .. })
    ));
    let stored = s.store.load().unwrap().unwrap();
    let marker = stored.pending_refresh().expect("marker kept");
    use tessera_client::Clock;
    assert!(marker.age_ms(s.clock.now_ms()) < 1_000);
    assert!(s.manager.status().await.unwrap().refresh_in_flight);
    // A later attempt keeps the first attempt's time (the server's window started then).
    s.clock.advance_ms(10_000);
    let _ = s.manager.access_token().await;
    let again = s.store.load().unwrap().unwrap();
    assert_eq!(again.in_flight, stored.in_flight);
}

#[tokio::test]
async fn a_session_refused_again_after_the_refresh_is_returned_not_retried() {
    let api_calls = Arc::new(AtomicU32::new(0));
    let counter = api_calls.clone();
    let token_calls = Arc::new(AtomicU32::new(0));
    let refreshes = token_calls.clone();
    let router = Router::new()
        .route(
            "/services/oauth2/token",
            post(move || {
                let n = refreshes.fetch_add(1, Ordering::SeqCst);
                async move { tokens(&format!("00D!refreshed-{n}")) }
            }),
        )
        .route(
            "/services/data/v65.0/",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                    )
                }
            }),
        );
    let base = serve(router).await;
    let s = setup(&base, false).await;
    // Fresh for a while: the first call goes out with the stored token.
    s.clock.advance_ms(-3_000_000);
    let mut credential = s.store.load().unwrap().unwrap();
    credential.instance_url = base.clone();
    let rt = credential.refresh_token.clone();
    s.store.save(rt.as_ref(), &credential).unwrap();

    let response = s
        .manager
        .http_client()
        .get("/services/data/v65.0/")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The body survived the inspection.
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("INVALID_SESSION_ID"));
    assert_eq!(api_calls.load(Ordering::SeqCst), 2, "one call, one replay");
    assert_eq!(token_calls.load(Ordering::SeqCst), 1, "one refresh");
}
