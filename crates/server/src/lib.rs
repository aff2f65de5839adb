//! Tessera's HTTP surface: the authorization server (`/services/oauth2/*`, identity, discovery)
//! and the resource server (`/services/data/*`). Handlers are adapters: extractors read the
//! request, one call goes into `tessera_core`, and the result is mapped — failures at a single
//! edge, [`error::WebError`].

mod apps;
mod authorize;
mod console;
pub mod cors;
mod data;
mod dates;
mod dpop;
pub mod error;
mod extract;
pub mod forwarded;
mod identity;
mod json_headers;
mod learn;
mod lifecycle;
pub mod metrics;
mod observe;
mod pages;
mod reply;
mod request_id;
mod token;
mod usage;

/// Entry points for the fuzz targets in `fuzz/` (docs/contract.md, "Fuzzing"): private parsers,
/// reachable from outside the crate without being part of its API.
#[doc(hidden)]
pub mod fuzzing {
    /// The `Authorization: Basic` client credentials of a token or introspection request.
    pub use crate::extract::parse_basic;
}

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
use tessera_core::authority::NotReady;
use tessera_core::Authority;
use tower_http::timeout::TimeoutLayer;

pub use forwarded::{ProxyHeader, TrustedProxies};
/// The `/learn` playground's state, given to [`AppState::with_learn`] to turn the page on.
pub use learn::Playground;
/// Escapes text for HTML, and a whole page in the server's look (the CLI's loopback redirect
/// page uses both).
pub use pages::{document as page_document, escape as escape_html};

/// Largest request body any endpoint reads, bounded before buffering (docs/security.md,
/// "Bounded requests"); a larger one is answered 413 in the endpoint's own error format.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that has not been read and answered by then gets 408: a slow body (slowloris)
/// cannot hold a connection and a task for ever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every handler and middleware is given: one reference count to clone. A request
/// clones the state once per middleware and extractor that takes it, and dropping a state of
/// six shared fields six times a request was 3 % of an API call's CPU.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppContext>);

/// The state's fields, read through [`AppState`] (it dereferences to them); set them with
/// [`AppState`]'s `with_*` methods.
#[derive(Debug, Clone)]
pub struct AppContext {
    pub authority: Authority,
    /// Proxies whose forwarding header (`X-Forwarded-For` or `Forwarded`, one of them) names
    /// the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Serve `POST /bench/floor`, the benchmark's reference: a trivial handler on this same
    /// stack (`tessera serve --bench-floor`; off otherwise).
    pub bench_floor: bool,
    /// Write one `tessera::access` log line per request.
    pub access_log: bool,
    /// Serve `/metrics` on this router; `None` when it is served elsewhere (`metrics_listen`)
    /// or not at all, and this router answers it 404.
    pub metrics: Option<metrics::Metrics>,
    /// Which browser origins may call which routes (docs/security.md, CORS).
    pub cors: Arc<cors::CorsPolicy>,
    /// The `/learn` playground, when it is on; `None`: its paths are not routed (404).
    pub learn: Option<Arc<Playground>>,
}

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

impl AppState {
    pub fn new(authority: Authority) -> Self {
        Self(Arc::new(AppContext {
            authority,
            trusted_proxies: Arc::new(TrustedProxies::default()),
            bench_floor: false,
            access_log: false,
            metrics: None,
            cors: Arc::new(cors::CorsPolicy::default()),
            learn: None,
        }))
    }

    /// The state with one change (before the app is built: a state already shared is copied).
    fn with(self, change: impl FnOnce(&mut AppContext)) -> Self {
        let mut context = Arc::unwrap_or_clone(self.0);
        change(&mut context);
        Self(Arc::new(context))
    }

    /// Serves the `/learn` playground.
    pub fn with_learn(self, playground: Playground) -> Self {
        self.with(|c| c.learn = Some(Arc::new(playground)))
    }

    pub fn with_cors(self, policy: cors::CorsPolicy) -> Self {
        self.with(|c| c.cors = Arc::new(policy))
    }

    pub fn with_trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.with(|c| c.trusted_proxies = Arc::new(proxies))
    }

    pub fn with_bench_floor(self, on: bool) -> Self {
        self.with(|c| c.bench_floor = on)
    }

    pub fn with_access_log(self, on: bool) -> Self {
        self.with(|c| c.access_log = on)
    }

    pub fn with_metrics(self, metrics: Option<metrics::Metrics>) -> Self {
        self.with(|c| c.metrics = metrics)
    }

    /// Cookies get `Secure` when the server is reached over HTTPS.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.authority.config().issuer.starts_with("https://")
    }
}

/// The whole application, for `serve` and for in-process tests. Run it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so that throttling sees the peer.
pub fn app(state: AppState) -> Router {
    json_headers::on_json_responses(
        routes(state.bench_floor, state.learn.is_some())
            .router
            .fallback(error::not_found),
    )
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        dpop::nonce_on_answers,
    ))
    // Inside the timeout and the observation, so that a refused or preflight request is
    // timed, counted and logged as any other.
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        cors::cors,
    ))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ))
    // Outermost, so that the time measured and the status logged include the timeout's.
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        observe::observe,
    ))
    .with_state(state)
}

/// The paths the router serves (without `--bench-floor`, with the `/learn` playground), as
/// registered: the contract test compares them with the OpenAPI document, so that neither can
/// gain a path the other lacks.
pub fn routed_paths() -> Vec<&'static str> {
    routes(false, true).paths
}

/// The OpenAPI 3.1 document of every path [`app`] serves (docs/contract.md), served at
/// `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// A router and the paths registered on it, built together so the list cannot drift from the
/// router.
pub(crate) struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    pub(crate) fn route(self, path: &'static str, methods: MethodRouter<AppState>) -> Self {
        let mut paths = self.paths;
        paths.push(path);
        Self {
            router: self.router.route(path, methods),
            paths,
        }
    }
}

fn routes(bench_floor: bool, learn: bool) -> Routes {
    let mut routes = Routes::new();
    if bench_floor {
        routes = routes.route("/bench/floor", post(bench_floor_reply));
    }
    let routes = routes
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics_here))
        .route("/services/oauth2/token", any(token::token))
        .route(
            "/services/oauth2/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/services/oauth2/authorize/login", post(authorize::login))
        .route(
            "/services/oauth2/authorize/consent",
            get(authorize::consent_page).post(authorize::consent),
        )
        .route("/services/oauth2/success", get(authorize::success_page))
        .route(
            "/secur/logout.jsp",
            get(authorize::logout_page).post(authorize::logout),
        )
        .route(
            "/services/oauth2/revoke",
            get(lifecycle::revoke).post(lifecycle::revoke),
        )
        .route("/services/oauth2/introspect", any(lifecycle::introspect))
        .route(
            "/services/oauth2/userinfo",
            get(identity::userinfo).post(identity::userinfo),
        )
        .route(
            "/id/{org_id}/{user_id}",
            get(identity::identity).post(identity::identity),
        )
        .route("/id/keys", get(identity::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(identity::discovery),
        )
        .route(
            "/.well-known/openid-configuration",
            get(identity::openid_configuration),
        );
    let routes = console::routes(usage::routes(data::routes(apps::routes(routes))));
    if learn {
        learn::routes(routes)
    } else {
        routes
    }
}

/// `/metrics` on the main listener, unless it is served on a listener of its own
/// (`metrics_listen`) or not at all: then not found here, as any unknown path.
async fn metrics_here(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    match &state.metrics {
        Some(metrics) => metrics::exposition_of(metrics, &state.authority),
        None => error::not_found().await.into_response(),
    }
}

/// The contract, as it is in the repository (its test checks it against [`routed_paths`]).
async fn openapi() -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
        .into_response()
}

/// Readiness: the process is up (that is `/healthz`), its database answers with the schema
/// this build expects, and it has read the change feed lately (it knows of revocations made
/// elsewhere). Load balancers route to a node only while this is 200.
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, error::WebError> {
    match state.authority.ready().await {
        Ok(()) => Ok("ready\n"),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            Err(error::WebError::NotReady(match why {
                NotReady::Store(_) => error::Unready::Database,
                NotReady::ChangeFeedStale(stale) => error::Unready::ChangeFeed(stale),
            }))
        }
    }
}

/// The benchmark's floor: what the stack costs with no work behind it.
async fn bench_floor_reply() -> axum::response::Response {
    reply::json(StatusCode::OK, &serde_json::json!({ "ok": true }))
}

/// Writes the usage ledger (the uses of refreshes that wrote no row) every `every` until the
/// process ends, as one batched store call each time; call [`Authority::flush_usage`] once more
/// at shutdown. A failed write keeps the uses for the next round.
pub fn spawn_usage_flusher(
    authority: Authority,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match authority.flush_usage().await {
                Ok(grants) => tracing::debug!(grants, "usage written"),
                Err(error) => {
                    tracing::warn!(error = %error, "could not write the usage counts; retrying next round")
                }
            }
        }
    })
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
