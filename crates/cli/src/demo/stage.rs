//! The demo's world: a real server on a free port over SQLite in a temporary directory, the apps
//! registered on it, and logins driven through its pages as a browser would.

use std::sync::Arc;

use anyhow::Context;
use tessera_client::{Credential, EventSink, ManagerConfig, SystemClock, TokenManager};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::{SystemClock as ServerClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ClientSecret, ExposeSecret, Password, RefreshToken, TokenResponse};

use super::narration::{arrow, heading, note, short, AS, CLIENT, USER};

pub(super) const DEMO_USER: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "demo-password-1";
pub(super) const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// The server and the HTTP client the app, the administrator and the attacker post with
/// (redirects not followed).
pub(super) struct Stage {
    /// Holds the database and the apps' token stores; removed when the demo ends.
    pub(super) dir: tempfile::TempDir,
    pub(super) base: String,
    authority: Authority,
    pub(super) http: reqwest::Client,
}

/// An app as registered: a confidential client.
pub(super) struct DemoApp {
    pub(super) client_id: String,
    pub(super) secret: ClientSecret,
    pub(super) access_token_ttl: u64,
}

/// What a login's token exchange answered.
pub(super) struct Login {
    pub(super) tokens: TokenResponse,
    /// The response's `Date`, which the token manager dates the tokens by.
    pub(super) date: Option<std::time::SystemTime>,
}

/// How much of a login to tell: every request of the Web Server flow (the first act), or one
/// line (the later acts, which are about something else).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Telling {
    EveryStep,
    OneLine,
}

impl Login {
    /// The refresh token the login came with; an error if the scope did not earn one.
    pub(super) fn refresh_token(&self) -> anyhow::Result<RefreshToken> {
        self.tokens
            .refresh_token
            .clone()
            .context("the login came without a refresh token")
    }
}

impl Stage {
    pub(super) async fn start() -> anyhow::Result<Self> {
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
        authority
            .operator()
            .create_user(DEMO_USER, Password::new(DEMO_PASSWORD), None)
            .await?;
        Ok(Self {
            dir,
            base,
            authority,
            http,
        })
    }

    /// Registers a confidential app that may redirect to [`REDIRECT_URI`], with `settings`
    /// (its name among them).
    pub(super) async fn register(&self, settings: ClientSettings) -> anyhow::Result<DemoApp> {
        let access_token_ttl = settings
            .access_token_ttl_secs
            .context("a demo app sets its access-token lifetime")?;
        let (client, secret) = self
            .authority
            .operator()
            .create_client(
                false,
                &ClientSettings {
                    redirect_uris: Some(vec![REDIRECT_URI.into()]),
                    ..settings
                },
            )
            .await?;
        Ok(DemoApp {
            client_id: client.client_id,
            secret: secret.context("a confidential client has a secret")?,
            access_token_ttl,
        })
    }

    /// The demo user logs in to `app` through the Web Server flow with PKCE, driven as a
    /// browser would (login page, consent page), asking for `scope`; the code is then exchanged
    /// for tokens.
    pub(super) async fn log_in(
        &self,
        app: &DemoApp,
        scope: &str,
        telling: Telling,
    ) -> anyhow::Result<Login> {
        let every_step = |from: &str, to: &str, what: &str| {
            if telling == Telling::EveryStep {
                arrow(from, to, what);
            }
        };
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
            "{base}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=demo&code_challenge={challenge}",
            app.client_id,
            url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
        );
        every_step(
            CLIENT,
            USER,
            "opens the browser at /services/oauth2/authorize (code_challenge, S256)",
        );
        let page = browser.get(&authorize).send().await?.text().await?;
        every_step(AS, USER, "login page");
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
        every_step(USER, AS, "demo@example.com / ••••••••");
        let next = location(&after_login)?;
        // A user who has already allowed this app and scope is not asked again: the login
        // redirects straight back to the app.
        let callback = if next.starts_with(REDIRECT_URI) {
            next
        } else {
            self.consent(&browser, &next, &every_step).await?
        };
        let code = url::Url::parse(&callback)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("no code")?;
        every_step(AS, CLIENT, "302 redirect_uri?code=…&iss=…&state=demo");
        if telling == Telling::OneLine {
            arrow(
                USER,
                AS,
                &format!("logs in and allows the app (Web Server flow with PKCE, scope={scope})"),
            );
        }
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
        Ok(Login { tokens, date })
    }

    /// The consent page at `path`, allowed; the redirect back to the app.
    async fn consent(
        &self,
        browser: &reqwest::Client,
        path: &str,
        every_step: &impl Fn(&str, &str, &str),
    ) -> anyhow::Result<String> {
        let consent = browser
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .text()
            .await?;
        every_step(
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
            .post(format!("{}/services/oauth2/authorize/consent", self.base))
            .form(&form)
            .send()
            .await?;
        every_step(USER, AS, "Allow");
        location(&allowed)
    }

    pub(super) fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.base)
    }

    /// `grant_type=refresh_token` with `refresh_token`, as `app` would post it: the status and
    /// the JSON body, whatever they are.
    pub(super) async fn post_refresh(
        &self,
        app: &DemoApp,
        refresh_token: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = self
            .http
            .post(self.token_url())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &app.client_id),
                ("client_secret", app.secret.expose_secret()),
            ])
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    /// A token manager for `app` holding `login`'s tokens, saved encrypted in the profile
    /// `profile` under the temporary directory.
    pub(super) async fn token_manager(
        &self,
        app: &DemoApp,
        login: &Login,
        profile: &str,
        on_event: Option<EventSink>,
    ) -> anyhow::Result<Arc<TokenManager>> {
        let store = crate::client::open_store(&self.client_paths(), profile)?;
        let manager = Arc::new(TokenManager::new(
            store,
            ManagerConfig {
                http: self.http.clone(),
                clock: Arc::new(SystemClock),
                session_timeout: None,
                on_event,
                dpop: false,
            },
        ));
        let endpoints = tessera_client::discover(&self.http, &self.base)
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
        Ok(manager)
    }

    /// Where the demo's token managers keep their profiles and keys.
    pub(super) fn client_paths(&self) -> crate::client::ClientPaths {
        let client = self.dir.path().join("client");
        crate::client::ClientPaths {
            profiles: client.join("profiles"),
            keys: client.join("keys"),
        }
    }
}

/// The token response's main fields as `key value` rows, tokens shortened, a missing refresh
/// token shown as missing.
pub(super) fn response_rows(tokens: &TokenResponse) -> Vec<(String, String)> {
    vec![
        (
            "access_token".into(),
            short(tokens.access_token.expose_secret()),
        ),
        (
            "refresh_token".into(),
            tokens
                .refresh_token
                .as_ref()
                .map_or_else(|| "(none)".into(), |t| short(t.expose_secret())),
        ),
        ("scope".into(), tokens.scope.clone()),
        ("token_type".into(), format!("{:?}", tokens.token_type)),
        (
            "expires_in".into(),
            tokens
                .expires_in
                .map_or_else(|| "(not sent)".into(), |s| format!("{s} s")),
        ),
    ]
}

/// The `error` and `error_description` of an OAuth error body, for one line of narration.
pub(super) fn oauth_error(body: &serde_json::Value) -> String {
    let field = |name: &str| text_field(body, name).unwrap_or("");
    format!("{} \"{}\"", field("error"), field("error_description"))
}

/// A string member of a JSON response.
pub(super) fn text_field<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(serde_json::Value::as_str)
}

/// Notes where a token manager keeps its tokens.
pub(super) fn note_protection(manager: &TokenManager) {
    note(&format!("tokens saved: {}", manager.store().protection()));
}

/// The value of a hidden input in one of the server's pages.
pub(super) fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
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
