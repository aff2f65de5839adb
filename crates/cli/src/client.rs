//! The client commands: `login`, `token`, `curl`, `status`, `logout`. They keep one credential
//! per `--profile` with `tessera_client`'s token manager: encrypted at rest, refreshed before
//! expiry and on 401, one refresh at a time even across processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use sha2::{Digest, Sha256};
use tessera_client::{
    discover, ClientError, Credential, FileTokenStore, KeySource, ManagerConfig, SystemClock,
    TokenManager, TokenStore,
};
use tessera_proto::{ClientSecret, ExposeSecret, OAuthErrorBody, TokenResponse};

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
    let store = open_store(paths, profile)?;
    let config = ManagerConfig {
        http: http_client()?,
        clock: Arc::new(SystemClock),
        session_timeout: session_timeout()?,
        on_event: None,
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

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The authorization server, e.g. http://127.0.0.1:8080 or https://login.salesforce.com.
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: String,
    #[arg(long, env = "TESSERA_CLIENT_ID")]
    client_id: String,
    /// Read the client secret from standard input (confidential clients).
    #[arg(long)]
    client_secret_stdin: bool,
    #[arg(long, default_value = "api id refresh_token")]
    scope: String,
    /// Do not try to open a browser; just print the URL.
    #[arg(long)]
    no_browser: bool,
    /// Port of the loopback redirect listener (0: any free port; the client must then be
    /// registered with http://127.0.0.1/callback, which matches any port).
    #[arg(long, default_value_t = 8976)]
    redirect_port: u16,
    /// How long to wait for the browser to come back.
    #[arg(long, default_value = "5m", value_parser = |s: &str| tessera_core::time::parse_duration_secs(s).ok_or("a duration like 5m"))]
    timeout: u64,
}

/// RFC 7636: a 64-character verifier of unreserved characters and its S256 challenge.
fn pkce_pair() -> (String, String) {
    let verifier = tessera_core::ids::random_token(&tessera_core::time::SystemRandom, 48);
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

/// What the browser brought back to the loopback listener.
#[derive(Debug, serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Serves `GET /callback` once on the listener and returns its parameters.
async fn wait_for_callback(
    listener: tokio::net::TcpListener,
    timeout: Duration,
) -> anyhow::Result<Callback> {
    use axum::extract::{Query, State};
    use axum::response::Html;
    type Slot = Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<Callback>>>>;
    let (tx, rx) = tokio::sync::oneshot::channel::<Callback>();
    let slot: Slot = Arc::new(tokio::sync::Mutex::new(Some(tx)));
    async fn callback(
        State(slot): State<Slot>,
        Query(params): Query<Callback>,
    ) -> Html<&'static str> {
        let ok = params.error.is_none();
        if let Some(tx) = slot.lock().await.take() {
            let _ = tx.send(params);
        }
        Html(if ok {
            "<!doctype html><meta charset=utf-8><title>Tessera</title><p style='font-family:sans-serif'>You are logged in. You can close this window and go back to the terminal.</p>"
        } else {
            "<!doctype html><meta charset=utf-8><title>Tessera</title><p style='font-family:sans-serif'>The login did not complete. See the terminal.</p>"
        })
    }
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(slot);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let result = tokio::time::timeout(timeout, rx).await;
    // Let the browser's page be sent before the listener goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    match result {
        Ok(Ok(callback)) => Ok(callback),
        Ok(Err(_)) => bail!("the redirect listener stopped"),
        Err(_) => bail!("no answer from the browser within {} s", timeout.as_secs()),
    }
}

#[allow(clippy::print_stderr)]
pub async fn login(paths: &ClientPaths, profile: &str, args: LoginArgs) -> anyhow::Result<()> {
    let http = http_client()?;
    let endpoints = discover(&http, &args.issuer).await.map_err(explain)?;
    let secret = if args.client_secret_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Some(ClientSecret::new(text.trim_end_matches(['\n', '\r'])))
    } else {
        None
    };
    let (verifier, challenge) = pkce_pair();
    let state = tessera_core::ids::random_token(&tessera_core::time::SystemRandom, 16);
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
    eprintln!("Open this URL in a browser to log in:\n\n  {url}\n");
    if !args.no_browser && try_open_browser(url.as_str()) {
        eprintln!("(a browser was opened)");
    }
    eprintln!("Waiting for the browser at {redirect_uri} …");
    let callback = wait_for_callback(listener, Duration::from_secs(args.timeout)).await?;
    if let Some(error) = callback.error {
        bail!(
            "authorization failed: {error}: {}",
            callback.error_description.unwrap_or_default()
        );
    }
    if callback.state.as_deref() != Some(state.as_str()) {
        bail!("the redirect carried another state: refusing it (possible CSRF)");
    }
    let code = callback.code.context("the redirect carried no code")?;

    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", args.client_id.clone()),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = &secret {
        form.push(("client_secret", secret.expose_secret().to_owned()));
    }
    let response = http
        .post(&endpoints.token)
        .form(&form)
        .send()
        .await
        .context("calling the token endpoint")?;
    let date = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        let error: OAuthErrorBody = serde_json::from_slice(&body).unwrap_or(OAuthErrorBody {
            error: format!("HTTP {status}"),
            error_description: String::new(),
        });
        bail!(
            "the code exchange failed: {}: {}",
            error.error,
            error.error_description
        );
    }
    let tokens: TokenResponse = serde_json::from_slice(&body)
        .context("the token endpoint answered something that is not a token response")?;
    let now_ms = tessera_client::Clock::now_ms(&SystemClock);
    let credential = Credential::from_token_response(
        endpoints,
        args.client_id,
        secret,
        &tokens,
        date,
        now_ms,
        session_timeout()?,
    );
    let manager = manager(paths, profile)?;
    manager.login_with(credential).await.map_err(explain)?;
    let status = manager.status().await.map_err(explain)?;
    eprintln!("Logged in.\n{status}");
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn token(paths: &ClientPaths, profile: &str) -> anyhow::Result<()> {
    let manager = manager(paths, profile)?;
    let token = manager.access_token().await.map_err(explain)?;
    println!("{}", token.expose_secret());
    Ok(())
}

#[derive(Debug, Args)]
pub struct CurlArgs {
    /// A path relative to the instance URL (/services/data/v65.0/…) or a full URL.
    target: String,
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A request body (JSON for the REST API).
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Print the status line and response headers to stderr.
    #[arg(short = 'i', long)]
    include: bool,
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub async fn curl(paths: &ClientPaths, profile: &str, args: CurlArgs) -> anyhow::Result<()> {
    let manager = manager(paths, profile)?;
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
        eprintln!("HTTP {status}");
        for (name, value) in response.headers() {
            eprintln!("{name}: {}", value.to_str().unwrap_or("?"));
        }
    }
    let body = response.bytes().await?;
    println!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        bail!("HTTP {status}");
    }
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
