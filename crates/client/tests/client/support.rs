//! A real Tessera on 127.0.0.1:0 (SQLite in a temp dir), and helpers to build token managers
//! against it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tessera_client::{
    Clock, Credential, Endpoints, FileTokenStore, KeySource, ManagerConfig, RefreshEvent,
    TokenManager, TokenStore,
};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::operations::signing_keys::KeySchedule;
use tessera_core::store::EventFilter;
use tessera_core::time::SystemRandom;
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ClientSecret, ExposeSecret, Password, TokenResponse};
use tessera_server::{app, AppState};
use tessera_store_sqlite::SqliteStore;
pub use tessera_testkit::free_port;

pub const USERNAME: &str = "alice@example.com";
pub const SCOPE: &str = "api id refresh_token";

pub struct Server {
    pub authority: Authority,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct TestClient {
    pub id: String,
    pub secret: Option<ClientSecret>,
}

impl Server {
    /// A server on the wall clock.
    pub async fn start() -> Self {
        Self::start_with_clock(Arc::new(tessera_core::time::SystemClock)).await
    }

    pub async fn start_with_clock(clock: Arc<dyn tessera_core::time::Clock>) -> Self {
        Self::start_configured(clock, |config| config).await
    }

    /// A server that, like Salesforce, sends no `expires_in`.
    pub async fn start_without_expires_in() -> Self {
        Self::start_configured(Arc::new(tessera_core::time::SystemClock), |config| {
            AuthorityConfig {
                emit_expires_in: false,
                ..config
            }
        })
        .await
    }

    /// A server on `clock` whose JWKS may be cached `jwks_cache_lifetime_secs`: a new signing
    /// key signs that long after it is published, so a test can reach it by moving the clock
    /// less than the client's leeway for the issuer's time.
    pub async fn start_with_key_schedule(
        clock: Arc<dyn tessera_core::time::Clock>,
        jwks_cache_lifetime_secs: u64,
    ) -> Self {
        Self::start_configured(clock, |config| AuthorityConfig {
            key_schedule: KeySchedule {
                jwks_cache_lifetime_secs,
                ..KeySchedule::default()
            },
            ..config
        })
        .await
    }

    async fn start_configured(
        clock: Arc<dyn tessera_core::time::Clock>,
        configure: impl FnOnce(AuthorityConfig) -> AuthorityConfig,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("tessera.db").to_str().unwrap()).unwrap();
        let config = configure(AuthorityConfig::new(
            base.clone(),
            ServerKey::generate(&SystemRandom),
        ));
        let authority = Authority::new(Arc::new(store), clock, Arc::new(SystemRandom), config);
        authority
            .operator()
            .create_user(USERNAME, Password::new("correct horse battery"), None)
            .await
            .unwrap();
        let router = app(AppState::new(authority.clone()));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            authority,
            base,
            http: tessera_client::default_http_client().unwrap(),
            _dir: dir,
            task,
        }
    }

    /// A confidential client with these settings.
    pub async fn client(&self, settings: ClientSettings) -> TestClient {
        self.client_of_kind(false, settings).await
    }

    /// A public client (no secret) whose access tokens live `ttl_secs`.
    pub async fn public(&self, ttl_secs: u64) -> TestClient {
        let settings = ClientSettings {
            access_token_ttl_secs: Some(ttl_secs),
            ..Default::default()
        };
        self.client_of_kind(true, settings).await
    }

    async fn client_of_kind(&self, public: bool, settings: ClientSettings) -> TestClient {
        let settings = ClientSettings {
            name: Some("client test".into()),
            redirect_uris: Some(vec!["http://127.0.0.1:8976/callback".into()]),
            ..settings
        };
        let (client, secret) = self
            .authority
            .operator()
            .create_client(public, &settings)
            .await
            .unwrap();
        TestClient {
            id: client.client_id,
            secret,
        }
    }

    pub async fn rotating(&self, window_secs: u64, ttl_secs: u64) -> TestClient {
        self.client(ClientSettings {
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(window_secs),
            access_token_ttl_secs: Some(ttl_secs),
            ..Default::default()
        })
        .await
    }

    pub async fn plain(&self, ttl_secs: u64) -> TestClient {
        self.client(ClientSettings {
            access_token_ttl_secs: Some(ttl_secs),
            ..Default::default()
        })
        .await
    }

    /// A new grant for the test user, as a code exchange would give.
    pub async fn mint(&self, client: &TestClient) -> TokenResponse {
        self.mint_scoped(client, SCOPE).await
    }

    /// A new grant of `scope` for the test user.
    pub async fn mint_scoped(&self, client: &TestClient, scope: &str) -> TokenResponse {
        self.authority
            .operator()
            .mint_for(&client.id, USERNAME, scope)
            .await
            .unwrap()
    }

    pub async fn endpoints(&self) -> Endpoints {
        tessera_client::discover(&self.http, &self.base)
            .await
            .unwrap()
    }

    /// A credential for a new grant, as `tessera login` would store it.
    pub async fn credential(&self, client: &TestClient, local_now_ms: i64) -> Credential {
        self.credential_scoped(client, SCOPE, local_now_ms).await
    }

    /// [`Self::credential`] for a grant of `scope`.
    pub async fn credential_scoped(
        &self,
        client: &TestClient,
        scope: &str,
        local_now_ms: i64,
    ) -> Credential {
        let response = self.mint_scoped(client, scope).await;
        Credential::from_token_response(
            self.endpoints().await,
            client.id.clone(),
            client.secret.clone(),
            &response,
            None,
            local_now_ms,
            None,
        )
    }

    /// Audit events of one kind.
    pub async fn events(&self, kind: &str) -> usize {
        let filter = EventFilter {
            limit: 100_000,
            ..Default::default()
        };
        let all = self.authority.operator().events(&filter).await.unwrap();
        all.iter().filter(|e| e.event.kind.name() == kind).count()
    }

    /// Refreshes at the server, whatever the kind of client.
    pub async fn refreshes(&self) -> usize {
        self.events("rotated").await + self.events("refreshed").await
    }

    /// `POST /services/oauth2/revoke` with `token=`.
    pub async fn revoke(&self, token: &str) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/services/oauth2/revoke", self.base))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Whether an access token opens the REST API.
    pub async fn api_works(&self, token: &str) -> bool {
        let status = self
            .http
            .get(format!("{}/services/data/v65.0/", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        match status.as_u16() {
            200 => true,
            401 => false,
            other => panic!("unexpected API status {other}"),
        }
    }
}

/// A credential stored for a new grant, and a manager over it.
pub struct Session {
    pub manager: Arc<TokenManager>,
    pub events: Recorder,
    /// As stored at login.
    pub credential: Credential,
    pub store: Arc<FileTokenStore>,
    /// Dropping it deletes the files.
    pub dirs: Dirs,
}

impl Server {
    /// A new grant for `client`, stored by a manager on the wall clock.
    pub async fn logged_in(&self, client: &TestClient) -> Session {
        let dirs = Dirs::new();
        let store = dirs.store();
        let (manager, events) = open_manager(self, store.clone());
        let credential = self.credential(client, now_ms()).await;
        manager.login_with(credential.clone()).await.unwrap();
        Session {
            manager,
            events,
            credential,
            store,
            dirs,
        }
    }
}

/// A data directory and a separate key directory, as the CLI lays them out.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("profiles/default.cred")
    }

    pub fn key(&self) -> PathBuf {
        self.root.path().join("keys/client.key")
    }

    pub fn store(&self) -> Arc<FileTokenStore> {
        Arc::new(FileTokenStore::open(self.data(), KeySource::KeyFile(self.key())).unwrap())
    }
}

/// Events seen by a manager.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<RefreshEvent>>>);

impl Recorder {
    pub fn events(&self) -> Vec<RefreshEvent> {
        self.0.lock().unwrap().clone()
    }
}

pub fn manager_with(
    server: &Server,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
) -> (Arc<TokenManager>, Recorder) {
    let recorder = Recorder::default();
    let sink = recorder.clone();
    let config = ManagerConfig {
        http: server.http.clone(),
        clock,
        session_timeout: None,
        on_event: Some(Arc::new(move |e: &RefreshEvent| {
            sink.0.lock().unwrap().push(e.clone())
        })),
        dpop: false,
    };
    (Arc::new(TokenManager::new(store, config)), recorder)
}

/// A manager with a session timeout, for servers without `expires_in`.
pub fn manager_with_session_timeout(
    server: &Server,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    session_timeout: Option<std::time::Duration>,
) -> (Arc<TokenManager>, Recorder) {
    let (manager, recorder) = manager_with(server, store.clone(), clock.clone());
    let config = ManagerConfig {
        session_timeout,
        ..manager.config().clone()
    };
    (Arc::new(TokenManager::new(store, config)), recorder)
}

pub fn open_manager(server: &Server, store: Arc<dyn TokenStore>) -> (Arc<TokenManager>, Recorder) {
    manager_with(server, store, Arc::new(tessera_client::SystemClock))
}

pub fn now_ms() -> i64 {
    tessera_client::SystemClock.now_ms()
}

pub fn clear(token: &impl ExposeSecret) -> String {
    token.expose_secret().to_owned()
}

/// A credential that no server issued, for storage tests.
pub fn sample_credential(access: &str, refresh: &str) -> Credential {
    Credential {
        endpoints: Endpoints::salesforce("https://login.example.test"),
        client_id: "3MVG9client".into(),
        client_secret: Some(ClientSecret::new("CLIENT-SECRET-VALUE-0123456789")),
        access_token: tessera_proto::AccessToken::new(access),
        refresh_token: Some(tessera_proto::RefreshToken::new(refresh)),
        instance_url: "https://na1.example.test".into(),
        identity_url: Some("https://login.example.test/id/00D/005".into()),
        username: None,
        scope: "api refresh_token".into(),
        issued_at_ms: 1_800_000_000_000,
        expires_at_ms: Some(1_800_007_200_000),
        clock_offset_ms: 0,
        in_flight: None,
        id_token: None,
        id_token_claims: None,
        dead: None,
        dpop_key: None,
        dpop_bound: false,
    }
}

/// Serves `router` on 127.0.0.1:0 until the test ends; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}
