//! Administration: clients and users, as the `tessera admin` commands use them.

use tessera_proto::{ClientSecret, ExposeSecret, OAuthError, Password, Scope, TokenResponse};

use crate::authority::{Authentication, Authority, NewGrant};
use crate::identity::ip_allowlist::IpAllowlist;
use crate::identity::username::normalise_username;
use crate::model::{
    Client, ClientControls, DpopMode, DpopSettings, Grant, OpenIdSettings, SigningAlg, StoredEvent,
    User, MAX_ID_TOKEN_AUDIENCES, MAX_ID_TOKEN_VALIDITY_SECS,
};
use crate::operations::operator::Operator;
use crate::policy::{
    RefreshTokenPolicy, DEFAULT_ACCESS_TOKEN_TTL_SECS, DEFAULT_CLIENT_SCOPES,
    DEFAULT_PUBLIC_REFRESH_RETRY_WINDOW_SECS, DEFAULT_REFRESH_RETRY_WINDOW_SECS,
    MAX_ACCESS_TOKEN_TTL_SECS, MAX_REFRESH_RETRY_WINDOW_SECS,
};
use crate::store::{BrowserSessions, EventFilter, Inventory, StoreError};
use crate::tokens::hash::secret_hash;
use crate::tokens::ids::{random_token, salesforce_id};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of a new client; `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub scopes: Option<String>,
    pub refresh_token_policy: Option<RefreshTokenPolicy>,
    pub access_token_ttl_secs: Option<u64>,
    pub rotate_refresh_tokens: Option<bool>,
    pub allow_user_agent_flow: Option<bool>,
    pub refresh_retry_window_secs: Option<u64>,
    /// An ID token's validity (whole minutes, as Salesforce counts it).
    pub id_token_validity_secs: Option<u64>,
    /// Extra ID-token audiences (replacing the ones it has).
    pub id_token_audiences: Option<Vec<String>>,
    pub id_token_standard_claims: Option<bool>,
    pub echo_nonce_on_refresh: Option<bool>,
    pub id_token_alg: Option<SigningAlg>,
    pub jwt_access_tokens: Option<bool>,
    /// Whether its tokens are bound by DPoP proofs: off, allowed or required.
    pub dpop: Option<DpopMode>,
    /// Whether its DPoP proofs must carry a server-issued nonce.
    pub dpop_require_nonce: Option<bool>,
    /// PKCE required (docs/controls.md): `Some(false)` is refused once it is set.
    pub pkce_required: Option<bool>,
    /// Rotation required; setting it turns rotation on.
    pub rotation_required: Option<bool>,
    /// Rotation audit mode; setting it turns rotation on, and turning rotation off clears it.
    pub rotation_audit: Option<bool>,
    /// The idle-limit cap in seconds: `Some(None)` turns it off.
    pub idle_cap_secs: Option<Option<u64>>,
    /// Blocked (`true`) or unblocked (`false`).
    pub blocked: Option<bool>,
    /// The refresh-token IP allowlist as written (replacing the one it has; `none` clears it),
    /// checked by [`IpAllowlist::parse`].
    pub ip_allowlist: Option<String>,
}

/// The controls a new client gets where its settings do not say otherwise: the configuration's
/// `client_default_*` keys (docs/configuration.md). All off by default. They apply at creation
/// only; an update never reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientDefaults {
    pub pkce_required: bool,
    pub rotation_required: bool,
    pub idle_cap_secs: Option<u64>,
    pub ip_allowlist: IpAllowlist,
}

impl ClientDefaults {
    /// The controls of a client that takes every default: what a new-client form starts with.
    pub fn controls(&self) -> ClientControls {
        ClientControls {
            pkce_required: self.pkce_required,
            rotation_required: self.rotation_required,
            idle_cap_secs: self.idle_cap_secs,
            blocked: false,
            rotation_audit: false,
            ip_allowlist: self.ip_allowlist.clone(),
        }
    }
}

impl ClientSettings {
    /// These settings, with every control they leave unsaid taken from `defaults`.
    fn or_defaults(&self, defaults: &ClientDefaults) -> Self {
        Self {
            pkce_required: self.pkce_required.or(Some(defaults.pkce_required)),
            // Only a default that is on says anything: off is what a new client has anyway,
            // and saying it would not change what an explicit `--rotate` does.
            rotation_required: self
                .rotation_required
                .or(defaults.rotation_required.then_some(true)),
            idle_cap_secs: self.idle_cap_secs.or(Some(defaults.idle_cap_secs)),
            ip_allowlist: self
                .ip_allowlist
                .clone()
                .or_else(|| Some(defaults.ip_allowlist.to_input(","))),
            ..self.clone()
        }
    }
}

/// Why PKCE required cannot be unset, in the words the CLI and the console show.
pub const PKCE_REQUIRED_IS_FOREVER: &str = "PKCE required cannot be turned off, as in Salesforce";
/// Why audit mode and rotation required exclude each other.
pub const AUDIT_IS_BEFORE_REQUIRED: &str =
    "rotation audit mode is for before rotation is required: a required rotation punishes reuse (switch to rotation on first, then require it)";
/// Why a public client cannot be audited.
pub const PUBLIC_CLIENTS_ENFORCE_ROTATION: &str =
    "a public client's rotation always revokes on reuse (RFC 9700 §2.2.2): rotation audit mode is for confidential clients";
/// Why rotation cannot be turned off while it is required.
pub const ROTATION_IS_REQUIRED: &str =
    "refresh-token rotation is required for this client and cannot be turned off (unset rotation required first)";

impl ClientSettings {
    fn apply(&self, client: &mut Client) -> Result<(), AdminError> {
        if let Some(name) = &self.name {
            client.name = name.clone();
        }
        if let Some(uris) = &self.redirect_uris {
            for uri in uris {
                validate_redirect_uri(uri)?;
            }
            client.redirect_uris = uris.clone();
        }
        if let Some(text) = &self.scopes {
            client.scopes = Scope::parse(text)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| AdminError::Invalid(format!("invalid scope list: {text:?}")))?;
        }
        if let Some(policy) = self.refresh_token_policy {
            client.refresh_token_policy = policy;
        }
        if let Some(ttl) = self.access_token_ttl_secs {
            if ttl == 0 || ttl > MAX_ACCESS_TOKEN_TTL_SECS {
                return Err(AdminError::Invalid(
                    "access-token lifetime must be positive and at most 24h".into(),
                ));
            }
            client.access_token_ttl_secs = ttl;
        }
        if let Some(rotate) = self.rotate_refresh_tokens {
            client.rotate_refresh_tokens = rotate;
        }
        if let Some(allow) = self.allow_user_agent_flow {
            client.allow_user_agent_flow = allow;
        }
        if let Some(window) = self.refresh_retry_window_secs {
            if window > MAX_REFRESH_RETRY_WINDOW_SECS {
                return Err(AdminError::Invalid(format!(
                    "refresh retry window must be at most {MAX_REFRESH_RETRY_WINDOW_SECS} seconds"
                )));
            }
            client.refresh_retry_window_secs = window;
        }
        self.apply_openid(&mut client.openid)?;
        if let Some(mode) = self.dpop {
            client.dpop.mode = mode;
        }
        if let Some(require_nonce) = self.dpop_require_nonce {
            client.dpop.require_nonce = require_nonce;
        }
        self.apply_controls(client)?;
        if client.redirect_uris.is_empty() {
            return Err(AdminError::Invalid(
                "a client needs at least one redirect URI".into(),
            ));
        }
        Ok(())
    }

    fn apply_controls(&self, client: &mut Client) -> Result<(), AdminError> {
        let controls = &mut client.controls;
        match self.pkce_required {
            Some(false) if controls.pkce_required => {
                return Err(AdminError::Invalid(PKCE_REQUIRED_IS_FOREVER.into()))
            }
            Some(required) => controls.pkce_required = required,
            None => {}
        }
        if let Some(required) = self.rotation_required {
            controls.rotation_required = required;
            // Requiring rotation turns it on, unless this very change turns it off (refused
            // below rather than silently overridden).
            if required && self.rotate_refresh_tokens != Some(false) {
                client.rotate_refresh_tokens = true;
            }
        }
        if controls.rotation_required && !client.rotate_refresh_tokens {
            return Err(AdminError::Invalid(ROTATION_IS_REQUIRED.into()));
        }
        Self::apply_rotation_audit(self.rotation_audit, self.rotate_refresh_tokens, client)?;
        let controls = &mut client.controls;
        if let Some(cap) = self.idle_cap_secs {
            if cap == Some(0) {
                return Err(AdminError::Invalid(
                    "the idle-limit cap must be at least one second (or off)".into(),
                ));
            }
            controls.idle_cap_secs = cap;
        }
        if let Some(blocked) = self.blocked {
            controls.blocked = blocked;
        }
        if let Some(text) = &self.ip_allowlist {
            controls.ip_allowlist = IpAllowlist::parse(text)
                .map_err(|why| AdminError::Invalid(format!("IP allowlist: {why}")))?;
        }
        Ok(())
    }

    /// Audit mode is a mode of rotation being on: asking for it turns rotation on (unless this
    /// very change turns rotation off: refused rather than silently overridden), and rotation
    /// off clears it. It never coexists with rotation required, nor applies to a public client.
    fn apply_rotation_audit(
        audit: Option<bool>,
        rotate: Option<bool>,
        client: &mut Client,
    ) -> Result<(), AdminError> {
        if let Some(audit) = audit {
            if audit && rotate == Some(false) {
                return Err(AdminError::Invalid(
                    "rotation audit mode needs rotation on".into(),
                ));
            }
            if audit {
                client.rotate_refresh_tokens = true;
            }
            client.controls.rotation_audit = audit;
        }
        if !client.rotate_refresh_tokens {
            client.controls.rotation_audit = false;
        }
        if !client.controls.rotation_audit {
            return Ok(());
        }
        if client.is_public() {
            return Err(AdminError::Invalid(PUBLIC_CLIENTS_ENFORCE_ROTATION.into()));
        }
        if client.controls.rotation_required {
            return Err(AdminError::Invalid(AUDIT_IS_BEFORE_REQUIRED.into()));
        }
        Ok(())
    }

    fn apply_openid(&self, openid: &mut OpenIdSettings) -> Result<(), AdminError> {
        if let Some(validity) = self.id_token_validity_secs {
            if validity == 0 || validity % 60 != 0 || validity > MAX_ID_TOKEN_VALIDITY_SECS {
                return Err(AdminError::Invalid(format!(
                    "ID-token validity must be whole minutes, from 1 to {}",
                    MAX_ID_TOKEN_VALIDITY_SECS / 60
                )));
            }
            openid.id_token_validity_secs = validity;
        }
        if let Some(audiences) = &self.id_token_audiences {
            if audiences.len() > MAX_ID_TOKEN_AUDIENCES {
                return Err(AdminError::Invalid(format!(
                    "at most {MAX_ID_TOKEN_AUDIENCES} extra ID-token audiences"
                )));
            }
            if let Some(bad) = audiences.iter().find(|a| !is_audience(a)) {
                return Err(AdminError::Invalid(format!(
                    "ID-token audience {bad:?}: 1 to 255 printable characters, no spaces"
                )));
            }
            openid.id_token_audiences = audiences.clone();
        }
        if let Some(standard_claims) = self.id_token_standard_claims {
            openid.id_token_standard_claims = standard_claims;
        }
        if let Some(echo) = self.echo_nonce_on_refresh {
            openid.echo_nonce_on_refresh = echo;
        }
        if let Some(alg) = self.id_token_alg {
            openid.id_token_alg = alg;
        }
        if let Some(jwt) = self.jwt_access_tokens {
            openid.jwt_access_tokens = jwt;
        }
        Ok(())
    }
}

/// An audience an ID token may name: a client id or a URI, printable, without spaces.
fn is_audience(audience: &str) -> bool {
    (1..=255).contains(&audience.len()) && audience.bytes().all(|b| b.is_ascii_graphic())
}

/// A redirect URI a code or a token may be sent to (see [`crate::flows::authorize::redirect_uri_safety`]).
pub(crate) fn validate_redirect_uri(uri: &str) -> Result<(), AdminError> {
    crate::flows::authorize::redirect_uri_safety(uri)
        .map_err(|why| AdminError::Invalid(format!("redirect URI {uri:?}: {why}")))
}

/// A grant with its audit history (issue, rotations, replays, revocation).
#[derive(Debug, Clone)]
pub struct GrantHistory {
    pub grant: Grant,
    pub events: Vec<StoredEvent>,
}

impl Operator {
    /// Registers a client. The secret (confidential clients only) is returned once and only its
    /// hash is kept.
    pub async fn create_client(
        &self,
        public: bool,
        settings: &ClientSettings,
    ) -> Result<(Client, Option<ClientSecret>), AdminError> {
        let secret = (!public).then(|| ClientSecret::new(new_client_secret(&self.authority)));
        let mut client = Client {
            // Salesforce consumer keys start with 3MVG9; ours use the token alphabet after it.
            client_id: format!("3MVG9{}", random_token(self.authority.rng(), 48)),
            name: String::new(),
            secret_hash: secret.as_ref().map(|s| secret_hash(s.expose_secret())),
            redirect_uris: Vec::new(),
            scopes: Scope::parse(DEFAULT_CLIENT_SCOPES).unwrap_or_default(),
            refresh_token_policy: RefreshTokenPolicy::Infinite,
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            rotate_refresh_tokens: false,
            allow_user_agent_flow: false,
            // A window given in `settings` replaces this; existing clients keep theirs.
            refresh_retry_window_secs: if public {
                DEFAULT_PUBLIC_REFRESH_RETRY_WINDOW_SECS
            } else {
                DEFAULT_REFRESH_RETRY_WINDOW_SECS
            },
            created_at: self.authority.now(),
            openid: OpenIdSettings::default(),
            dpop: DpopSettings::default(),
            controls: Default::default(),
        };
        settings
            .or_defaults(&self.authority.config().client_defaults)
            .apply(&mut client)?;
        if client.name.trim().is_empty() {
            return Err(AdminError::Invalid("a client needs a name".into()));
        }
        self.authority.store().insert_client(&client).await?;
        Ok((client, secret))
    }

    pub async fn client(&self, client_id: &str) -> Result<Client, AdminError> {
        self.authority
            .store()
            .client_by_id(client_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("client {client_id}")))
    }

    pub async fn update_client(
        &self,
        client_id: &str,
        settings: &ClientSettings,
    ) -> Result<Client, AdminError> {
        let mut client = self.client(client_id).await?;
        settings.apply(&mut client)?;
        self.authority
            .store()
            .update_client(&client, self.authority.now())
            .await?;
        self.client_changed(client_id);
        Ok(client)
    }

    /// A client this process changed: its cached copy goes.
    fn client_changed(&self, client_id: &str) {
        self.authority.guard().changed(
            crate::model::ChangeKind::ClientChanged,
            client_id,
            self.authority.now().plus_secs(MAX_ACCESS_TOKEN_TTL_SECS),
        );
    }

    fn user_changed(&self, user_id: &str) {
        self.authority.guard().changed(
            crate::model::ChangeKind::UserChanged,
            user_id,
            self.authority.now().plus_secs(MAX_ACCESS_TOKEN_TTL_SECS),
        );
    }

    /// Replaces a confidential client's secret; the old one stops working at once. Tokens
    /// already issued stay valid (as at Salesforce): refreshing them now needs the new secret,
    /// so a leaked old secret is useless. `revoke_tokens` also revokes every grant of the
    /// client, for when the tokens themselves may have leaked with it.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        revoke_tokens: bool,
    ) -> Result<(Client, ClientSecret), AdminError> {
        let mut client = self.client(client_id).await?;
        if client.is_public() {
            return Err(AdminError::Invalid("a public client has no secret".into()));
        }
        let secret = ClientSecret::new(new_client_secret(&self.authority));
        client.secret_hash = Some(secret_hash(secret.expose_secret()));
        self.authority
            .store()
            .update_client(&client, self.authority.now())
            .await?;
        self.client_changed(client_id);
        if revoke_tokens {
            self.revoke_client_grants(client_id, "client secret rotated")
                .await?;
        }
        Ok((client, secret))
    }

    /// Deletes a client and everything issued to it; its access tokens stop working.
    pub async fn delete_client(&self, client_id: &str) -> Result<(), AdminError> {
        let live = self
            .authority
            .store()
            .revoke_grants_of_client(client_id, self.authority.now())
            .await?;
        if !self
            .authority
            .store()
            .delete_client(client_id, self.authority.now())
            .await?
        {
            return Err(AdminError::NotFound(format!("client {client_id}")));
        }
        let now = self.authority.now();
        for grant_id in &live {
            self.authority.grant_revoked(grant_id, now);
        }
        self.client_changed(client_id);
        Ok(())
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: Password,
        email: Option<String>,
    ) -> Result<User, AdminError> {
        self.insert_new_user(username, password, email, false).await
    }

    /// A user with the admin role, who may use the admin console.
    pub async fn create_admin(
        &self,
        username: &str,
        password: Password,
        email: Option<String>,
    ) -> Result<User, AdminError> {
        self.insert_new_user(username, password, email, true).await
    }

    async fn insert_new_user(
        &self,
        username: &str,
        password: Password,
        email: Option<String>,
        admin: bool,
    ) -> Result<User, AdminError> {
        // Stored in its normal form, the form lookups and the throttle use.
        let username = normalise_username(username);
        if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
            return Err(AdminError::Invalid(
                "username must be 1 to 255 printable characters".into(),
            ));
        }
        check_password(&password)?;
        let org = self.authority.org().await?;
        let user = User {
            id: salesforce_id("005", self.authority.rng()),
            org_id: org.id,
            username,
            email,
            password_hash: self.hash_password(password).await,
            disabled: false,
            created_at: self.authority.now(),
            admin,
            session_epoch: 0,
        };
        self.authority.store().insert_user(&user).await?;
        Ok(user)
    }

    pub async fn user(&self, username: &str) -> Result<User, AdminError> {
        self.authority
            .user_named(username)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {username}")))
    }

    /// Disables or enables a user. Disabling is one write in the store: the flag, the end of
    /// every browser session of the user, and the revocation of every grant they hold (their
    /// refresh tokens and access tokens stop working at once, in this process and, through the
    /// change feed, in every other).
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.user(username).await?;
        if !disabled {
            user.disabled = false;
            self.authority
                .store()
                .update_user(&user, BrowserSessions::Keep, self.authority.now())
                .await?;
            self.user_changed(&user.id);
            return Ok(user);
        }
        let revoked = self
            .authority
            .store()
            .disable_user(&user.id, self.authority.now())
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {username}")))?;
        self.user_changed(&user.id);
        self.record_revocations(&revoked, "user disabled").await?;
        self.user(username).await
    }

    /// Grants or takes away the admin role. Either way the user's browser sessions end (a
    /// console session made under the old role is not one under the new); the console also
    /// reads the user on every request.
    pub async fn set_user_admin(&self, username: &str, admin: bool) -> Result<User, AdminError> {
        let mut user = self.user(username).await?;
        user.admin = admin;
        self.authority
            .store()
            .update_user(&user, BrowserSessions::End, self.authority.now())
            .await?;
        self.user_changed(&user.id);
        self.user(username).await
    }

    /// Sets a new password. The user's browser sessions always end with it (they were logged
    /// in with the old one). Unless `keep_sessions`, every grant of the user is revoked too:
    /// the usual reason for a change is a compromise, and a thief holding a refresh token must
    /// not keep it. Returns the user and how many grants were revoked.
    pub async fn set_user_password(
        &self,
        username: &str,
        password: Password,
        keep_sessions: bool,
    ) -> Result<(User, usize), AdminError> {
        check_password(&password)?;
        let mut user = self.user(username).await?;
        user.password_hash = self.hash_password(password).await;
        self.authority
            .store()
            .update_user(&user, BrowserSessions::End, self.authority.now())
            .await?;
        self.user_changed(&user.id);
        let revoked = if keep_sessions {
            0
        } else {
            self.revoke_user_grants(&user.id, "password changed")
                .await?
        };
        Ok((self.user(username).await?, revoked))
    }

    /// Ends every browser session of a user (`tessera admin user logout`, and a logout from a
    /// page): their end-user and console session cookies stop working at their next request,
    /// wherever they were made. Grants and their tokens are not touched.
    pub async fn end_user_sessions(&self, username: &str) -> Result<User, AdminError> {
        let user = self.user(username).await?;
        if !self.authority.store().end_sessions(&user.id).await? {
            return Err(AdminError::NotFound(format!("user {username}")));
        }
        self.user(username).await
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.authority.store().list_users().await
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.authority.store().list_clients().await
    }

    /// Audit events in id order, by filter.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.authority.store().events(filter).await
    }

    /// What an operator counts: clients, users, live grants, refresh tokens by state, events.
    pub async fn inventory(&self) -> Result<Inventory, StoreError> {
        self.authority.store().inventory().await
    }

    /// A user's grants, newest first, each with its audit history.
    pub async fn grant_histories(&self, user_id: &str) -> Result<Vec<GrantHistory>, StoreError> {
        let mut out = Vec::new();
        for grant in self.authority.store().grants_of_user(user_id).await? {
            let filter = EventFilter {
                grant_id: Some(grant.id.clone()),
                limit: 10_000,
                ..Default::default()
            };
            let events = self.authority.store().events(&filter).await?;
            out.push(GrantHistory { grant, events });
        }
        Ok(out)
    }

    /// Issues `count` grants of `client_id` to `username` outside any flow, fast, for load tests
    /// and benchmarks: many issuances in flight at once (so the store commits them in groups),
    /// no approval limit, no audit event per grant (one for the batch). Returns the token
    /// responses of `keep` of them, spread evenly over the run; the rest are ballast. Spread,
    /// because grant ids lead with their creation time: the first `keep` would be neighbours in
    /// the store, and a benchmark refreshing them would find every row it needs in a few hot
    /// pages, as no real population of users does.
    pub async fn mint_many(
        &self,
        client_id: &str,
        username: &str,
        scope: &str,
        count: u64,
        keep: usize,
    ) -> Result<Vec<TokenResponse>, OAuthError> {
        const IN_FLIGHT: usize = 512;
        let client = self.client_by_id(client_id).await?;
        let user = self.active_user_named(username).await?;
        let scope = requested_or_all(&client, scope)?;
        let mut kept = Vec::with_capacity(keep);
        let stride = (count / keep.max(1) as u64).max(1);
        let mut in_flight = tokio::task::JoinSet::new();
        for n in 0..count {
            let (issuance, response) = self.authority.new_issuance(&client, &user, &scope).await?;
            if n % stride == 0 && kept.len() < keep {
                kept.push(response);
            }
            let store = self.authority.shared_store();
            in_flight.spawn(async move { store.issue(&issuance).await });
            if in_flight.len() >= IN_FLIGHT {
                if let Some(done) = in_flight.join_next().await {
                    done.map_err(|_| OAuthError::ServerError)??;
                }
            }
        }
        while let Some(done) = in_flight.join_next().await {
            done.map_err(|_| OAuthError::ServerError)??;
        }
        tracing::info!(count, client_id, "bulk minted");
        Ok(kept)
    }

    /// Issues tokens outside any flow, for bootstrap and load tests (`tessera admin token mint`).
    pub async fn mint_for(
        &self,
        client_id: &str,
        username: &str,
        scope: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.client_by_id(client_id).await?;
        let user = self.active_user_named(username).await?;
        let scope = requested_or_all(&client, scope)?;
        self.authority
            .issue_new_grant(
                NewGrant {
                    client: &client,
                    user: &user,
                    scope: &scope,
                    code_hash: None,
                    may_issue_refresh: true,
                    presented_secret: None,
                    authentication: Authentication::default(),
                    answers_id_token: true,
                },
                None,
            )
            .await
    }

    async fn hash_password(&self, password: Password) -> String {
        let mut salt_source = [0u8; 32];
        self.authority.rng().fill(&mut salt_source);
        let seeded = SeededSalt(salt_source);
        tokio::task::spawn_blocking(move || {
            crate::identity::password::hash_password(&password, &seeded)
        })
        .await
        .unwrap_or_default()
    }
}

/// The scope asked for (empty: all the client's), which must be the client's.
fn requested_or_all(client: &Client, scope: &str) -> Result<Scope, OAuthError> {
    match Scope::parse(scope) {
        Some(s) if s.is_empty() => Ok(client.scopes.clone()),
        Some(s) if s.is_subset(&client.scopes) => Ok(s),
        _ => Err(OAuthError::InvalidScope),
    }
}

impl Operator {
    async fn client_by_id(&self, client_id: &str) -> Result<Client, OAuthError> {
        self.authority
            .store()
            .client_by_id(client_id)
            .await?
            .ok_or(OAuthError::InvalidClientId)
    }

    async fn active_user_named(&self, username: &str) -> Result<User, OAuthError> {
        let user = self
            .authority
            .user_named(username)
            .await?
            .ok_or(OAuthError::InvalidRequest("unknown username"))?;
        if user.disabled {
            return Err(OAuthError::InactiveUser);
        }
        Ok(user)
    }
}

fn check_password(password: &Password) -> Result<(), AdminError> {
    let len = password.expose_secret().chars().count();
    if !(8..=1024).contains(&len) {
        return Err(AdminError::Invalid(
            "password must be 8 to 1024 characters".into(),
        ));
    }
    Ok(())
}

fn new_client_secret(authority: &Authority) -> String {
    let mut bytes = [0u8; 32];
    authority.rng().fill(&mut bytes);
    hex::encode_upper(bytes)
}

/// Salt bytes drawn from the injected RNG on the runtime, handed to the blocking hasher.
#[derive(Debug)]
struct SeededSalt([u8; 32]);

impl crate::time::Random for SeededSalt {
    fn fill(&self, buf: &mut [u8]) {
        for (b, seed) in buf.iter_mut().zip(self.0.iter().cycle()) {
            *b = *seed;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::tokens::server_key::ServerKey;

    /// An authority on an in-memory store whose new clients get `defaults`.
    fn authority_with(defaults: ClientDefaults) -> Authority {
        let mut config = AuthorityConfig::new(
            "http://as.test",
            ServerKey::generate(&crate::time::SystemRandom),
        );
        config.client_defaults = defaults;
        Authority::new(
            Arc::new(crate::store::memory::MemoryStore::new()),
            Arc::new(crate::time::ManualClock::new(crate::time::Timestamp(
                1_800_000_000_000,
            ))),
            Arc::new(crate::time::SystemRandom),
            config,
        )
    }

    fn app(settings: ClientSettings) -> ClientSettings {
        ClientSettings {
            name: Some("App".into()),
            redirect_uris: Some(vec!["https://app.example.com/cb".into()]),
            ..settings
        }
    }

    fn every_default_on() -> ClientDefaults {
        ClientDefaults {
            pkce_required: true,
            rotation_required: true,
            idle_cap_secs: Some(30 * 86_400),
            ip_allowlist: IpAllowlist::parse("203.0.113.0/24,2001:db8::/32").unwrap(),
        }
    }

    #[tokio::test]
    async fn a_new_client_gets_the_configured_defaults_where_its_settings_are_silent() {
        let authority = authority_with(every_default_on());
        let (client, _) = authority
            .operator()
            .create_client(false, &app(ClientSettings::default()))
            .await
            .unwrap();
        assert_eq!(
            client.controls,
            crate::model::ClientControls {
                pkce_required: true,
                rotation_required: true,
                idle_cap_secs: Some(30 * 86_400),
                blocked: false,
                rotation_audit: false,
                ip_allowlist: every_default_on().ip_allowlist,
            }
        );
        assert!(
            client.rotate_refresh_tokens,
            "rotation required turns rotation on"
        );
    }

    #[tokio::test]
    async fn explicit_settings_override_the_defaults_and_updates_never_read_them() {
        let authority = authority_with(every_default_on());
        let operator = authority.operator();
        let explicit = app(ClientSettings {
            pkce_required: Some(false),
            rotation_required: Some(false),
            idle_cap_secs: Some(None),
            ip_allowlist: Some("none".into()),
            ..Default::default()
        });
        let (client, _) = operator.create_client(false, &explicit).await.unwrap();
        assert_eq!(client.controls, crate::model::ClientControls::default());
        assert!(!client.rotate_refresh_tokens);

        let updated = operator
            .update_client(&client.client_id, &ClientSettings::default())
            .await
            .unwrap();
        assert_eq!(updated.controls, crate::model::ClientControls::default());
    }

    #[tokio::test]
    async fn a_bad_ip_allowlist_is_refused_with_the_reason_and_a_good_one_is_kept() {
        let authority = authority_with(ClientDefaults::default());
        let operator = authority.operator();
        let many = (0..129)
            .map(|n| format!("10.0.{n}.0/24"))
            .collect::<Vec<_>>()
            .join(",");
        for (bad, why) in [
            (many.as_str(), "at most 128 ranges; 129 given"),
            ("10.0.0.0/33", "is not an IPv4 or IPv6 range"),
            ("10.1.2.3/8", "bits set past its /8 prefix"),
            ("0.0.0.0/0", "which is no restriction"),
            ("::/0", "which is no restriction"),
        ] {
            let settings = app(ClientSettings {
                ip_allowlist: Some(bad.to_owned()),
                ..Default::default()
            });
            let error = operator.create_client(false, &settings).await.unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(error, AdminError::Invalid(_)) && text.contains(why),
                "{bad}: {text}"
            );
            assert!(text.starts_with("IP allowlist: "), "{text}");
        }
        let settings = app(ClientSettings {
            ip_allowlist: Some("192.0.2.0/24 ::/0!".into()),
            ..Default::default()
        });
        let (client, _) = operator.create_client(false, &settings).await.unwrap();
        assert_eq!(
            client.controls.ip_allowlist.to_input(","),
            "192.0.2.0/24,::/0!"
        );
    }

    #[test]
    fn redirect_uris_that_could_leak_a_code_are_refused_with_a_reason() {
        for (bad, why) in [
            ("javascript:alert(1)", "javascript:"),
            ("data:text/html,<script>x</script>", "data:"),
            ("file:///etc/passwd", "file:"),
            ("vbscript:msgbox", "vbscript:"),
            ("http://app.example.com/cb", "plain http"),
            ("http://10.0.0.5/cb", "plain http"),
            ("https://app.example.com/cb#frag", "fragment"),
            ("https://app.example.com/cb#", "fragment"),
            ("myapp://cb", "reverse-domain"),
            ("/relative/cb", "absolute"),
        ] {
            let err = validate_redirect_uri(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn https_loopback_http_and_reverse_domain_schemes_are_accepted() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?tenant=a",
            "http://127.0.0.1:8976/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:3000/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
        ] {
            assert!(validate_redirect_uri(good).is_ok(), "{good}");
        }
    }
}
