//! The client commands: `login`, `token`, `curl`, `status`, `logout`. They keep one credential
//! per `--profile` with `tessera_client`'s token manager: encrypted at rest, refreshed before
//! expiry and on 401, one refresh at a time even across processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::terminal::read_secret;
use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use sha2::{Digest, Sha256};
use tessera_client::{
    discover_with, ClientError, CodeGrant, DiscoveryOptions, DpopKey, FileTokenStore, KeySource,
    ManagerConfig, SystemClock, TokenManager, TokenStore,
};
use tessera_proto::{ClientSecret, ExposeSecret};

/// Where a profile's credential and the key that encrypts it live: apart, so that a copy of
/// the profiles directory alone gives nothing.
#[derive(Debug, Clone)]
pub struct ClientPaths {
    pub profiles: PathBuf,
    pub keys: PathBuf,
}

impl ClientPaths {
    /// `TESSERA_CLIENT_DIR` (profiles/ and keys/ under it), else the XDG config directory for
    /// profiles and the XDG data directory for keys.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("TESSERA_CLIENT_DIR").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return Self {
                profiles: dir.join("profiles"),
                keys: dir.join("keys"),
            };
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".local/share"));
        Self {
            profiles: config.join("tessera/profiles"),
            keys: data.join("tessera/keys"),
        }
    }
}

fn valid_profile(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("a profile name is 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// The token store of a profile. `TESSERA_PASSPHRASE` selects a passphrase-derived key;
/// otherwise the OS keyring where there is one, else a key file (and `status` says which).
pub fn open_store(paths: &ClientPaths, profile: &str) -> anyhow::Result<Arc<dyn TokenStore>> {
    valid_profile(profile)?;
    let data = paths.profiles.join(format!("{profile}.cred"));
    let key = match std::env::var("TESSERA_PASSPHRASE") {
        Ok(passphrase) if !passphrase.is_empty() => {
            KeySource::Passphrase(tessera_proto::Password::new(passphrase))
        }
        _ => KeySource::Auto {
            key_file: paths.keys.join("client.key"),
            keyring_service: "tessera".into(),
            keyring_user: profile.to_owned(),
        },
    };
    Ok(Arc::new(
        FileTokenStore::open(data, key).context("opening the token store")?,
    ))
}

fn session_timeout() -> anyhow::Result<Option<Duration>> {
    match std::env::var("TESSERA_SESSION_TIMEOUT") {
        Ok(text) if !text.is_empty() => {
            let secs = tessera_core::time::parse_duration_secs(&text)
                .context("TESSERA_SESSION_TIMEOUT is a duration like 2h")?;
            Ok(Some(Duration::from_secs(secs)))
        }
        _ => Ok(None),
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

pub fn manager(paths: &ClientPaths, profile: &str) -> anyhow::Result<Arc<TokenManager>> {
    manager_configured(paths, profile, false)
}

/// [`manager`], making a DPoP key for the credential it stores when `dpop` is set (a stored
/// credential that has one uses it either way).
fn manager_configured(
    paths: &ClientPaths,
    profile: &str,
    dpop: bool,
) -> anyhow::Result<Arc<TokenManager>> {
    let store = open_store(paths, profile)?;
    let config = ManagerConfig {
        http: http_client()?,
        clock: Arc::new(SystemClock),
        session_timeout: session_timeout()?,
        on_event: None,
        dpop,
    };
    Ok(Arc::new(TokenManager::new(store, config)))
}

/// A client error as a person should read it.
pub fn explain(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::ReauthRequired { reason } => {
            anyhow::anyhow!("please log in again (tessera login): {reason}")
        }
        ClientError::NotLoggedIn => anyhow::anyhow!("not logged in: run tessera login first"),
        other => anyhow::anyhow!(other),
    }
}

/// The stored credential a client command works on.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Which stored credential to use: one per profile, for several users or servers.
    #[arg(long, env = "TESSERA_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The authorization server, e.g. http://127.0.0.1:8080 or https://login.salesforce.com.
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: String,
    /// The client (connected app) to log in with: its client_id, the consumer key at Salesforce.
    #[arg(long, env = "TESSERA_CLIENT_ID")]
    client_id: String,
    /// Read the client secret (confidential clients): typed at a prompt without echo on a
    /// terminal, else read from standard input to its end.
    #[arg(long)]
    client_secret_stdin: bool,
    /// Space-separated scopes to ask for; refresh_token is what makes the session last.
    #[arg(long, default_value = "api id refresh_token")]
    scope: String,
    /// Do not try to open a browser; just print the URL.
    #[arg(long)]
    no_browser: bool,
    /// Port of the loopback redirect listener (0: any free port; the client must then be
    /// registered with http://127.0.0.1/callback, which matches any port).
    #[arg(long, default_value_t = 8976)]
    redirect_port: u16,
    /// Allow a plain-http issuer on a host other than loopback (127.0.0.0/8, ::1, localhost).
    /// The client secret, the code and the tokens then cross the network in clear: only for a
    /// test network you trust.
    #[arg(long)]
    insecure_http: bool,
    /// Bind the tokens to a new P-256 key (DPoP, RFC 9449), kept encrypted with them: a stolen
    /// refresh token is then useless without the key. The server must allow DPoP for the client.
    #[arg(long)]
    dpop: bool,
    /// How long to wait for the browser to come back.
    #[arg(long, default_value = "5m", value_parser = |s: &str| tessera_core::time::parse_duration_secs(s).ok_or("a duration like 5m"))]
    timeout: u64,
    #[command(flatten)]
    profile: ProfileArgs,
}

/// RFC 7636: a 64-character verifier of unreserved characters and its S256 challenge.
fn pkce_pair() -> (String, String) {
    let verifier = tessera_core::tokens::ids::random_token(&tessera_core::time::SystemRandom, 48);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn try_open_browser(url: &str) -> bool {
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .or_else(|| has_display.then(|| "xdg-open".to_owned()));
    let Some(opener) = opener else { return false };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// The client secret: typed at a prompt without echo, or piped in (see [`read_secret`]).
fn read_client_secret(client_id: &str) -> anyhow::Result<ClientSecret> {
    let secret = read_secret(
        &format!("Client secret of {client_id}: "),
        "--client-secret-stdin",
    )
    .context("reading the client secret")?;
    Ok(ClientSecret::new(secret))
}

/// What the browser brought back to the loopback listener.
#[derive(Debug, serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A page of the loopback listener, in the browser tab the login ends in, in the look of the
/// server's pages: a heading, a sentence for the person at the browser, and maybe a detail in
/// small print. What to type next belongs to the terminal, not here.
fn browser_page(heading: &str, text: &str, detail: Option<&str>) -> String {
    use tessera_server::escape_html as escape;
    let detail = detail
        .map(|detail| format!("<p class=\"detail\">{}</p>", escape(detail)))
        .unwrap_or_default();
    tessera_server::page_document(
        &format!("{heading} · Tessera"),
        &format!(
            "<h1>{}</h1><p>{}</p>{detail}",
            escape(heading),
            escape(text)
        ),
    )
}

/// A failure with a hint about the command line: the terminal shows both, the browser page the
/// failure alone (a person at a browser has no `--client-secret-stdin` to give).
#[derive(Debug)]
struct HintedFailure {
    failure: String,
    hint: &'static str,
}

impl std::fmt::Display for HintedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\nhint: {}", self.failure, self.hint)
    }
}

impl std::error::Error for HintedFailure {}

/// The browser page that ends a login: the outcome, and a way back to the terminal.
fn outcome_page(outcome: &anyhow::Result<tessera_client::Status>) -> String {
    match outcome {
        Ok(status) => browser_page(
            "You are logged in",
            &format!(
                "You are logged in{}. You can close this window and return to your terminal.",
                status
                    .identity
                    .as_ref()
                    .and_then(|claims| claims.display_name())
                    .or_else(|| status.username.clone())
                    .map(|user| format!(" as {user}"))
                    .unwrap_or_default()
            ),
            None,
        ),
        Err(error) => {
            let failure = error
                .downcast_ref::<HintedFailure>()
                .map_or_else(|| format!("{error:#}"), |hinted| hinted.failure.clone());
            browser_page(
                "The login failed",
                "Return to your terminal: it says what went wrong and what to do next.",
                Some(&format!("Detail: {failure}")),
            )
        }
    }
}

/// Serves `GET /callback` on the listener until a request carries this login's `state`, then
/// completes the login with what it brought. Requests with another `state` or none (a local
/// process, a cross-site image) are answered 400 and ignored, so they cannot abort the login;
/// the timeout still bounds the wait. The browser's request is answered only at the end, so
/// that its page tells the outcome — a failed code exchange included — instead of a success
/// the terminal then contradicts.
async fn complete_on_redirect<F, Fut>(
    listener: tokio::net::TcpListener,
    state: &str,
    timeout: Duration,
    complete: F,
) -> anyhow::Result<tessera_client::Status>
where
    F: FnOnce(Callback) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<tessera_client::Status>>,
{
    use axum::extract::{Query, State};
    use axum::response::Html;
    use tokio::sync::oneshot;
    /// The browser's parameters, and where to send the page it is waiting for.
    type Arrival = (Callback, oneshot::Sender<String>);
    /// The expected `state`, and where the one request carrying it goes.
    type Slot = Arc<(String, tokio::sync::Mutex<Option<oneshot::Sender<Arrival>>>)>;
    let (arrived_tx, arrived_rx) = oneshot::channel::<Arrival>();
    let slot: Slot = Arc::new((state.to_owned(), tokio::sync::Mutex::new(Some(arrived_tx))));
    async fn callback(
        State(slot): State<Slot>,
        params: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
    ) -> (axum::http::StatusCode, Html<String>) {
        use axum::http::StatusCode;
        let (expected, arrival) = &*slot;
        // Only the authorization server's redirect knows the state; anything else, error
        // responses included, could come from anyone and must not end the login.
        let Some(Query(params)) = params.ok().filter(|Query(p)| {
            p.state
                .as_deref()
                .is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
        }) else {
            return (
                StatusCode::BAD_REQUEST,
                Html(browser_page(
                    "Not this login",
                    "This request does not belong to the login in progress and was ignored.",
                    None,
                )),
            );
        };
        let Some(arrived) = arrival.lock().await.take() else {
            return (
                StatusCode::OK,
                Html(browser_page(
                    "Already answered",
                    "This login was already answered. Return to your terminal.",
                    None,
                )),
            );
        };
        let (page_tx, page_rx) = oneshot::channel();
        if arrived.send((params, page_tx)).is_err() {
            return (
                StatusCode::OK,
                Html(browser_page(
                    "The login stopped",
                    "Return to your terminal to see why.",
                    None,
                )),
            );
        }
        (
            StatusCode::OK,
            Html(page_rx.await.unwrap_or_else(|_| {
                browser_page(
                    "The login did not complete",
                    "Return to your terminal to see why.",
                    None,
                )
            })),
        )
    }
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(slot);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let outcome = match tokio::time::timeout(timeout, arrived_rx).await {
        Ok(Ok((params, page))) => {
            let outcome = complete(params).await;
            let _ = page.send(outcome_page(&outcome));
            outcome
        }
        Ok(Err(_)) => Err(anyhow::anyhow!("the redirect listener stopped")),
        Err(_) => Err(anyhow::anyhow!(
            "no answer from the browser within {} s",
            timeout.as_secs()
        )),
    };
    // A graceful shutdown lets the page being answered reach the browser first.
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    outcome
}

/// Compares without stopping at the first difference, so timing tells nothing of `expected`.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the authorization endpoint answers to the login's request, before a browser is
/// involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Its login page (or a redirect to it): the request is acceptable.
    Accepted,
    /// Refused on a page of its own, with this error code.
    Refused(&'static str),
    /// No telling: no answer, or one this client does not read.
    Unknown,
}

/// Requests the authorization URL once, following no redirect, for the two mistakes a server
/// shows only on its own error page, where the terminal would never learn of them: a redirect
/// URI the client has not registered and an unknown client id. Tessera and Salesforce keep
/// nothing for such a request: it shows the login page, or the error.
async fn probe_authorization(http: &reqwest::Client, url: &url::Url) -> Probe {
    let response = match http.get(url.as_str()).send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "the authorization endpoint could not be probed");
            return Probe::Unknown;
        }
    };
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    for code in ["redirect_uri_mismatch", "invalid_client_id"] {
        if location.contains(code) || body.contains(code) {
            return Probe::Refused(code);
        }
    }
    if status.is_success() || status.is_redirection() {
        Probe::Accepted
    } else {
        Probe::Unknown
    }
}

/// How to register the loopback redirect URI with the client: the one in use, or, for a port
/// chosen anew at each login (`--redirect-port 0`), the port-less one that matches any port.
fn redirect_registration(client_id: &str, redirect_uri: &str, any_port: bool) -> String {
    let (which, register) = if any_port {
        (
            "with --redirect-port 0, the client must have http://127.0.0.1/callback registered, \
             which matches any port",
            "http://127.0.0.1/callback",
        )
    } else {
        ("the client must have it registered", redirect_uri)
    };
    format!(
        "{which}. On a Tessera server:\n\n  \
         tessera admin client update {client_id} --redirect-uri {register}\n\n\
         (--redirect-uri replaces the client's list: repeat it for each URI to keep.) \
         On Salesforce, add it to the connected app's callback URLs."
    )
}

/// The hint for a token endpoint's `error`, if there is one.
fn exchange_hint(error: &str, secret_given: bool) -> Option<&'static str> {
    match (error, secret_given) {
        ("invalid_client", false) => {
            Some("this client may need its secret: log in again with --client-secret-stdin")
        }
        ("invalid_client", true) => Some(
            "the server did not accept the client's credentials: check --client-id and the \
             secret given with --client-secret-stdin",
        ),
        _ => None,
    }
}

#[allow(clippy::print_stderr)]
pub async fn login(paths: &ClientPaths, args: LoginArgs) -> anyhow::Result<()> {
    let http = http_client()?;
    let options = DiscoveryOptions {
        insecure_http: args.insecure_http,
    };
    let endpoints = discover_with(&http, &args.issuer, options)
        .await
        .map_err(explain)?;
    let secret = if args.client_secret_stdin {
        Some(read_client_secret(&args.client_id)?)
    } else {
        None
    };
    let (verifier, challenge) = pkce_pair();
    let state = tessera_core::tokens::ids::random_token(&tessera_core::time::SystemRandom, 16);
    // OpenID Connect: the ID token must carry this back, so that one obtained for another
    // login cannot be passed off as this one's.
    let nonce = asks_for_openid(&args.scope)
        .then(|| tessera_core::tokens::ids::random_token(&tessera_core::time::SystemRandom, 32));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.redirect_port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{} for the redirect (another login running?)",
                args.redirect_port
            )
        })?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let authorization = endpoints
        .authorization
        .clone()
        .unwrap_or_else(|| format!("{}/services/oauth2/authorize", endpoints.issuer));
    let mut url =
        url::Url::parse(&authorization).context("the authorization endpoint is not a URL")?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &args.scope)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(nonce) = &nonce {
        url.query_pairs_mut().append_pair("nonce", nonce);
    }
    // RFC 9449 §10: the code is bound to the key, so that only its holder can exchange it.
    let dpop_key = if args.dpop {
        Some(DpopKey::generate().map_err(explain)?)
    } else {
        None
    };
    if let Some(key) = &dpop_key {
        url.query_pairs_mut()
            .append_pair("dpop_jkt", &key.thumbprint());
    }
    let probe = probe_authorization(&http, &url).await;
    match probe {
        Probe::Refused("redirect_uri_mismatch") => bail!(
            "the server refuses the redirect URI {redirect_uri} (redirect_uri_mismatch): {}",
            redirect_registration(&args.client_id, &redirect_uri, args.redirect_port == 0)
        ),
        Probe::Refused(code) => bail!(
            "the server refuses the client id {} ({code}): check --client-id",
            args.client_id
        ),
        Probe::Accepted | Probe::Unknown => {}
    }
    eprintln!("Open this URL in a browser to log in:\n\n  {url}\n");
    if !args.no_browser && try_open_browser(url.as_str()) {
        eprintln!("(a browser was opened)");
    }
    eprintln!("Waiting for the browser at {redirect_uri} …");
    if probe == Probe::Unknown {
        eprintln!(
            "If the browser shows redirect_uri_mismatch, {}",
            redirect_registration(&args.client_id, &redirect_uri, args.redirect_port == 0)
        );
    }
    let timeout = Duration::from_secs(args.timeout);
    let expected_state = state.clone();
    let status = complete_on_redirect(listener, &expected_state, timeout, |callback| async move {
        let code = authorization_code(callback, &state)?;
        let secret_given = secret.is_some();
        let grant = CodeGrant {
            endpoints,
            client_id: args.client_id,
            client_secret: secret,
            code,
            redirect_uri,
            code_verifier: verifier,
            dpop_key,
        };
        let manager = manager_configured(paths, &args.profile.profile, args.dpop)?;
        let credential = manager
            .exchange_code(grant)
            .await
            .map_err(|error| exchange_failure(error, secret_given))?;
        match &nonce {
            Some(nonce) => manager.login_with_nonce(credential, nonce).await,
            None => manager.login_with(credential).await,
        }
        .map_err(explain)?;
        manager.status().await.map_err(explain)
    })
    .await?;
    eprintln!("Logged in.\n{status}");
    Ok(())
}

/// Whether a space-separated scope asks for OpenID Connect (an ID token).
fn asks_for_openid(scope: &str) -> bool {
    scope.split_whitespace().any(|s| s == "openid")
}

/// The authorization code the redirect carried, once its `state` is ours.
fn authorization_code(callback: Callback, state: &str) -> anyhow::Result<String> {
    if let Some(error) = callback.error {
        bail!(
            "authorization failed: {error}: {}",
            callback.error_description.unwrap_or_default()
        );
    }
    if callback.state.as_deref() != Some(state) {
        bail!("the redirect carried another state: refusing it (possible CSRF)");
    }
    callback.code.context("the redirect carried no code")
}

/// A failed code exchange as a person should read it, with a hint about the command line
/// when one helps.
fn exchange_failure(error: ClientError, secret_given: bool) -> anyhow::Error {
    let ClientError::CodeExchangeRefused { error, description } = error else {
        return explain(error);
    };
    let failure = format!("the code exchange failed: {error}: {description}");
    match exchange_hint(&error, secret_given) {
        Some(hint) => HintedFailure { failure, hint }.into(),
        None => anyhow::anyhow!(failure),
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Ask the server whether it still accepts the token (it may have been revoked early),
    /// refresh it if not, and fail if that fails too.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[allow(clippy::print_stdout)]
pub async fn token(paths: &ClientPaths, args: TokenArgs) -> anyhow::Result<()> {
    let manager = manager(paths, &args.profile.profile)?;
    let token = if args.verify {
        manager.verified_access_token().await
    } else {
        manager.access_token().await
    };
    println!("{}", token.map_err(explain)?.expose_secret());
    Ok(())
}

#[derive(Debug, Args)]
pub struct CurlArgs {
    /// A path relative to the instance URL (/services/data/v65.0/…) or a full URL.
    target: String,
    /// The HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A request body (JSON for the REST API).
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Print the status line and response headers to stderr, then a blank line (as curl
    /// does).
    #[arg(short = 'i', long)]
    include: bool,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub async fn curl(paths: &ClientPaths, args: CurlArgs) -> anyhow::Result<()> {
    let manager = manager(paths, &args.profile.profile)?;
    let method = reqwest::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .context("not an HTTP method")?;
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not Name: value"))?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    if args.data.is_some() && !headers.contains_key(reqwest::header::CONTENT_TYPE) {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    let response = manager
        .http_client()
        .send(
            method,
            &args.target,
            headers,
            args.data.map(String::into_bytes),
        )
        .await
        .map_err(explain)?;
    let status = response.status();
    if args.include {
        eprintln!("{:?} {status}", response.version());
        for (name, value) in response.headers() {
            eprintln!("{name}: {}", value.to_str().unwrap_or("?"));
        }
        // The blank line that ends the header block, as in HTTP and in curl -i.
        eprintln!();
    }
    let body = response.bytes().await?;
    println!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        bail!("HTTP {status}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON file: `url` (the server), `client_id`, `client_secret` (for a confidential
    /// client) and `token_response` (the token endpoint's answer, refresh token included).
    #[arg(long, env = "TESSERA_PROBE_FILE", value_name = "FILE")]
    from: PathBuf,
    #[command(flatten)]
    profile: ProfileArgs,
}

/// What `tessera import` reads; other fields are ignored.
#[derive(Debug, serde::Deserialize)]
struct Imported {
    url: String,
    client_id: String,
    client_secret: Option<String>,
    token_response: tessera_proto::TokenResponse,
}

/// Stores tokens obtained elsewhere in a profile, as a login would have: the later commands
/// refresh and rotate them as their own.
#[allow(clippy::print_stderr)]
pub async fn import(paths: &ClientPaths, args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.from)
        .with_context(|| format!("reading {}", args.from.display()))?;
    let imported: Imported = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a token file", args.from.display()))?;
    let http = http_client()?;
    let endpoints = discover_with(&http, &imported.url, DiscoveryOptions::default())
        .await
        .map_err(explain)?;
    let credential = tessera_client::Credential::from_token_response(
        endpoints,
        imported.client_id,
        imported.client_secret.map(ClientSecret::new),
        &imported.token_response,
        None,
        tessera_client::Clock::now_ms(&SystemClock),
        session_timeout()?,
    );
    let manager = manager(paths, &args.profile.profile)?;
    manager.login_with(credential).await.map_err(explain)?;
    eprintln!("Imported into profile {}.", args.profile.profile);
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn status(paths: &ClientPaths, profile: &str) -> anyhow::Result<()> {
    let manager = manager(paths, profile)?;
    let status = manager.status().await.map_err(explain)?;
    println!("profile   {profile}\n{status}");
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn logout(paths: &ClientPaths, profile: &str) -> anyhow::Result<()> {
    let manager = manager(paths, profile)?;
    let report = manager.logout().await;
    println!("{report}");
    Ok(())
}
