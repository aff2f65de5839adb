//! Tessera's HTTP surface: the authorization server (`/services/oauth2/*`, identity, discovery)
//! and the resource server (`/services/data/*`). Handlers are adapters: they extract, make one
//! call into `tessera_core`, and map the result.

mod authorize;
mod data;
mod dates;
mod extract;
mod identity;
mod lifecycle;
mod pages;
mod reply;
mod session;
mod token;

use axum::routing::{any, get};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_core::Authority;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use tessera_core::ratelimit::BruteForceGuard;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request body any endpoint reads (security.md §4.1: bounded before buffering).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that has not been read and answered by then gets 408: a slow body (slowloris)
/// cannot hold a connection and a task for ever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct AppState {
    pub authority: Authority,
    /// Failure counters against brute force (per client, per address, per username).
    pub guard: Arc<BruteForceGuard>,
}

impl AppState {
    pub fn new(authority: Authority) -> Self {
        Self {
            authority,
            guard: Arc::new(BruteForceGuard::default()),
        }
    }

    /// Cookies get `Secure` when the server is reached over HTTPS.
    fn secure_cookies(&self) -> bool {
        self.authority.config().issuer.starts_with("https://")
    }
}

/// The whole application, for `serve` and for in-process tests.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/services/oauth2/token", any(token::token))
        .route(
            "/services/oauth2/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(
            "/services/oauth2/authorize/login",
            axum::routing::post(authorize::login),
        )
        .route(
            "/services/oauth2/authorize/consent",
            get(authorize::consent_page).post(authorize::consent),
        )
        .route("/services/oauth2/success", get(authorize::success_page))
        .route(
            "/services/oauth2/revoke",
            get(lifecycle::revoke).post(lifecycle::revoke),
        )
        .route("/services/oauth2/introspect", any(lifecycle::introspect))
        .route(
            "/services/oauth2/userinfo",
            get(identity::userinfo).post(identity::userinfo),
        )
        .route("/id/keys", get(identity::jwks))
        .route(
            "/id/{org_id}/{user_id}",
            get(identity::identity).post(identity::identity),
        )
        .route(
            "/.well-known/openid-configuration",
            get(identity::discovery),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(identity::discovery),
        )
        .merge(data::routes())
        .fallback(reply::not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// The peer address of a request, as a rate-limiting key ("unknown" in in-process tests, which
/// have no socket).
pub(crate) fn source_address<B>(request: &Request<B>) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs housekeeping every `every` until the process ends: expired and revoked rows go, so the
/// database does not grow without bound under steady refresh traffic.
pub fn spawn_housekeeping(
    authority: Authority,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match authority.housekeeping().await {
                Ok(counts) => tracing::debug!(?counts, "housekeeping"),
                Err(error) => {
                    tracing::warn!(error = %error, "housekeeping failed; retrying next round")
                }
            }
        }
    })
}
