//! An in-process Tessera for HTTP tests: a temp-file SQLite store (or, for the scenarios that
//! [`on_sqlite_and_postgres!`] runs twice, a throwaway PostgreSQL database), a manual clock, and
//! helpers that drive the browser pages the way a person would.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::operations::playground::PlaygroundClients;
use tessera_core::store::failing::FailingStore;
pub use tessera_core::store::prelude::*;
use tessera_core::time::{ManualClock, SystemRandom, Timestamp};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ExposeSecret, Password};
use tessera_server::{app, AppState, Playground, TrustedProxies};
use tessera_store_postgres::PostgresStore;
use tessera_store_sqlite::SqliteStore;
use tessera_testkit::postgres::TestDatabase;
pub use tessera_testkit::{basic, form, hidden_value, pkce, url_param};
use tower::ServiceExt;

pub const ISSUER: &str = "http://login.test";
pub const REDIRECT: &str = "http://127.0.0.1:8976/callback";
pub const USERNAME: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse battery";
/// The issuer of [`Harness::learning`].
pub const LOOPBACK_ISSUER: &str = "http://127.0.0.1:8080";

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location; status {} body {}", self.status, self.text()))
            .to_owned()
    }

    /// Asserts an OAuth error: status, `error`, and no caching.
    pub fn assert_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(self.json()["error"], error, "body: {}", self.text());
        assert!(self.json()["error_description"].is_string());
        assert_eq!(self.header("cache-control"), Some("no-store"));
    }
}

pub struct Client {
    pub id: String,
    pub secret: Option<String>,
}

pub struct Harness {
    pub app: Router,
    pub authority: Authority,
    /// The store under the authority, for looking at rows and for failing on demand.
    pub store: Arc<FailingStore>,
    pub clock: Arc<ManualClock>,
    /// The SQLite file; `None` on PostgreSQL.
    pub db_path: Option<std::path::PathBuf>,
    /// Declared last, so dropped last: the database outlives the authority over it.
    _backing: Backing,
}

/// A new, empty store for one harness, with what must outlive it.
pub struct TestStore {
    store: Arc<dyn Store>,
    db_path: Option<std::path::PathBuf>,
    backing: Backing,
}

/// What a store's data lives in, removed when this is dropped: the SQLite file's directory,
/// or the PostgreSQL test database (dropped with `WITH (FORCE)`, so the store's connections
/// still open do not keep it).
enum Backing {
    Directory(tempfile::TempDir),
    Database(TestDatabase),
}

/// How many connections a harness's PostgreSQL store opens: enough for a request, the
/// background flushes and the change listener, few enough for many tests at once.
const POSTGRES_POOL_SIZE: usize = 4;

impl TestStore {
    /// A SQLite store in a file of its own.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("tessera.db");
        let sqlite = SqliteStore::open(db_path.to_str().unwrap()).unwrap();
        Self {
            store: Arc::new(sqlite),
            db_path: Some(db_path),
            backing: Backing::Directory(dir),
        }
    }

    /// A PostgreSQL store on a database of its own (`tessera_http_<random hex>`), or `None`
    /// (said loudly) when no server answers and `TESSERA_TEST_POSTGRES_URL` is unset; set, an
    /// unreachable server fails the test.
    pub async fn postgres() -> Option<Self> {
        let database =
            TestDatabase::create_or_skip("tessera_http", "The HTTP scenarios run on SQLite only.")
                .await?;
        let store = PostgresStore::connect(&database.url, POSTGRES_POOL_SIZE)
            .await
            .unwrap();
        Some(Self {
            store: Arc::new(store),
            db_path: None,
            backing: Backing::Database(database),
        })
    }
}

/// Makes each scenario — an `async fn(TestStore)` in scope — a module of two tests,
/// `on_sqlite` and `on_postgres`, so one scenario is written once and runs on both stores.
/// The PostgreSQL test passes without running when no server answers, as the other
/// PostgreSQL tests do, unless `TESSERA_TEST_POSTGRES_URL` is set.
macro_rules! on_sqlite_and_postgres {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn on_sqlite() {
                    super::$scenario($crate::support::TestStore::sqlite()).await;
                }

                #[tokio::test]
                async fn on_postgres() {
                    if let Some(store) = $crate::support::TestStore::postgres().await {
                        super::$scenario(store).await;
                    }
                }
            }
        )+
    };
}
pub(crate) use on_sqlite_and_postgres;

/// A browser: a cookie jar. A clone is a copy of its cookies, as a thief who captured them
/// holds.
#[derive(Default, Clone)]
pub struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    /// Sets a cookie, as a page of another site (or a thief) could.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// A cookie's value, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Takes the cookies a reply sets.
    pub fn absorb_from(&mut self, reply: &Reply) {
        self.absorb(&reply.headers);
    }

    fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            if let Some((k, v)) = text.split(';').next().and_then(|p| p.split_once('=')) {
                self.cookies
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_expires_in(true).await
    }

    pub async fn with_expires_in(emit_expires_in: bool) -> Self {
        Self::with_config(
            |c| c.emit_expires_in = emit_expires_in,
            TrustedProxies::default(),
        )
        .await
    }

    /// A harness whose authority's configuration `adjust` changes, behind `proxies`.
    pub async fn with_config(
        adjust: impl FnOnce(&mut AuthorityConfig),
        proxies: TrustedProxies,
    ) -> Self {
        Self::on_store_with_config(TestStore::sqlite(), adjust, proxies).await
    }

    /// A harness over `store`, configured as [`Harness::new`]'s.
    pub async fn on(store: TestStore) -> Self {
        Self::on_store_with_config(store, |_| {}, TrustedProxies::default()).await
    }

    /// A harness over `store`, its configuration changed by `adjust`, behind `proxies`.
    ///
    /// The manual clock governs on PostgreSQL too: the store compares and stamps times it is
    /// given, and reads the server's clock only when asked (`database_time`), which the
    /// `serve` command does to follow it and this harness does not.
    pub async fn on_store_with_config(
        store: TestStore,
        adjust: impl FnOnce(&mut AuthorityConfig),
        proxies: TrustedProxies,
    ) -> Self {
        let TestStore {
            store,
            db_path,
            backing,
        } = store;
        let store = Arc::new(FailingStore::new(store));
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let mut config = AuthorityConfig::new(ISSUER, ServerKey::generate(&SystemRandom));
        adjust(&mut config);
        let authority =
            Authority::new(store.clone(), clock.clone(), Arc::new(SystemRandom), config);
        authority
            .operator()
            .create_user(USERNAME, Password::new(PASSWORD), Some(USERNAME.into()))
            .await
            .unwrap();
        Self {
            app: app(AppState::new(authority.clone()).with_trusted_proxies(proxies)),
            authority,
            store,
            clock,
            db_path,
            _backing: backing,
        }
    }

    pub async fn client(&self, public: bool, settings: ClientSettings) -> Client {
        let settings = ClientSettings {
            name: settings.name.or(Some("Test app".into())),
            redirect_uris: settings.redirect_uris.or(Some(vec![REDIRECT.into()])),
            ..settings
        };
        let (client, secret) = self
            .authority
            .operator()
            .create_client(public, &settings)
            .await
            .unwrap();
        Client {
            id: client.client_id,
            secret: secret.map(|s| s.expose_secret().to_owned()),
        }
    }

    /// A confidential client that rotates refresh tokens, with this retry window.
    pub async fn rotating(&self, window_secs: u64) -> Client {
        self.client(
            false,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                refresh_retry_window_secs: Some(window_secs),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn revoke(&self, token: &str) -> Reply {
        self.post_form("/services/oauth2/revoke", &form(&[("token", token)]), None)
            .await
    }

    pub async fn introspect(&self, client: &Client, token: &str) -> Reply {
        let mut pairs = vec![("token", token), ("client_id", client.id.as_str())];
        if let Some(secret) = &client.secret {
            pairs.push(("client_secret", secret));
        }
        self.post_form("/services/oauth2/introspect", &form(&pairs), None)
            .await
    }

    /// Whether an access token still opens the REST API.
    pub async fn api_works(&self, access_token: &str) -> bool {
        let reply = self
            .api(Method::GET, "/services/data/v65.0/", access_token, None)
            .await;
        match reply.status {
            StatusCode::OK => true,
            StatusCode::UNAUTHORIZED => false,
            other => panic!("unexpected API status {other}: {}", reply.text()),
        }
    }

    /// Audit events of one kind, by name.
    pub async fn events_named(&self, kind: &str) -> Vec<tessera_core::model::StoredEvent> {
        let filter = tessera_core::store::EventFilter {
            limit: 100_000,
            ..Default::default()
        };
        let all = self.store.events(&filter).await.unwrap();
        all.into_iter()
            .filter(|e| e.event.kind.name() == kind)
            .collect()
    }

    /// The audit events of `kind`, once there are at least `count` (failures are recorded off
    /// the request path).
    pub async fn events_written(
        &self,
        kind: &str,
        count: usize,
    ) -> Vec<tessera_core::model::StoredEvent> {
        for _ in 0..500 {
            let events = self.events_named(kind).await;
            if events.len() >= count {
                return events;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("fewer than {count} {kind} events");
    }

    pub async fn confidential(&self) -> Client {
        self.client(false, ClientSettings::default()).await
    }

    /// A harness with the `/learn` playground on, its two clients made, on a loopback issuer
    /// ([`LOOPBACK_ISSUER`]): the playground's redirect URI is on the issuer, and plain http
    /// is allowed only to loopback.
    pub async fn learning() -> Self {
        Self::learning_with_clients().await.0
    }

    /// [`Harness::learning`], and the playground's clients with their secrets.
    pub async fn learning_with_clients() -> (Self, PlaygroundClients) {
        let mut harness = Self::with_config(
            |c| c.issuer = LOOPBACK_ISSUER.to_owned(),
            TrustedProxies::default(),
        )
        .await;
        let clients = harness
            .authority
            .operator()
            .ensure_playground_clients(&format!("{LOOPBACK_ISSUER}/learn/callback"))
            .await
            .unwrap();
        harness.app =
            app(AppState::new(harness.authority.clone())
                .with_learn(Playground::new(clients.clone())));
        (harness, clients)
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, browser: Option<&mut Browser>) -> Reply {
        let mut builder = Request::builder().method(Method::GET).uri(uri);
        if let Some(cookie) = browser.as_ref().and_then(|b| b.cookie_header()) {
            builder = builder.header(header::COOKIE, cookie);
        }
        let reply = self.send(builder.body(Body::empty()).unwrap()).await;
        if let Some(b) = browser {
            b.absorb(&reply.headers);
        }
        reply
    }

    pub async fn post_form(&self, uri: &str, body: &str, browser: Option<&mut Browser>) -> Reply {
        self.post_form_from(None, &[], uri, body, browser).await
    }

    /// A form POST from the TCP peer `peer` (an IP address; none: no socket), with `headers`.
    pub async fn post_form_from(
        &self,
        peer: Option<&str>,
        headers: &[(&str, &str)],
        uri: &str,
        body: &str,
        browser: Option<&mut Browser>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(peer) = peer {
            let address: std::net::IpAddr = peer.parse().unwrap();
            builder = builder.extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                address, 40000,
            )));
        }
        if let Some(cookie) = browser.as_ref().and_then(|b| b.cookie_header()) {
            builder = builder.header(header::COOKIE, cookie);
        }
        let reply = self
            .send(builder.body(Body::from(body.to_owned())).unwrap())
            .await;
        if let Some(b) = browser {
            b.absorb(&reply.headers);
        }
        reply
    }

    pub async fn token(&self, pairs: &[(&str, &str)]) -> Reply {
        self.post_form("/services/oauth2/token", &form(pairs), None)
            .await
    }

    /// A token request from the TCP peer `peer`, with extra `headers`.
    pub async fn token_from(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        pairs: &[(&str, &str)],
    ) -> Reply {
        self.post_form_from(
            Some(peer),
            headers,
            "/services/oauth2/token",
            &form(pairs),
            None,
        )
        .await
    }

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        token: &str,
        json_body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match json_body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub fn authorize_url(&self, client: &Client, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        pairs.extend_from_slice(extra);
        format!("/services/oauth2/authorize?{}", form(&pairs))
    }

    /// Logs in on the login page the authorization URL shows; returns the reply to the login POST.
    pub async fn submit_login(
        &self,
        browser: &mut Browser,
        login_page: &Reply,
        password: &str,
    ) -> Reply {
        assert_eq!(login_page.status, StatusCode::OK, "{}", login_page.text());
        let html = login_page.text();
        assert!(
            html.contains("name=\"username\"") && html.contains("name=\"password\""),
            "not a login page: {html}"
        );
        let body = form(&[
            ("request", &hidden_value(&html, "request").unwrap()),
            ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
            ("username", USERNAME),
            ("password", password),
        ]);
        self.post_form("/services/oauth2/authorize/login", &body, Some(browser))
            .await
    }

    /// Answers the consent page with `decision`; returns the redirect to the client.
    pub async fn submit_consent(
        &self,
        browser: &mut Browser,
        consent_page: &Reply,
        decision: &str,
    ) -> Reply {
        let html = consent_page.text();
        assert!(
            html.contains("name=\"decision\""),
            "not a consent page: {html}"
        );
        let body = form(&[
            ("request", &hidden_value(&html, "request").unwrap()),
            ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
            ("decision", decision),
        ]);
        self.post_form("/services/oauth2/authorize/consent", &body, Some(browser))
            .await
    }

    /// The whole browser part of the Web Server flow; returns the final redirect's Location.
    pub async fn authorize(&self, client: &Client, extra: &[(&str, &str)]) -> String {
        let mut browser = Browser::default();
        self.authorize_in(&mut browser, client, extra).await
    }

    pub async fn authorize_in(
        &self,
        browser: &mut Browser,
        client: &Client,
        extra: &[(&str, &str)],
    ) -> String {
        let url = self.authorize_url(client, extra);
        self.allow_in(browser, &url).await
    }

    /// The browser at the authorization URL `url`: logs in if asked, allows if asked; returns
    /// where it is sent back to.
    pub async fn allow_in(&self, browser: &mut Browser, url: &str) -> String {
        let mut reply = self.get(url, Some(browser)).await;
        if reply.status == StatusCode::OK && reply.text().contains("name=\"password\"") {
            reply = self.submit_login(browser, &reply, PASSWORD).await;
        }
        if reply.status == StatusCode::SEE_OTHER {
            let consent = self.get(&reply.location(), Some(browser)).await;
            reply = self.submit_consent(browser, &consent, "allow").await;
        }
        assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
        reply.location()
    }

    /// Where the browser is sent back to after a new user logs in at `authorize_url` and
    /// answers the consent page with `decision` (`allow` or `deny`).
    pub async fn after_login_and_consent(&self, authorize_url: &str, decision: &str) -> String {
        let mut browser = Browser::default();
        let page = self.get(authorize_url, Some(&mut browser)).await;
        let after_login = self.submit_login(&mut browser, &page, PASSWORD).await;
        let consent = self.get(&after_login.location(), Some(&mut browser)).await;
        self.submit_consent(&mut browser, &consent, decision)
            .await
            .location()
    }

    /// Web Server flow through the code exchange; returns the token response. With `openid`,
    /// the signing keys a running server's housekeeping would have made are made first.
    pub async fn login(&self, client: &Client, scope: &str) -> Value {
        if scope.split(' ').any(|s| s == "openid") {
            self.authority.rotate_signing_keys_when_due().await.unwrap();
        }
        let location = self
            .authorize(client, &[("scope", scope), ("state", "s")])
            .await;
        let code = url_param(&location, "code").expect("code in redirect");
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(secret) = &client.secret {
            pairs.push(("client_secret", secret));
        }
        let reply = self.token(&pairs).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// The code of a completed authorization.
    pub async fn code(&self, client: &Client, extra: &[(&str, &str)]) -> String {
        url_param(&self.authorize(client, extra).await, "code").expect("code in redirect")
    }

    /// `grant_type=authorization_code` with body credentials and the registered redirect URI.
    pub async fn exchange(&self, client: &Client, code: &str, verifier: Option<&str>) -> Reply {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(secret) = &client.secret {
            pairs.push(("client_secret", secret));
        }
        if let Some(v) = verifier {
            pairs.push(("code_verifier", v));
        }
        self.token(&pairs).await
    }

    pub async fn refresh(&self, client: &Client, refresh_token: &str) -> Reply {
        self.refresh_via(None, client, refresh_token).await
    }

    /// A refresh from the TCP peer `peer`.
    pub async fn refresh_from(&self, peer: &str, client: &Client, refresh_token: &str) -> Reply {
        self.refresh_via(Some(peer), client, refresh_token).await
    }

    async fn refresh_via(&self, peer: Option<&str>, client: &Client, refresh_token: &str) -> Reply {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.id.as_str()),
        ];
        if let Some(secret) = &client.secret {
            pairs.push(("client_secret", secret));
        }
        self.post_form_from(peer, &[], "/services/oauth2/token", &form(&pairs), None)
            .await
    }
}
