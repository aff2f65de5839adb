//! The authorization server's operations: what each endpoint does, without HTTP.

use std::sync::Arc;

use tessera_proto::{
    AccessToken, AuthorizationCode, ClientSecret, CodeVerifier, ExposeSecret, OAuthError, Password,
    RefreshToken, Scope, SessionError, TokenResponse, TokenType,
};

use crate::authorize::{AuthorizationRequest, ResponseKind};
use crate::crypto::{self, ServerKey};
use crate::ids::{random_token, salesforce_id, secret_hash};
use crate::model::{AccessTokenRecord, AuthCode, Client, Event, EventKind, Grant, Hash, Org, User};
use crate::sealing::{mint_refresh_token, seal_response, signed_grant_id, unseal_response};
use crate::store::{
    CodeRedemption, Issuance, RefreshCommit, RefreshOutcome, RefreshTokenView, Store, StoreError,
};
use crate::time::{Clock, Random, Timestamp};

/// Without a retry window, a replay of a rotated-out token this soon after its rotation, while
/// the successor is unused, is taken for a simultaneous duplicate of that refresh: refused with
/// "token request is already being processed", neither answered with tokens nor punished.
/// Later, it is reuse.
pub const CONCURRENT_REFRESH_GRACE_MS: i64 = 2_000;
/// How long an authorization code lives (Salesforce: 15 minutes).
pub const CODE_TTL_SECS: u64 = 15 * 60;
/// Bytes of randomness in every token, code and secret: 256 bits (RFC 6749 §10.10 asks ≥ 128).
const TOKEN_BYTES: usize = 32;
/// Longest token value worth a lookup; anything longer is refused before hashing.
pub(crate) const MAX_TOKEN_LEN: usize = 512;
/// PKCE verifier bounds: RFC 7636's minimum, and a generous maximum since jsforce sends 171.
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=1024;

#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// Public base URL, no trailing slash: `instance_url`, the identity URL's host, the issuer.
    pub issuer: String,
    /// Whether token responses carry RFC 6749's `expires_in` (Salesforce's never do).
    pub emit_expires_in: bool,
    pub server_key: ServerKey,
    /// Salesforce's approval limit: live refresh-token grants per user per client (5); the
    /// next one revokes the oldest. `None`: no limit.
    pub max_live_grants: Option<u32>,
    /// How long audit events are kept. With one event per refresh, this bounds the events
    /// table at traffic × retention.
    pub audit_retention_secs: u64,
}

impl AuthorityConfig {
    /// The defaults for a server at `issuer`.
    pub fn new(issuer: impl Into<String>, server_key: ServerKey) -> Self {
        Self {
            issuer: issuer.into(),
            emit_expires_in: true,
            server_key,
            max_live_grants: Some(DEFAULT_MAX_LIVE_GRANTS),
            audit_retention_secs: DEFAULT_AUDIT_RETENTION_SECS,
        }
    }
}

/// Audit events are kept 30 days unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION_SECS: u64 = 30 * 86_400;
/// Salesforce's "five unique approvals per user per app".
pub const DEFAULT_MAX_LIVE_GRANTS: u32 = 5;

/// Client credentials as presented at an endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<ClientSecret>,
    /// Whether they came in an `Authorization: Basic` header (changes the error status).
    pub via_basic: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    InvalidCredentials,
    Disabled,
}

/// What a successful authorization redirects to.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    config: Arc<AuthorityConfig>,
}

/// Maps a storage failure to the wire: unavailable → 503 with `Retry-After`, anything else → 500.
/// The cause is logged here and never sent.
pub fn store_failure(error: StoreError) -> OAuthError {
    tracing::error!(error = %error, "storage failure");
    match error {
        StoreError::Unavailable(_) => OAuthError::TemporarilyUnavailable {
            retry_after_secs: 1,
        },
        _ => OAuthError::ServerError,
    }
}

impl Authority {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthorityConfig,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            config: Arc::new(config),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn rng(&self) -> &dyn Random {
        self.rng.as_ref()
    }

    /// Records an audit event about a grant: a row in the events table and a structured log
    /// line, never a token value. A failure to record is logged, not raised: the operation it
    /// describes has already happened.
    pub async fn record(&self, kind: EventKind, grant: &Grant, detail: &str) {
        self.record_event(Event {
            at: self.clock.now(),
            kind,
            client_id: Some(grant.client_id.clone()),
            user_id: Some(grant.user_id.clone()),
            grant_id: Some(grant.id.clone()),
            detail: detail.to_owned(),
        })
        .await;
    }

    pub async fn record_event(&self, event: Event) {
        tracing::info!(
            target: "tessera::audit",
            kind = event.kind.name(),
            client_id = event.client_id.as_deref().unwrap_or_default(),
            user_id = event.user_id.as_deref().unwrap_or_default(),
            grant_id = event.grant_id.as_deref().unwrap_or_default(),
            detail = %event.detail,
            "audit"
        );
        if let Err(error) = self.store.append_events(std::slice::from_ref(&event)).await {
            tracing::error!(error = %error, "could not record an audit event");
        }
    }

    pub fn identity_url(&self, org_id: &str, user_id: &str) -> String {
        format!("{}/id/{org_id}/{user_id}", self.config.issuer)
    }

    /// The organisation, created on first use.
    pub async fn org(&self) -> Result<Org, StoreError> {
        if let Some(org) = self.store.default_org().await? {
            return Ok(org);
        }
        let org = Org {
            id: salesforce_id("00D", self.rng.as_ref()),
            name: "Tessera".into(),
        };
        self.store.insert_org(&org).await?;
        // Another process may have created one first; the first one wins.
        Ok(self.store.default_org().await?.unwrap_or(org))
    }

    // ---------------------------------------------------------------- client authentication

    /// Authenticates a client (RFC 6749 §2.3, §3.2.1). A secret that is sent is always checked,
    /// even where it is not required (Salesforce §4.1); a confidential client must send one.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Client, OAuthError> {
        let client = self
            .store
            .client_by_id(&creds.client_id)
            .await
            .map_err(store_failure)?;
        let Some(client) = client else {
            // Spend the time a secret check would, so that unknown ids do not answer faster.
            if let Some(secret) = &creds.secret {
                let _ = crypto::hash_matches(secret.expose_secret(), &[0u8; 32]);
            }
            return Err(OAuthError::InvalidClientId);
        };
        let bad = OAuthError::InvalidClientCredentials {
            via_basic: creds.via_basic,
        };
        match (&client.secret_hash, &creds.secret) {
            (Some(stored), Some(secret))
                if crypto::hash_matches(secret.expose_secret(), stored) =>
            {
                Ok(client)
            }
            (None, None) => Ok(client),
            _ => Err(bad),
        }
    }

    // ---------------------------------------------------------------- users and login

    /// Checks a username and password. Runs Argon2 off the async runtime, and against a dummy
    /// hash when the user does not exist so that timing does not tell which usernames exist.
    pub async fn authenticate_user(
        &self,
        username: &str,
        password: Password,
    ) -> Result<User, LoginError> {
        let user = self
            .store
            .user_by_username(username)
            .await
            .map_err(|_| LoginError::InvalidCredentials)?;
        let phc = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_PHC.to_owned());
        let verified =
            tokio::task::spawn_blocking(move || crypto::verify_password(&password, &phc))
                .await
                .unwrap_or(false);
        match user {
            Some(user) if verified && !user.disabled => Ok(user),
            Some(user) if verified && user.disabled => Err(LoginError::Disabled),
            _ => Err(LoginError::InvalidCredentials),
        }
    }

    /// Whether the user must see the consent page for this request.
    pub async fn needs_consent(
        &self,
        request: &AuthorizationRequest,
        user: &User,
    ) -> Result<bool, OAuthError> {
        if request.prompt_consent {
            return Ok(true);
        }
        let approved = self
            .store
            .approved_scope(&user.id, &request.client.client_id)
            .await
            .map_err(store_failure)?;
        Ok(!approved
            .and_then(|text| Scope::parse(&text))
            .is_some_and(|approved| request.scope.is_subset(&approved)))
    }

    /// The user allowed the request: a code for the Web Server flow, tokens in the fragment for
    /// the User-Agent flow.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        user: &User,
    ) -> Result<Authorized, OAuthError> {
        let now = self.clock.now();
        self.store
            .record_approval(
                &user.id,
                &request.client.client_id,
                &request.scope.to_string(),
                now,
            )
            .await
            .map_err(store_failure)?;
        let target = request.target();
        match request.kind {
            ResponseKind::Code => {
                let code = AuthorizationCode::new(random_token(self.rng.as_ref(), TOKEN_BYTES));
                let record = AuthCode {
                    code_hash: secret_hash(code.expose_secret()),
                    client_id: request.client.client_id.clone(),
                    user_id: user.id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    scope: request.scope.clone(),
                    code_challenge: request.code_challenge.clone(),
                    created_at: now,
                    expires_at: now.plus_secs(CODE_TTL_SECS),
                };
                self.store
                    .insert_code(&record)
                    .await
                    .map_err(store_failure)?;
                Ok(Authorized {
                    location: target.location(&[("code", code.expose_secret())]),
                })
            }
            ResponseKind::Token => {
                // A refresh token in a URL fragment only for redirects that no other page can
                // read: custom schemes or our own success page (salesforce-compat.md §3).
                let fragment_may_carry_refresh = !request.redirect_uri.starts_with("http://")
                    && !request.redirect_uri.starts_with("https://")
                    || request.redirect_uri
                        == format!("{}/services/oauth2/success", self.config.issuer);
                let response = self
                    .issue_new_grant(
                        &request.client,
                        user,
                        &request.scope,
                        None,
                        fragment_may_carry_refresh,
                        None,
                    )
                    .await?;
                let mut pairs: Vec<(&str, &str)> =
                    vec![("access_token", response.access_token.expose_secret())];
                if let Some(rt) = &response.refresh_token {
                    pairs.push(("refresh_token", rt.expose_secret()));
                }
                pairs.extend([
                    ("instance_url", response.instance_url.as_str()),
                    ("id", response.id.as_str()),
                    ("issued_at", response.issued_at.as_str()),
                    ("signature", response.signature.as_str()),
                    ("scope", response.scope.as_str()),
                    ("token_type", "Bearer"),
                ]);
                Ok(Authorized {
                    location: target.location(&pairs),
                })
            }
        }
    }

    // ---------------------------------------------------------------- token endpoint

    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6).
    pub async fn exchange_code(
        &self,
        creds: &ClientCredentials,
        code: &AuthorizationCode,
        redirect_uri: Option<&str>,
        verifier: Option<&CodeVerifier>,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        if code.expose_secret().len() > MAX_TOKEN_LEN {
            return Err(OAuthError::InvalidAuthorizationCode);
        }
        let now = self.clock.now();
        let code_hash = secret_hash(code.expose_secret());
        let record = match self
            .store
            .redeem_code(&code_hash, now)
            .await
            .map_err(store_failure)?
        {
            CodeRedemption::Redeemed(record) => record,
            CodeRedemption::NotFound => return Err(OAuthError::InvalidAuthorizationCode),
            CodeRedemption::AlreadyUsed { grant_id } => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                if let Some(grant) = self
                    .store
                    .grant(grant_id.as_deref().unwrap_or_default())
                    .await
                    .map_err(store_failure)?
                {
                    self.store
                        .revoke_grant(&grant.id, now)
                        .await
                        .map_err(store_failure)?;
                    self.record(EventKind::CodeReused, &grant, "grant revoked")
                        .await;
                }
                return Err(OAuthError::ExpiredAuthorizationCode);
            }
        };
        if record.client_id != client.client_id {
            return Err(OAuthError::InvalidAuthorizationCode);
        }
        if now >= record.expires_at {
            return Err(OAuthError::ExpiredAuthorizationCode);
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::RedirectUriMismatch);
        }
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) => {
                let v = verifier.expose_secret();
                let well_formed = VERIFIER_LEN.contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                if !well_formed || !crypto::pkce_s256_matches(v, challenge) {
                    return Err(OAuthError::InvalidCodeVerifier);
                }
            }
            (Some(_), None) => return Err(OAuthError::InvalidCodeVerifier),
            // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => return Err(OAuthError::UnexpectedCodeVerifier),
            (None, None) => {}
        }
        let user = self.active_user(&record.user_id).await?;
        self.issue_new_grant(
            &client,
            &user,
            &record.scope,
            Some(code_hash),
            true,
            creds.secret.as_ref(),
        )
        .await
    }

    /// `grant_type=refresh_token` (RFC 6749 §6; salesforce-compat.md §4), with rotation, the
    /// retry window and reuse detection (DESIGN.md, Decisions; security.md §5.2).
    pub async fn refresh(
        &self,
        creds: &ClientCredentials,
        presented: &RefreshToken,
        requested_scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        let value = presented.expose_secret();
        if value.is_empty() || value.len() > MAX_TOKEN_LEN {
            return Err(OAuthError::ExpiredRefreshToken);
        }
        let presented_hash = secret_hash(value);
        let Some(view) = self
            .store
            .refresh_token(&presented_hash)
            .await
            .map_err(store_failure)?
        else {
            self.unknown_refresh_token(&client, value).await?;
            return Err(OAuthError::ExpiredRefreshToken);
        };
        let grant = &view.grant;
        // RFC 6749 §6: the token must have been issued to this client. Another client's token
        // is refused and left alone.
        if grant.client_id != client.client_id {
            return Err(OAuthError::ExpiredRefreshToken);
        }
        let now = self.clock.now();
        if grant.revoked_at.is_some() {
            if view.token.replaced_by.is_some() {
                self.record(EventKind::ReuseDetected, grant, "family already revoked")
                    .await;
            }
            return Err(OAuthError::ExpiredRefreshToken);
        }
        if let Some(used_at) = view.token.used_at {
            if let Some(response) = self.replay_within_window(&client, &view, now) {
                self.record(EventKind::RetryReplayed, grant, "replay").await;
                return Ok(response);
            }
            if view.successor_unused
                && now < Timestamp(used_at.millis() + CONCURRENT_REFRESH_GRACE_MS)
            {
                // A duplicate of a refresh that has only just committed: simultaneous requests
                // that lost the race by a few milliseconds are not thieves (security.md F3).
                self.record(EventKind::ConcurrentRefreshRefused, grant, "")
                    .await;
                return Err(OAuthError::TokenRequestInProgress);
            }
            // A rotated-out token outside the window: reuse. Revoke the whole family (RFC 9700
            // §4.14.2); the revocation commits although the request fails.
            self.store
                .revoke_grant(&grant.id, now)
                .await
                .map_err(store_failure)?;
            self.record(EventKind::ReuseDetected, grant, "family revoked")
                .await;
            return Err(OAuthError::ExpiredRefreshToken);
        }
        if !client
            .refresh_token_policy
            .allows_refresh(grant.created_at, grant.last_used_at, now)
        {
            return Err(OAuthError::ExpiredRefreshToken);
        }
        // Narrowing is allowed, widening is not; the refresh token keeps the original scope.
        let scope = match requested_scope {
            None => grant.scope.clone(),
            Some(text) => match Scope::parse(text) {
                Some(s) if !s.is_empty() && s.is_subset(&grant.scope) => s,
                _ => return Err(OAuthError::InvalidScope),
            },
        };
        let user = self.active_user(&grant.user_id).await?;

        let (access_token, access_record) = self.mint_access_token(&client, grant, &scope, now);
        let successor = client
            .rotates()
            .then(|| mint_refresh_token(&self.config.server_key, self.rng.as_ref(), &grant.id));
        let response = self.token_response(
            &client,
            &user,
            &scope,
            access_token,
            successor,
            now,
            creds.secret.as_ref(),
        );
        let sealed_successor = (client.rotates() && client.refresh_retry_window_secs > 0)
            .then(|| {
                seal_response(
                    &self.config.server_key,
                    self.rng.as_ref(),
                    &response,
                    &presented_hash,
                )
            })
            .flatten();
        let commit = RefreshCommit {
            presented_hash,
            grant_id: grant.id.clone(),
            successor_hash: response
                .refresh_token
                .as_ref()
                .map(|t| secret_hash(t.expose_secret())),
            sealed_successor,
            access_token: access_record,
            now,
        };
        match self
            .store
            .commit_refresh(&commit)
            .await
            .map_err(store_failure)?
        {
            RefreshOutcome::Committed => {
                let kind = if client.rotates() {
                    EventKind::Rotated
                } else {
                    EventKind::Refreshed
                };
                self.record(kind, grant, "").await;
                Ok(response)
            }
            RefreshOutcome::Stale => self.lost_refresh_race(&client, &presented_hash, now).await,
        }
    }

    /// The presented token changed between our read and our conditional update: a concurrent
    /// refresh of the same token won (or the grant was revoked). Exactly one state change has
    /// happened; inside the retry window the loser gets the winner's pair, otherwise Salesforce's
    /// "already being processed". Never a revocation: a benign race must not log the user out.
    async fn lost_refresh_race(
        &self,
        client: &Client,
        presented_hash: &Hash,
        now: Timestamp,
    ) -> Result<TokenResponse, OAuthError> {
        let view = self
            .store
            .refresh_token(presented_hash)
            .await
            .map_err(store_failure)?;
        let Some(view) = view.filter(|v| v.grant.revoked_at.is_none() && client.rotates()) else {
            return Err(OAuthError::ExpiredRefreshToken);
        };
        if let Some(response) = self.replay_within_window(client, &view, now) {
            self.record(EventKind::RetryReplayed, &view.grant, "concurrent")
                .await;
            return Ok(response);
        }
        self.record(EventKind::ConcurrentRefreshRefused, &view.grant, "")
            .await;
        Err(OAuthError::TokenRequestInProgress)
    }

    /// The successor pair again, if this rotated-out token is the immediately previous one, its
    /// successor is unused, and the client's retry window has not passed.
    fn replay_within_window(
        &self,
        client: &Client,
        view: &RefreshTokenView,
        now: Timestamp,
    ) -> Option<TokenResponse> {
        let used_at = view.token.used_at?;
        let window = client.refresh_retry_window_secs;
        let inside = client.rotates() && window > 0 && now < used_at.plus_secs(window);
        if !inside || !view.successor_unused {
            return None;
        }
        let sealed = view.token.sealed_successor.as_ref()?;
        unseal_response(&self.config.server_key, sealed, &view.token.token_hash)
    }

    /// A refresh token with no row: garbage, a forgery, or a genuine token whose row is gone
    /// (rotated out long ago, or its family purged). Only a token carrying a valid signature of
    /// a live family of this rotating client revokes that family.
    async fn unknown_refresh_token(&self, client: &Client, value: &str) -> Result<(), OAuthError> {
        let Some(grant_id) = signed_grant_id(&self.config.server_key, value) else {
            return Ok(());
        };
        let grant = self.store.grant(grant_id).await.map_err(store_failure)?;
        let Some(grant) = grant.filter(|g| g.client_id == client.client_id) else {
            return Ok(());
        };
        if grant.revoked_at.is_none() && client.rotates() {
            self.store
                .revoke_grant(&grant.id, self.clock.now())
                .await
                .map_err(store_failure)?;
            self.record(
                EventKind::ReuseDetected,
                &grant,
                "family revoked (old generation)",
            )
            .await;
        } else if client.rotates() {
            self.record(EventKind::ReuseDetected, &grant, "family already revoked")
                .await;
        }
        Ok(())
    }

    /// Issues tokens outside any flow, for bootstrap and load tests (`tessera admin token mint`).
    pub async fn mint_for(
        &self,
        client_id: &str,
        username: &str,
        scope: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self
            .store
            .client_by_id(client_id)
            .await
            .map_err(store_failure)?
            .ok_or(OAuthError::InvalidClientId)?;
        let user = self
            .store
            .user_by_username(username)
            .await
            .map_err(store_failure)?
            .ok_or(OAuthError::InvalidRequest("unknown username"))?;
        if user.disabled {
            return Err(OAuthError::InactiveUser);
        }
        let scope = match Scope::parse(scope) {
            Some(s) if s.is_empty() => client.scopes.clone(),
            Some(s) if s.is_subset(&client.scopes) => s,
            _ => return Err(OAuthError::InvalidScope),
        };
        self.issue_new_grant(&client, &user, &scope, None, true, None)
            .await
    }

    async fn active_user(&self, user_id: &str) -> Result<User, OAuthError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await
            .map_err(store_failure)?;
        match user {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(OAuthError::InactiveUser),
        }
    }

    async fn issue_new_grant(
        &self,
        client: &Client,
        user: &User,
        scope: &Scope,
        code_hash: Option<Hash>,
        may_issue_refresh: bool,
        presented_secret: Option<&ClientSecret>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
        let issue_refresh = may_issue_refresh && scope.allows_refresh_token();
        let grant = Grant {
            id: random_token(self.rng.as_ref(), 18),
            client_id: client.client_id.clone(),
            user_id: user.id.clone(),
            org_id: user.org_id.clone(),
            scope: scope.clone(),
            created_at: now,
            last_used_at: now,
            revoked_at: None,
            has_refresh_token: issue_refresh,
        };
        let refresh_token = issue_refresh
            .then(|| mint_refresh_token(&self.config.server_key, self.rng.as_ref(), &grant.id));
        let (access_token, access_record) = self.mint_access_token(client, &grant, scope, now);
        let issuance = Issuance {
            grant,
            refresh_token_hash: refresh_token
                .as_ref()
                .map(|t| secret_hash(t.expose_secret())),
            access_token: access_record,
            code_hash,
            max_live_grants: self.config.max_live_grants,
        };
        let evicted = self.store.issue(&issuance).await.map_err(store_failure)?;
        self.record(EventKind::Issued, &issuance.grant, "").await;
        for grant_id in evicted {
            let event_grant = Grant {
                id: grant_id,
                ..issuance.grant.clone()
            };
            self.record(EventKind::Revoked, &event_grant, "approval limit")
                .await;
        }
        Ok(self.token_response(
            client,
            user,
            scope,
            access_token,
            refresh_token,
            now,
            presented_secret,
        ))
    }

    fn mint_access_token(
        &self,
        client: &Client,
        grant: &Grant,
        scope: &Scope,
        now: Timestamp,
    ) -> (AccessToken, AccessTokenRecord) {
        // `<15-char org id>!<random>`, as Salesforce's.
        let org15 = &grant.org_id[..grant.org_id.len().min(15)];
        let token = AccessToken::new(format!(
            "{org15}!{}",
            random_token(self.rng.as_ref(), TOKEN_BYTES)
        ));
        let record = AccessTokenRecord {
            token_hash: secret_hash(token.expose_secret()),
            grant_id: grant.id.clone(),
            client_id: client.client_id.clone(),
            user_id: grant.user_id.clone(),
            org_id: grant.org_id.clone(),
            scope: scope.clone(),
            issued_at: now,
            expires_at: now.plus_secs(client.access_token_ttl_secs),
            revoked_at: None,
        };
        (token, record)
    }

    #[allow(clippy::too_many_arguments)]
    fn token_response(
        &self,
        client: &Client,
        user: &User,
        scope: &Scope,
        access_token: AccessToken,
        refresh_token: Option<RefreshToken>,
        now: Timestamp,
        presented_secret: Option<&ClientSecret>,
    ) -> TokenResponse {
        let id = self.identity_url(&user.org_id, &user.id);
        let issued_at = now.millis().to_string();
        // Keyed by the client secret so that clients can verify it (§2.5). Only hashes of secrets
        // are stored, so where none was presented (public clients, the user-agent flow, minting)
        // a per-client key derived from the server key stands in; nobody can verify it, and no
        // client of those flows does.
        let signature = match presented_secret {
            Some(secret) => {
                crypto::token_signature(secret.expose_secret().as_bytes(), &id, &issued_at)
            }
            None => {
                let key = self
                    .config
                    .server_key
                    .mac("signature", client.client_id.as_bytes());
                crypto::token_signature(&key, &id, &issued_at)
            }
        };
        TokenResponse {
            access_token,
            refresh_token,
            signature,
            scope: scope.to_string(),
            instance_url: self.config.issuer.clone(),
            id,
            token_type: TokenType::Bearer,
            issued_at,
            expires_in: self
                .config
                .emit_expires_in
                .then_some(client.access_token_ttl_secs),
        }
    }

    // ---------------------------------------------------------------- resource server

    /// Validates a bearer access token for the REST API or identity endpoints.
    pub async fn authenticate_access_token(
        &self,
        token: &str,
    ) -> Result<AccessTokenRecord, SessionError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.contains('!') {
            return Err(SessionError::InvalidSession);
        }
        let record = self
            .store
            .access_token(&secret_hash(token))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "storage failure while validating an access token");
                SessionError::InvalidSession
            })?
            .ok_or(SessionError::InvalidSession)?;
        if record.revoked_at.is_some() || self.clock.now() >= record.expires_at {
            return Err(SessionError::InvalidSession);
        }
        Ok(record)
    }
}

/// An Argon2id hash of a random value nobody knows, verified against when a username does not
/// exist so that both paths cost the same.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3kzV0f3cYvxHAWW2gQOZ2Dc9zxcqqRKFcW4SoaSKWbo";
