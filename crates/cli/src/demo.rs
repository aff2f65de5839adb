//! `tessera demo`: the whole refresh-token story, live and narrated, against a server started in
//! this process on a free port — login, an API call, expiry and a proactive refresh with
//! rotation, an access token revoked early and the reactive path (401, refresh, replay), a stolen
//! token replayed, reuse detection revoking the family, and the "log in again" error a real app
//! turns into a login prompt. Each step is a line of a sequence diagram.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tessera_client::{
    AuthorizedClient, ClientError, Credential, ManagerConfig, RefreshEvent, RefreshOutcome,
    RefreshTrigger, SystemClock, TokenManager,
};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::{SystemClock as ServerClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ClientSecret, ExposeSecret, Password, RefreshToken, TokenResponse};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Access-token lifetime of the demo client.
    #[arg(long, default_value = "4s", value_parser = |s: &str| tessera_core::time::parse_duration_secs(s).filter(|v| *v > 0).ok_or("a positive duration like 4s"))]
    access_token_ttl: u64,
}

const CLIENT: &str = "Client";
const AS: &str = "Authorization Server";
const RS: &str = "Resource Server";
const USER: &str = "User";
const THIEF: &str = "Attacker";
const ADMIN: &str = "Administrator";

#[allow(clippy::print_stdout)]
fn arrow(from: &str, to: &str, what: &str) {
    println!("  {from:>20} ──▶ {to:<20}  {what}");
}

#[allow(clippy::print_stdout)]
fn note(text: &str) {
    println!("  {:>20}     · {text}", "");
}

#[allow(clippy::print_stdout)]
fn heading(text: &str) {
    println!("\n{text}");
}

fn short(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// The value of a hidden input in one of the server's pages.
pub(crate) fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let (_, from_value) = html
        .split_once(&marker)
        .with_context(|| format!("no {name} field on the page"))?;
    let (value, _) = from_value
        .split_once('"')
        .context("unterminated attribute")?;
    Ok(value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&"))
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get(reqwest::header::LOCATION)
        .context("no Location header")?
        .to_str()?
        .to_owned())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let stage = Stage::start().await?;
    let app = stage.register_demo_app(args.access_token_ttl).await?;
    let login = stage.log_in_with_pkce(&app).await?;
    let demo = Demo::keep_tokens_in_the_token_manager(stage, app, login).await?;
    let path = demo.call_the_api().await?;
    demo.refresh_before_expiry(&path).await?;
    demo.refresh_on_a_401_after_an_early_revocation(&path)
        .await?;
    demo.replay_the_stolen_first_refresh_token().await?;
    demo.end_with_log_in_again(&path).await?;
    heading("Done. Everything above ran against a real server; nothing was simulated.");
    Ok(())
}

/// The demo's world: a server on a free port over SQLite in a temporary directory, and the
/// HTTP client the app, the administrator and the attacker post with (redirects not followed).
struct Stage {
    /// Holds the database; removed when the demo ends.
    dir: tempfile::TempDir,
    base: String,
    authority: Authority,
    http: reqwest::Client,
}

/// The demo app as registered: a confidential client with strict rotation.
struct DemoApp {
    client_id: String,
    secret: ClientSecret,
    access_token_ttl: u64,
}

/// What act 1's token exchange answered.
struct Login {
    tokens: TokenResponse,
    /// The response's `Date`, which the token manager dates the tokens by.
    date: Option<std::time::SystemTime>,
    /// RT1, which the attacker of act 5 stole.
    first_refresh: RefreshToken,
}

/// Acts 2 to 6: the app's token manager holding the login's tokens.
struct Demo {
    stage: Stage,
    app: DemoApp,
    first_refresh: RefreshToken,
    manager: Arc<TokenManager>,
    api: AuthorizedClient,
}

const DEMO_USER: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "demo-password-1";
const REDIRECT_URI: &str = "http://127.0.0.1/callback";

impl Stage {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let store = tessera_store_sqlite::SqliteStore::open(
            dir.path().join("demo.db").to_str().context("temp path")?,
        )?;
        let authority = Authority::new(
            Arc::new(store),
            Arc::new(ServerClock),
            Arc::new(SystemRandom),
            AuthorityConfig::new(&base, ServerKey::generate(&SystemRandom)),
        );
        let server_authority = authority.clone();
        tokio::spawn(async move {
            let app = tessera_server::app(tessera_server::AppState::new(server_authority));
            let _ = axum::serve(listener, app).await;
        });
        heading(&format!("Tessera demo — Authorization Server and Resource Server on {base} (SQLite in a temporary directory)"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            dir,
            base,
            authority,
            http,
        })
    }

    /// The demo user, and the app with strict rotation and short-lived access tokens.
    async fn register_demo_app(&self, access_token_ttl: u64) -> anyhow::Result<DemoApp> {
        self.authority
            .operator()
            .create_user(DEMO_USER, Password::new(DEMO_PASSWORD), None)
            .await?;
        let (client, secret) = self
            .authority
            .operator()
            .create_client(
                false,
                &ClientSettings {
                    name: Some("Demo app".into()),
                    redirect_uris: Some(vec![REDIRECT_URI.into()]),
                    rotate_refresh_tokens: Some(true),
                    refresh_retry_window_secs: Some(0),
                    access_token_ttl_secs: Some(access_token_ttl),
                    ..Default::default()
                },
            )
            .await?;
        let secret = secret.context("a confidential client has a secret")?;
        note(&format!(
            "client \"Demo app\": rotation on, retry window 0 (strict), access tokens live {access_token_ttl} s"
        ));
        Ok(DemoApp {
            client_id: client.client_id,
            secret,
            access_token_ttl,
        })
    }

    /// Act 1: the Web Server flow with PKCE, driven as a browser would, then the code
    /// exchanged for the first tokens.
    async fn log_in_with_pkce(&self, app: &DemoApp) -> anyhow::Result<Login> {
        heading("1. Log in (Web Server flow with PKCE)");
        let base = &self.base;
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let verifier = tessera_core::tokens::ids::random_token(&SystemRandom, 48);
        let challenge = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
        };
        let authorize = format!(
            "{base}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=api+id+refresh_token&state=demo&code_challenge={challenge}",
            app.client_id,
            url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
        );
        arrow(
            CLIENT,
            USER,
            "opens the browser at /services/oauth2/authorize (code_challenge, S256)",
        );
        let page = browser.get(&authorize).send().await?.text().await?;
        arrow(AS, USER, "login page");
        let form = [
            ("request", hidden(&page, "request")?),
            ("csrf_token", hidden(&page, "csrf_token")?),
            ("username", DEMO_USER.into()),
            ("password", DEMO_PASSWORD.into()),
        ];
        let after_login = browser
            .post(format!("{base}/services/oauth2/authorize/login"))
            .form(&form)
            .send()
            .await?;
        arrow(USER, AS, "demo@example.com / ••••••••");
        let consent = browser
            .get(format!("{base}{}", location(&after_login)?))
            .send()
            .await?
            .text()
            .await?;
        arrow(
            AS,
            USER,
            "consent page: \"Demo app is asking to access your account\"",
        );
        let form = [
            ("request", hidden(&consent, "request")?),
            ("csrf_token", hidden(&consent, "csrf_token")?),
            ("decision", "allow".into()),
        ];
        let allowed = browser
            .post(format!("{base}/services/oauth2/authorize/consent"))
            .form(&form)
            .send()
            .await?;
        arrow(USER, AS, "Allow");
        let callback = location(&allowed)?;
        let code = url::Url::parse(&callback)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("no code")?;
        arrow(AS, CLIENT, "302 redirect_uri?code=…&iss=…&state=demo");
        let exchanged = self
            .http
            .post(self.token_url())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &app.client_id),
                ("client_secret", app.secret.expose_secret()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ])
            .send()
            .await?;
        arrow(
            CLIENT,
            AS,
            "POST /services/oauth2/token  grant_type=authorization_code + code_verifier",
        );
        let date = exchanged
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let tokens: TokenResponse = exchanged.json().await?;
        let first_refresh = tokens.refresh_token.clone().context("no refresh token")?;
        arrow(
            AS,
            CLIENT,
            &format!(
                "access token {} ({} s), refresh token RT1 {}",
                short(tokens.access_token.expose_secret()),
                app.access_token_ttl,
                short(first_refresh.expose_secret())
            ),
        );
        Ok(Login {
            tokens,
            date,
            first_refresh,
        })
    }

    fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.base)
    }
}

/// Narrates each successful refresh as it happens, with the 401 that started a reactive one; a
/// refused one is told by the last act. The refresh tokens are numbered as they rotate: RT1
/// came with the login.
fn narrate_refreshes() -> Arc<dyn Fn(&RefreshEvent) + Send + Sync> {
    let refresh_tokens_seen = AtomicU32::new(1);
    Arc::new(move |event: &RefreshEvent| {
        if event.outcome != RefreshOutcome::Refreshed {
            return;
        }
        let why = match event.trigger {
            RefreshTrigger::Proactive => "before expiry",
            RefreshTrigger::Rejected => {
                arrow(RS, CLIENT, "401 INVALID_SESSION_ID");
                "on the 401"
            }
        };
        arrow(
            CLIENT,
            AS,
            &format!(
                "POST /services/oauth2/token  grant_type=refresh_token (the token manager, {why})"
            ),
        );
        if event.rotated {
            let number = refresh_tokens_seen.fetch_add(1, Ordering::Relaxed) + 1;
            arrow(
                AS,
                CLIENT,
                &format!("a new access token and a new refresh token RT{number}: rotated"),
            );
        } else {
            arrow(AS, CLIENT, "a new access token");
        }
    })
}

impl Demo {
    /// The login's tokens handed to the app's token manager, saved encrypted in a profile of
    /// the temporary directory.
    async fn keep_tokens_in_the_token_manager(
        stage: Stage,
        app: DemoApp,
        login: Login,
    ) -> anyhow::Result<Self> {
        let profiles = stage.dir.path().join("client");
        let store = crate::client::open_store(
            &crate::client::ClientPaths {
                profiles: profiles.join("profiles"),
                keys: profiles.join("keys"),
            },
            "demo",
        )?;
        let manager = Arc::new(TokenManager::new(
            store.clone(),
            ManagerConfig {
                http: stage.http.clone(),
                clock: Arc::new(SystemClock),
                session_timeout: None,
                on_event: Some(narrate_refreshes()),
                dpop: false,
            },
        ));
        let endpoints = tessera_client::discover(&stage.http, &stage.base)
            .await
            .map_err(crate::client::explain)?;
        let now_ms = tessera_client::Clock::now_ms(&SystemClock);
        let credential = Credential::from_token_response(
            endpoints,
            app.client_id.clone(),
            Some(app.secret.clone()),
            &login.tokens,
            login.date,
            now_ms,
            None,
        );
        manager
            .login_with(credential)
            .await
            .map_err(crate::client::explain)?;
        note(&format!("tokens saved: {}", store.protection()));
        let api = manager.http_client();
        Ok(Self {
            stage,
            app,
            first_refresh: login.first_refresh,
            manager,
            api,
        })
    }

    /// Act 2: an API call creates a note; its path is what the later acts read.
    async fn call_the_api(&self) -> anyhow::Result<String> {
        heading("2. Call the API");
        let created = self
            .api
            .send(
                reqwest::Method::POST,
                "/services/data/v65.0/sobjects/Note",
                json_headers(),
                Some(br#"{"Title":"Hello from the demo"}"#.to_vec()),
            )
            .await
            .map_err(crate::client::explain)?;
        arrow(
            CLIENT,
            RS,
            "POST /services/data/v65.0/sobjects/Note  Authorization: Bearer …",
        );
        let status = created.status();
        let note_id = created
            .json::<serde_json::Value>()
            .await?
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        arrow(RS, CLIENT, &format!("{status}  id {note_id}"));
        Ok(format!("/services/data/v65.0/sobjects/Note/{note_id}"))
    }

    /// Act 3: the access token expires, and the token manager refreshes it (with rotation)
    /// before the next call.
    async fn refresh_before_expiry(&self, path: &str) -> anyhow::Result<()> {
        let ttl = self.app.access_token_ttl;
        heading(&format!("3. Wait {} s: the access token expires", ttl + 1));
        tokio::time::sleep(Duration::from_secs(ttl + 1)).await;
        let read = get(&self.api, path).await?;
        arrow(CLIENT, RS, &format!("GET {path}"));
        arrow(
            RS,
            CLIENT,
            &format!("{} — the app never saw a token or an error", read.status()),
        );
        Ok(())
    }

    /// Act 4: the access token is revoked early, which the token manager cannot know: the call
    /// gets a 401, the manager refreshes and replays it.
    async fn refresh_on_a_401_after_an_early_revocation(&self, path: &str) -> anyhow::Result<()> {
        heading("4. The access token is revoked early (a logout elsewhere, an administrator)");
        let current = self
            .manager
            .access_token()
            .await
            .map_err(crate::client::explain)?;
        let revoked = self
            .stage
            .http
            .post(format!("{}/services/oauth2/revoke", self.stage.base))
            .form(&[("token", current.expose_secret())])
            .send()
            .await?;
        arrow(
            ADMIN,
            AS,
            &format!(
                "POST /services/oauth2/revoke  token={}  → {}",
                short(current.expose_secret()),
                revoked.status()
            ),
        );
        note("the token manager cannot know: by its clock the token is still good");
        arrow(
            CLIENT,
            RS,
            &format!("GET {path}  Bearer {}", short(current.expose_secret())),
        );
        let read = get(&self.api, path).await?;
        arrow(
            CLIENT,
            RS,
            &format!("GET {path}  replayed once, with the new token"),
        );
        arrow(
            RS,
            CLIENT,
            &format!(
                "{} — the app saw neither the 401 nor the refresh",
                read.status()
            ),
        );
        Ok(())
    }

    /// Act 5: a thief replays RT1, rotated out long ago: reuse, and the family is revoked.
    async fn replay_the_stolen_first_refresh_token(&self) -> anyhow::Result<()> {
        heading("5. An attacker replays the stolen first refresh token RT1");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let replay = self
            .stage
            .http
            .post(self.stage.token_url())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", self.first_refresh.expose_secret()),
                ("client_id", &self.app.client_id),
                ("client_secret", self.app.secret.expose_secret()),
            ])
            .send()
            .await?;
        arrow(
            THIEF,
            AS,
            "POST /services/oauth2/token  grant_type=refresh_token RT1",
        );
        let replay_status = replay.status();
        let replay_body: serde_json::Value = replay.json().await?;
        arrow(
            AS,
            THIEF,
            &format!(
                "{replay_status} {} \"{}\"",
                replay_body
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(""),
                replay_body
                    .get("error_description")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
            ),
        );
        note("RT1 was rotated out: reuse detected, the whole family is revoked — every refresh and access token of it");
        Ok(())
    }

    /// Act 6: the app's next call; the manager tries, and reports that the user must log in
    /// again.
    async fn end_with_log_in_again(&self, path: &str) -> anyhow::Result<()> {
        heading("6. The app calls the API again");
        arrow(CLIENT, RS, &format!("GET {path}"));
        match self.api.get(path).await {
            Err(ClientError::ReauthRequired { reason }) => {
                arrow(
                    RS,
                    CLIENT,
                    "401 INVALID_SESSION_ID (the access token died with its family)",
                );
                arrow(CLIENT, AS, "refresh with the current refresh token");
                arrow(
                    AS,
                    CLIENT,
                    "400 invalid_grant \"expired access/refresh token\"",
                );
                note(&format!(
                    "the token manager returns ReauthRequired {{ reason: {reason} }}"
                ));
                note("a real app now says: \"Your session has ended. Please log in again.\"");
                Ok(())
            }
            Ok(response) => bail!("the revoked family still answered {}", response.status()),
            Err(other) => bail!("expected ReauthRequired, got {other}"),
        }
    }
}

/// `GET path` through the token manager, its failure as a person should read it.
async fn get(api: &AuthorizedClient, path: &str) -> anyhow::Result<reqwest::Response> {
    api.get(path).await.map_err(crate::client::explain)
}

fn json_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_reads_the_named_field_unescaped_and_names_what_is_missing() {
        let page =
            r#"<input name="csrf_token" value="a&amp;b&quot;é"><input name="request" value="r1">"#;
        assert_eq!(hidden(page, "csrf_token").unwrap(), "a&b\"é");
        assert_eq!(hidden(page, "request").unwrap(), "r1");
        let missing = hidden(page, "other").unwrap_err().to_string();
        assert_eq!(missing, "no other field on the page");
        let unterminated = hidden(r#"<input name="request" value="é"#, "request");
        assert_eq!(
            unterminated.unwrap_err().to_string(),
            "unterminated attribute"
        );
    }
}
