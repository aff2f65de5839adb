//! The temporary server a scenario runs against, and probe's eyes on it: Tessera's own router
//! over SQLite in a temporary directory, behind connections probe serves itself, so that it
//! sees every token and API request the command makes, and can misbehave on purpose — drop a
//! response the server committed, send a duplicate refresh alongside, revoke tokens early,
//! restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response};
use sha2::{Digest, Sha256};
use tessera_core::authority::Source;
use tessera_core::model::EventKind;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::store::EventFilter;
use tessera_core::time::{SystemClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ClientSecret, ExposeSecret, Password, PresentedToken, TokenResponse};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use super::judge::{Generation, Presented, Seen, TokenAnswer};
use super::scenario::{Scenario, Setup};

const TOKEN_PATH: &str = "/services/oauth2/token";
/// What counts as an API call.
const API_PREFIX: &str = "/services/data";
const PROBE_USER: &str = "probe@example.com";
/// How long the restarted server is away: long enough that a connection kept alive is seen
/// closed, short next to the pause between two calls.
const RESTART_DOWNTIME: Duration = Duration::from_millis(300);

/// The login probe minted for the command.
#[derive(Debug)]
pub struct Login {
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub tokens: TokenResponse,
}

/// A scenario's server, listening on a loopback port until dropped.
#[derive(Debug)]
pub struct Stage {
    /// Holds the database; removed when the stage is dropped.
    pub dir: tempfile::TempDir,
    pub base: String,
    shared: Arc<Shared>,
    /// Stops the server (dropped with the stage).
    _shutdown: watch::Sender<bool>,
}

/// Refresh or access tokens by their order of issue, known by digest only: probe keeps no
/// token.
#[derive(Debug, Default)]
struct Generations(HashMap<[u8; 32], Generation>);

impl Generations {
    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn of(&self, token: &str) -> Option<Generation> {
        self.0.get(&Self::digest(token)).copied()
    }

    /// The token's generation, a new one if the server has just issued it.
    fn issued(&mut self, token: &str) -> Generation {
        let next = Generation::try_from(self.0.len()).unwrap_or(Generation::MAX - 1) + 1;
        *self.0.entry(Self::digest(token)).or_insert(next)
    }
}

/// What probe saw, in order.
#[derive(Debug, Default)]
struct Log {
    seen: Vec<Seen>,
    refresh: Generations,
    access: Generations,
}

/// The server in one piece: the current instance, and what the connections share.
#[derive(Debug)]
struct Shared {
    scenario: Scenario,
    instance: RwLock<Instance>,
    log: Mutex<Log>,
    /// The command's first refresh has come (misbehave on it only).
    refresh_seen: AtomicBool,
    /// The command's first successful API call has come.
    api_success_seen: AtomicBool,
    /// The login's refresh token, which revokes the whole grant (`refresh-expired`).
    login_refresh: Mutex<Option<PresentedToken>>,
    restarts: mpsc::UnboundedSender<()>,
}

/// One life of the server, between restarts.
#[derive(Debug, Clone)]
struct Instance {
    authority: Authority,
    app: axum::Router,
}

impl Instance {
    fn open(database: &str, base: &str, key: ServerKey) -> anyhow::Result<Self> {
        let store = tessera_store_sqlite::SqliteStore::open(database)
            .with_context(|| format!("opening {database}"))?;
        let authority = Authority::new(
            Arc::new(store),
            Arc::new(SystemClock),
            Arc::new(SystemRandom),
            AuthorityConfig::new(base, key),
        );
        let app = tessera_server::app(tessera_server::AppState::new(authority.clone()));
        Ok(Self { authority, app })
    }
}

impl Shared {
    fn instance(&self) -> Instance {
        self.instance
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, seen: Seen) {
        self.log().seen.push(seen);
    }
}

impl Stage {
    /// Starts the server for `scenario` on a free loopback port.
    pub async fn start(scenario: Scenario) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let base = format!("http://{address}");
        let database = dir
            .path()
            .join("probe.db")
            .to_str()
            .context("the temporary directory's path is not UTF-8")?
            .to_owned();
        let key = ServerKey::generate(&SystemRandom);
        let instance = Instance::open(&database, &base, key.clone())?;
        let (restarts, restart_requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            scenario,
            instance: RwLock::new(instance),
            log: Mutex::default(),
            refresh_seen: AtomicBool::new(false),
            api_success_seen: AtomicBool::new(false),
            login_refresh: Mutex::new(None),
            restarts,
        });
        let (shutdown, stopped) = watch::channel(false);
        let restart = Restart {
            database,
            base: base.clone(),
            key,
            address,
        };
        tokio::spawn(supervise(
            Arc::clone(&shared),
            listener,
            restart,
            restart_requests,
            stopped,
        ));
        Ok(Self {
            dir,
            base,
            shared,
            _shutdown: shutdown,
        })
    }

    /// A user, and the scenario's client: confidential, rotating, with its access-token
    /// lifetime and retry window; then a login of the user's, minted directly (no browser).
    pub async fn mint_login(&self, setup: &Setup) -> anyhow::Result<Login> {
        let operator = self.shared.instance().authority.operator();
        operator
            .create_user(PROBE_USER, Password::new("probe-password-1"), None)
            .await?;
        let (client, secret) = operator
            .create_client(
                false,
                &ClientSettings {
                    name: Some(format!("probe {}", self.shared.scenario)),
                    redirect_uris: Some(vec!["http://127.0.0.1/callback".into()]),
                    scopes: Some("api id refresh_token".into()),
                    rotate_refresh_tokens: Some(true),
                    refresh_retry_window_secs: Some(setup.retry_window_secs),
                    access_token_ttl_secs: Some(setup.access_token_ttl_secs),
                    ..Default::default()
                },
            )
            .await?;
        let client_secret = secret.context("a confidential client has a secret")?;
        let tokens = operator
            .mint_for(&client.client_id, PROBE_USER, "")
            .await
            .map_err(|error| anyhow::anyhow!("minting the login: {error}"))?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .context("the login has no refresh token")?;
        {
            let mut log = self.shared.log();
            log.refresh.issued(refresh.expose_secret());
            log.access.issued(tokens.access_token.expose_secret());
        }
        *self
            .shared
            .login_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(PresentedToken::new(refresh.expose_secret()));
        Ok(Login {
            client_id: client.client_id,
            client_secret,
            tokens,
        })
    }

    /// What probe saw so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.log().seen.clone()
    }

    /// Whether the server took a refresh for reuse (and revoked the family).
    pub async fn reuse_detected(&self) -> anyhow::Result<bool> {
        let filter = EventFilter {
            limit: 1,
            kind: Some(EventKind::ReuseDetected),
            ..EventFilter::default()
        };
        let events = self
            .shared
            .instance()
            .authority
            .operator()
            .events(&filter)
            .await?;
        Ok(!events.is_empty())
    }
}

/// What a restart needs to bring the same server back.
#[derive(Debug)]
struct Restart {
    database: String,
    base: String,
    key: ServerKey,
    address: SocketAddr,
}

/// Serves connections; on a restart request, closes them all and the listener, opens the
/// database afresh and listens on the same port again.
async fn supervise(
    shared: Arc<Shared>,
    mut listener: TcpListener,
    restart: Restart,
    mut restart_requests: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stop, stopping) = watch::channel(false);
        let accepting = tokio::spawn(accept(Arc::clone(&shared), listener, stopping));
        let restart_requested = tokio::select! {
            request = restart_requests.recv() => request.is_some(),
            _ = shutdown.changed() => false,
        };
        // The answer that asked for the restart reaches the command first.
        if restart_requested {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.send_replace(true);
        let _ = accepting.await;
        if !restart_requested {
            return;
        }
        tokio::time::sleep(RESTART_DOWNTIME).await;
        match Instance::open(&restart.database, &restart.base, restart.key.clone()) {
            Ok(instance) => {
                *shared
                    .instance
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = instance;
            }
            Err(error) => {
                tracing::error!(error = %error, "probe could not reopen the database");
                return;
            }
        }
        listener = match bind_again(restart.address).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(error = %error, "probe could not listen again after the restart");
                return;
            }
        };
        shared.record(Seen::Restarted);
    }
}

/// The port of a moment ago, which the kernel may hold for an instant after it was closed.
async fn bind_again(address: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("could not bind")))
}

/// Accepts until `stop`, then lets every connection finish what it is answering and closes it.
async fn accept(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        connections.spawn(connection(Arc::clone(&shared), stream, peer, stop.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// The error that makes hyper close a connection without answering: the lost response.
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe dropped the response on purpose")
    }
}

impl std::error::Error for DroppedOnPurpose {}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move {
            let request = request.map(Body::new);
            handle(shared, peer, request).await
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
        }
    }
}

/// A request as the router reads it, with the peer address the server would see.
fn to_router(mut request: Request<Body>, peer: SocketAddr) -> Request<Body> {
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn call(app: axum::Router, request: Request<Body>) -> Response<Body> {
    match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The answer with its body read, for probe to look into and pass on.
async fn read_response(response: Response<Body>) -> (Response<Body>, axum::body::Bytes) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (
        Response::from_parts(parts, Body::from(bytes.clone())),
        bytes,
    )
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Body>,
) -> Result<Response<Body>, DroppedOnPurpose> {
    let path = request.uri().path().to_owned();
    if path == TOKEN_PATH && request.method() == Method::POST {
        token_request(shared, peer, request).await
    } else if path.starts_with(API_PREFIX) {
        Ok(api_request(shared, peer, request).await)
    } else {
        Ok(call(shared.instance().app, to_router(request, peer)).await)
    }
}

fn read_answer(log: &mut Log, status: u16, body: &[u8]) -> TokenAnswer {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |field: &str| json.get(field).and_then(serde_json::Value::as_str);
    if (200..300).contains(&status) {
        TokenAnswer::Tokens {
            refresh: text("refresh_token").map(|t| log.refresh.issued(t)),
            access: text("access_token").map(|t| log.access.issued(t)),
        }
    } else {
        TokenAnswer::Refused {
            status,
            error: text("error").unwrap_or("(no error code)").to_owned(),
        }
    }
}

async fn token_request(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Body>,
) -> Result<Response<Body>, DroppedOnPurpose> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, tessera_server::MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let presented = match form.get("refresh_token") {
        None => Presented::Nothing,
        Some(token) => shared
            .log()
            .refresh
            .of(token)
            .map_or(Presented::Unknown, Presented::Known),
    };
    let first_refresh =
        grant_type == "refresh_token" && !shared.refresh_seen.swap(true, Ordering::SeqCst);
    let app = shared.instance().app;
    let rebuilt = |body: axum::body::Bytes| {
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(Body::from(body))
            .unwrap_or_default();
        *request.headers_mut() = parts.headers.clone();
        to_router(request, peer)
    };
    let response = if first_refresh && shared.scenario == Scenario::ConcurrentRefresh {
        // As a second instance of the app would: the same refresh, at the same moment.
        let (response, duplicate) = tokio::join!(
            call(app.clone(), rebuilt(body.clone())),
            call(app.clone(), rebuilt(body.clone()))
        );
        let status = duplicate.status().as_u16();
        let (_, duplicate_body) = read_response(duplicate).await;
        let answer = read_answer(&mut shared.log(), status, &duplicate_body);
        shared.record(Seen::Duplicate { answer });
        response
    } else {
        call(app, rebuilt(body)).await
    };
    let status = response.status().as_u16();
    let (response, answer_body) = read_response(response).await;
    let lost = first_refresh && shared.scenario == Scenario::LostResponse;
    {
        let mut log = shared.log();
        let answer = read_answer(&mut log, status, &answer_body);
        log.seen.push(Seen::Token {
            grant_type,
            presented,
            answer,
            delivered: !lost,
        });
    }
    if lost {
        // The server has committed the rotation; the command never hears of it.
        return Err(DroppedOnPurpose);
    }
    Ok(response)
}

fn bearer(request: &Request<Body>) -> Option<String> {
    let value = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
        .then(|| token.trim().to_owned())
}

async fn api_request(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Body>,
) -> Response<Body> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let token = bearer(&request);
    let access = token.as_deref().and_then(|t| shared.log().access.of(t));
    let instance = shared.instance();
    let response = call(instance.app.clone(), to_router(request, peer)).await;
    let status = response.status().as_u16();
    shared.record(Seen::Api {
        method,
        path,
        access,
        status,
    });
    if (200..300).contains(&status) && !shared.api_success_seen.swap(true, Ordering::SeqCst) {
        after_first_success(&shared, &instance.authority, token).await;
    }
    response
}

/// What the scenario does once the command's first API call has succeeded.
async fn after_first_success(shared: &Shared, authority: &Authority, access: Option<String>) {
    let source = Source::new(None, Some("tessera probe"));
    match shared.scenario {
        Scenario::AccessRevoked => {
            if let Some(access) = access {
                if authority
                    .revoke(&PresentedToken::new(access), &source)
                    .await
                    .is_ok()
                {
                    shared.record(Seen::AccessRevoked);
                }
            }
        }
        Scenario::RefreshExpired => {
            let login = shared
                .login_refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(login) = login {
                // Any refresh token of the family revokes the whole grant.
                if authority.revoke(&login, &source).await.is_ok() {
                    shared.record(Seen::GrantRevoked);
                }
            }
        }
        Scenario::Restart => {
            let _ = shared.restarts.send(());
        }
        Scenario::Rotation | Scenario::LostResponse | Scenario::ConcurrentRefresh => {}
    }
}
