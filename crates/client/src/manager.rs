//! [`TokenManager`]: one credential, kept valid.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use tessera_proto::{AccessToken, ExposeSecret, IdToken, RefreshToken};

use crate::clock::{Clock, SystemClock};
use crate::credential::{rejected_reason, Credential, Decision, InFlight};
use crate::dpop::{DpopKey, NonceCache, Prover};
use crate::error::{ClientError, ReauthReason, StoreError};
use crate::id_token::{Expected, IdTokenClaims, IdTokenError, JwksCache};
use crate::oauth::{self, CodeGrant, RefreshFailure, Revocation, TokenCheck, TokenReply};
use crate::store::{Protection, StoreLock, TokenStore};

/// Retries of the token endpoint after the first attempt (so 3 attempts at most).
const MAX_RETRIES: usize = 2;
/// Total time slept between attempts, at most. The refresh lock is held meanwhile.
const MAX_TOTAL_BACKOFF: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is not waited for here: the caller gets a
/// [`ClientError::Transient`] carrying it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// "Token request is already being processed" is retried only this long after the first
/// attempt. A rotating server with no retry window answers it for 2 s after a competing
/// refresh committed; past that, the same refresh token is taken for reuse and its whole family
/// revoked. Against a non-rotating server (Salesforce's default) the retry succeeds.
const IN_PROGRESS_RETRY_BUDGET: Duration = Duration::from_millis(1000);
/// After a proactive refresh failed transiently, the still-valid token is handed out without
/// trying again for this long (or the server's `Retry-After`, if longer): otherwise every call
/// inside the refresh margin would queue on the lock for a round of retries against a server
/// that is down.
const PROACTIVE_RETRY_PAUSE: Duration = Duration::from_secs(10);

/// A callback for [`RefreshEvent`]s (metrics, logs, a UI).
pub type EventSink = Arc<dyn Fn(&RefreshEvent) + Send + Sync>;

/// How the token manager talks, tells time and reports.
#[derive(Clone)]
pub struct ManagerConfig {
    /// Used for the token and revocation endpoints and by [`crate::AuthorizedClient`]. It should not
    /// follow redirects ([`crate::default_http_client`] does not).
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    /// The provider's session timeout, for token responses without `expires_in` (Salesforce:
    /// an org setting, 2 h by default). `None`: such tokens get their expiry from the issuer's
    /// introspection endpoint when the client is confidential, else are refreshed only when
    /// refused.
    pub session_timeout: Option<Duration>,
    /// Called after every refresh attempt with what happened (never with a token).
    pub on_event: Option<EventSink>,
    /// DPoP (RFC 9449): a credential stored by [`TokenManager::login_with`] without a key gets
    /// a new P-256 key, and its token requests prove possession of it. A credential that has a
    /// key uses it whatever this says; one the server bound (`token_type: DPoP`) is never sent
    /// as Bearer.
    pub dpop: bool,
}

impl ManagerConfig {
    /// The wall clock, no session timeout, no event callback.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            clock: Arc::new(SystemClock),
            session_timeout: None,
            on_event: None,
            dpop: false,
        }
    }
}

impl std::fmt::Debug for ManagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerConfig")
            .field("session_timeout", &self.session_timeout)
            .field("on_event", &self.on_event.is_some())
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

/// What started a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTrigger {
    /// The access token is inside its refresh margin or expired.
    Proactive,
    /// The resource server refused the access token.
    Rejected,
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// This process refreshed at the token endpoint.
    Refreshed,
    /// Another process (or task) had refreshed already; its token was taken from the store.
    Adopted,
    /// No new token; see the error (or the still-valid token was handed out).
    Failed,
}

/// One refresh, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshEvent {
    pub outcome: RefreshOutcome,
    /// The server sent a new refresh token.
    pub rotated: bool,
    /// Time spent waiting for the in-process and cross-process refresh locks.
    pub lock_wait: Duration,
    /// Requests made to the token endpoint (0 when none was needed or allowed).
    pub attempts: u32,
    pub trigger: RefreshTrigger,
    /// Why it failed, as text for logs (never a token).
    pub error: Option<String>,
}

/// Who is logged in, where, and until when; never a token value.
#[derive(Debug, Clone)]
pub struct Status {
    pub issuer: String,
    pub client_id: String,
    /// The user's name, as the server gave it at login.
    pub username: Option<String>,
    /// Salesforce's identity URL (`…/id/<org>/<user>`).
    pub identity_url: Option<String>,
    pub instance_url: String,
    pub scope: String,
    /// Server time, ms since the epoch.
    pub issued_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Validity left in server time (negative: expired); `None` when the expiry is unknown.
    pub remaining_ms: Option<i64>,
    pub clock_offset_ms: i64,
    pub has_refresh_token: bool,
    /// A refresh was started and not recorded as finished (a crash or a lost response).
    pub refresh_in_flight: bool,
    /// Set when the server refused the refresh token: log in again.
    pub reauth_required: Option<ReauthReason>,
    pub protection: Protection,
    pub protection_note: Option<String>,
    /// Who logged in, from the verified OpenID Connect ID token (with the `openid` scope).
    pub identity: Option<IdTokenClaims>,
    /// The thumbprint (RFC 7638) of the credential's DPoP key, if it has one; never the key.
    pub dpop_thumbprint: Option<String>,
    /// The server bound the tokens to that key (`token_type: DPoP`).
    pub dpop_bound: bool,
}

/// 9999-12-31T23:59:59Z, the last instant an HTTP date can show.
const LAST_HTTP_DATE_MS: i64 = 253_402_300_799_000;

fn http_date(ms: i64) -> String {
    // Clamped: `issued_at` and the expiry are whatever the server sent, and `httpdate`
    // panics past the year 9999.
    let ms = ms.clamp(0, LAST_HTTP_DATE_MS);
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    httpdate::fmt_http_date(time)
}

fn human_duration(ms: i64) -> String {
    let secs = ms / 1000;
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only a session that can still be refreshed is "refreshed automatically"; without a
        // refresh token, or once the server refused it, the next step is a login.
        let refreshable = self.has_refresh_token && self.reauth_required.is_none();
        match (&self.identity, &self.username) {
            (Some(claims), username) => {
                let who = claims
                    .display_name()
                    .or_else(|| username.clone())
                    .unwrap_or_else(|| "unnamed".to_owned());
                writeln!(f, "user      {who} ({})", claims.user_id())?
            }
            (None, Some(username)) => writeln!(f, "user      {username}")?,
            (None, None) => writeln!(
                f,
                "user      unknown (not recorded at login; log in again to see it)"
            )?,
        }
        if let Some(identity_url) = &self.identity_url {
            writeln!(f, "identity  {identity_url}")?;
        }
        if let Some(claims) = &self.identity {
            writeln!(
                f,
                "id token  verified, issued {}, expires {}",
                http_date(claims.iat.saturating_mul(1000)),
                http_date(claims.exp.saturating_mul(1000))
            )?;
        }
        writeln!(f, "client    {}", self.client_id)?;
        writeln!(f, "issuer    {}", self.issuer)?;
        writeln!(f, "instance  {}", self.instance_url)?;
        writeln!(f, "scope     {}", self.scope)?;
        writeln!(f, "issued    {}", http_date(self.issued_at_ms))?;
        match (self.expires_at_ms, self.remaining_ms, refreshable) {
            (Some(at), Some(left), true) if left > 0 => writeln!(
                f,
                "expires   {} (in {}; refreshed automatically)",
                http_date(at),
                human_duration(left)
            )?,
            (Some(at), Some(left), false) if left > 0 => writeln!(
                f,
                "expires   {} (in {}; then log in again)",
                http_date(at),
                human_duration(left)
            )?,
            (Some(at), _, true) => writeln!(
                f,
                "expires   {} (expired; refreshed at next use)",
                http_date(at)
            )?,
            (Some(at), _, false) => {
                writeln!(f, "expires   {} (expired: log in again)", http_date(at))?
            }
            (None, _, true) => writeln!(
                f,
                "expires   unknown (the server sends no lifetime; refreshed when refused)"
            )?,
            (None, _, false) => writeln!(
                f,
                "expires   unknown (the server sends no lifetime; log in again when refused)"
            )?,
        }
        // A stored token the server has refused is no longer a way to stay logged in: the
        // line says so rather than "stored" above the state line that says to log in again.
        let refresh = match (self.has_refresh_token, &self.reauth_required) {
            (true, None) => "refresh token stored",
            (true, Some(_)) => "the stored refresh token was refused: a login is needed",
            (false, _) => "no refresh token: log in again when the session ends",
        };
        writeln!(f, "refresh   {refresh}")?;
        match (&self.dpop_thumbprint, self.dpop_bound) {
            (Some(jkt), true) => writeln!(f, "dpop      bound to key {jkt}")?,
            (Some(jkt), false) => writeln!(
                f,
                "dpop      key {jkt} (proofs sent; the server did not bind the tokens)"
            )?,
            (None, true) => writeln!(f, "dpop      bound, but the key is lost: log in again")?,
            (None, false) => {}
        }
        write!(f, "storage   {}", self.protection)?;
        if let Some(note) = &self.protection_note {
            write!(f, "\nnote      {note}")?;
        }
        if self.refresh_in_flight {
            write!(f, "\nnote      an interrupted refresh will be retried")?;
        }
        if let Some(reason) = &self.reauth_required {
            write!(f, "\nstate     login needed (tessera login): {reason}")?;
        }
        Ok(())
    }
}

/// The result of one logout step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutStep {
    Done,
    /// The server no longer knew the token (already revoked, expired, or revoked with its
    /// grant).
    AlreadyInvalid,
    Skipped(String),
    Failed(String),
}

impl std::fmt::Display for LogoutStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done => f.write_str("done"),
            Self::AlreadyInvalid => f.write_str("already invalid at the server"),
            Self::Skipped(why) => write!(f, "skipped: {why}"),
            Self::Failed(why) => write!(f, "FAILED: {why}"),
        }
    }
}

/// What logout did, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReport {
    /// Revoking the refresh token, which revokes its whole grant at Salesforce and Tessera.
    pub refresh_token: LogoutStep,
    pub access_token: LogoutStep,
    /// Deleting the local encrypted copy.
    pub local_copy: LogoutStep,
}

impl LogoutReport {
    /// Whether nothing failed: the local copy is gone and the server holds nothing usable.
    pub fn is_complete(&self) -> bool {
        ![&self.refresh_token, &self.access_token, &self.local_copy]
            .iter()
            .any(|s| matches!(s, LogoutStep::Failed(_)))
    }
}

impl std::fmt::Display for LogoutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "revoke refresh token  {}", self.refresh_token)?;
        writeln!(f, "revoke access token   {}", self.access_token)?;
        write!(f, "delete local copy     {}", self.local_copy)
    }
}

fn revocation_step(result: Revocation) -> LogoutStep {
    match result {
        Revocation::Revoked => LogoutStep::Done,
        Revocation::AlreadyInvalid => LogoutStep::AlreadyInvalid,
        Revocation::Failed(why) => LogoutStep::Failed(why),
    }
}

/// What [`TokenManager::refresh_locked`] observed, for the event.
struct Attempt {
    outcome: RefreshOutcome,
    rotated: bool,
    attempts: u32,
}

/// Hands out a valid access token for one stored credential, refreshing it when needed; see
/// the crate documentation for the guarantees.
pub struct TokenManager {
    store: Arc<dyn TokenStore>,
    config: ManagerConfig,
    /// The last credential read or written, for the fast path (no file read, no lock).
    cache: Mutex<Option<Credential>>,
    /// One refresh at a time in this process; the store's lock does it across processes.
    gate: tokio::sync::Mutex<()>,
    /// Local time before which no proactive refresh is tried again (see
    /// [`PROACTIVE_RETRY_PAUSE`]).
    pause_until_ms: AtomicI64,
    /// The issuer's signing keys, for ID tokens.
    jwks: JwksCache,
    /// The last DPoP nonce each origin sent for this credential.
    nonces: Arc<NonceCache>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("protection", &self.store.protection())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    pub fn new(store: Arc<dyn TokenStore>, config: ManagerConfig) -> Self {
        Self {
            store,
            config,
            cache: Mutex::new(None),
            gate: tokio::sync::Mutex::new(()),
            pause_until_ms: AtomicI64::new(i64::MIN),
            jwks: JwksCache::default(),
            nonces: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// `clock_offset_ms`: the server's clock minus ours, as last learnt.
    fn prover(&self, key: &DpopKey, clock_offset_ms: i64) -> Prover {
        Prover {
            key: key.clone(),
            nonces: self.nonces.clone(),
            clock: self.config.clock.clone(),
            clock_offset_ms,
        }
    }

    /// What signs the proofs of `credential`'s token requests: its key, if it has one (a
    /// server that allows DPoP binds the tokens to it). A bound credential without its key is
    /// [`ReauthReason::DpopKeyLost`].
    fn token_prover(&self, credential: &Credential) -> Result<Option<Prover>, ClientError> {
        if let Some(reason) = credential.lost_dpop_key() {
            return Err(ClientError::ReauthRequired { reason });
        }
        Ok(credential
            .dpop_key
            .as_ref()
            .map(|key| self.prover(key, credential.clock_offset_ms)))
    }

    /// What signs the proofs of `credential`'s API calls: only for tokens the server bound
    /// (`token_type: DPoP`); an unbound token goes as Bearer.
    pub(crate) fn resource_prover(
        &self,
        credential: &Credential,
    ) -> Result<Option<Prover>, ClientError> {
        if !credential.dpop_bound {
            return Ok(None);
        }
        self.token_prover(credential)
    }

    fn cached(&self) -> MutexGuard<'_, Option<Credential>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, credential: &Credential) {
        *self.cached() = Some(credential.clone());
    }

    fn forget(&self) {
        *self.cached() = None;
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn TokenStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|e| StoreError::io("(token store task)", std::io::Error::other(e)))?
    }

    async fn load(&self) -> Result<Option<Credential>, StoreError> {
        self.blocking(|s| s.load()).await
    }

    async fn save(
        &self,
        expected: Option<&RefreshToken>,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        let expected = expected.cloned();
        let credential = credential.clone();
        self.blocking(move |s| s.save(expected.as_ref(), &credential))
            .await
    }

    async fn lock(&self) -> Result<StoreLock, StoreError> {
        self.blocking(|s| s.lock()).await
    }

    /// Whether this credential's access token may be handed out without a refresh: the rule
    /// says so, or it has not expired yet and there is nothing to refresh with or a failed
    /// refresh is pausing.
    fn usable(&self, credential: &Credential, now: i64) -> bool {
        match credential.decision(now) {
            Decision::Use => true,
            Decision::Refresh => {
                !credential.is_expired(now)
                    && (credential.refresh_token.is_none()
                        || now < self.pause_until_ms.load(Ordering::Relaxed))
            }
            Decision::Dead(_) => false,
        }
    }

    /// For an access token whose expiry nothing gave (no `expires_in`, no session timeout): its
    /// `exp` from the introspection endpoint, asked once after a login or a refresh, never per
    /// call. `None` when not applicable or on any failure (refresh then stays reactive).
    async fn introspected_expiry(&self, credential: &Credential) -> Option<i64> {
        if credential.expires_at_ms.is_some() || self.config.session_timeout.is_some() {
            return None;
        }
        oauth::introspected_expiry(&self.config.http, credential).await
    }

    /// Who the server says the credential's user is, asked once at login (so that `status`
    /// names a person, not an identity URL); `None` when it does not say, logged at debug level.
    async fn username_of(&self, credential: &Credential) -> Option<String> {
        let check = oauth::check_access_token(
            &self.config.http,
            credential,
            &credential.access_token,
            self.resource_prover(credential).ok().flatten().as_ref(),
        )
        .await;
        match check {
            Ok(TokenCheck::Accepted { username }) => username,
            Ok(TokenCheck::Refused) => {
                tracing::debug!("the server refused the new access token when asked who it is");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "the server could not say who logged in");
                None
            }
        }
    }

    /// `token` verified for `credential`'s issuer and client: signature against the issuer's
    /// JWKS, then the claims ([`crate::id_token`]); `nonce` is what the login sent, `previous`
    /// the claims of the ID token a refreshed one replaces.
    async fn verify_id_token(
        &self,
        credential: &Credential,
        token: &IdToken,
        nonce: Option<&str>,
        previous: Option<&IdTokenClaims>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let now = self.now();
        let expected = Expected {
            issuer: &credential.endpoints.issuer,
            client_id: &credential.client_id,
            nonce,
            previous,
            server_now_ms: credential.server_now_ms(now),
        };
        let jwks_uri = credential.endpoints.jwks();
        self.jwks
            .verify(&self.config.http, &jwks_uri, token, &expected, now)
            .await
    }

    /// The credential as last seen (cache, else the store), without refreshing.
    pub(crate) async fn current(&self) -> Result<Credential, ClientError> {
        if let Some(c) = self.cached().clone() {
            return Ok(c);
        }
        let stored = self.load().await?.ok_or(ClientError::NotLoggedIn)?;
        self.remember(&stored);
        Ok(stored)
    }

    /// Exchanges an authorization code for tokens, as a credential to pass to
    /// [`Self::login_with`] (or [`Self::login_with_nonce`]). With [`ManagerConfig::dpop`] (or
    /// [`CodeGrant::dpop_key`]), a P-256 key signs the request's proof (made once more with
    /// the server's nonce if it asks for one) and is kept in the credential, so the tokens are
    /// bound from the start.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(&self, grant: CodeGrant) -> Result<Credential, ClientError> {
        let key = match grant.dpop_key.clone() {
            Some(key) => Some(key),
            None if self.config.dpop => Some(DpopKey::generate()?),
            None => None,
        };
        // No server time learnt yet: the local clock stands in for the proof's `iat`.
        let prover = key.as_ref().map(|key| self.prover(key, 0));
        let reply = oauth::exchange_code(&self.config.http, &grant, prover.as_ref())
            .await
            .map_err(|failure| match failure {
                // Not a refresh token's refusal: the code, the verifier or the client is wrong.
                RefreshFailure::Rejected { error, description } => {
                    ClientError::CodeExchangeRefused { error, description }
                }
                other => other.into_client_error(),
            })?;
        let mut credential = Credential::from_token_response(
            grant.endpoints,
            grant.client_id,
            grant.client_secret,
            &reply.response,
            reply.server_date,
            self.now(),
            self.config.session_timeout,
        );
        credential.dpop_key = key;
        Ok(credential)
    }

    /// Stores a fresh credential (after a code exchange), replacing whatever was stored, and
    /// clears any dead or in-flight marker.
    ///
    /// An ID token in it is verified first ([`Self::login_with_nonce`], without a nonce to
    /// compare); one that does not verify refuses the login ([`ClientError::IdToken`]).
    pub async fn login_with(&self, credential: Credential) -> Result<(), ClientError> {
        self.login(credential, None).await
    }

    /// [`Self::login_with`] for a login whose authorization request sent `nonce` (OpenID
    /// Connect): the ID token must carry it. The token's signature is checked against the
    /// issuer's JWKS, then its `iss`, `aud` (and `azp`), `exp`, `iat` and `nonce`. A token that
    /// does not verify refuses the login: it may come from another issuer (a mix-up), another
    /// login (a replay), or a forger, and nothing of this login is stored.
    pub async fn login_with_nonce(
        &self,
        credential: Credential,
        nonce: &str,
    ) -> Result<(), ClientError> {
        self.login(credential, Some(nonce)).await
    }

    #[tracing::instrument(skip_all)]
    async fn login(
        &self,
        mut credential: Credential,
        nonce: Option<&str>,
    ) -> Result<(), ClientError> {
        if self.config.dpop && credential.dpop_key.is_none() && !credential.dpop_bound {
            // The next token request (the first refresh) proves possession of it, and a server
            // that supports DPoP binds the tokens it issues then.
            credential.dpop_key = Some(DpopKey::generate()?);
        }
        if let Some(reason) = credential.lost_dpop_key() {
            return Err(ClientError::ReauthRequired { reason });
        }
        let id_token_claims = match &credential.id_token {
            Some(token) => Some(
                self.verify_id_token(&credential, token, nonce, None)
                    .await?,
            ),
            None => None,
        };
        let expires_at_ms = self
            .introspected_expiry(&credential)
            .await
            .or(credential.expires_at_ms);
        // A verified ID token names the user; otherwise the server is asked.
        let named = id_token_claims
            .as_ref()
            .and_then(|c| c.preferred_username.clone().or_else(|| c.email.clone()));
        let username = match credential.username.clone().or(named) {
            Some(username) => Some(username),
            None => self.username_of(&credential).await,
        };
        let _gate = self.gate.lock().await;
        let _lock = self.lock().await?;
        let current = match self.load().await {
            Ok(c) => c,
            Err(e) if e.is_unreadable() => {
                tracing::warn!(error = %e, "replacing an unreadable stored credential");
                self.blocking(|s| s.delete()).await?;
                None
            }
            Err(e) => return Err(e.into()),
        };
        let credential = Credential {
            expires_at_ms,
            username,
            id_token_claims,
            in_flight: None,
            dead: None,
            ..credential
        };
        let expected = current.and_then(|c| c.refresh_token);
        self.save(expected.as_ref(), &credential).await?;
        self.remember(&credential);
        tracing::info!(client_id = %credential.client_id, "credential stored");
        Ok(())
    }

    /// A valid access token: the stored one, or a refreshed one when its remaining lifetime
    /// (server time) is below min(60 s, 10 % of its lifetime).
    ///
    /// A proactive refresh that fails transiently while the current token is still valid
    /// hands out the current token (the failure is reported as an event).
    #[tracing::instrument(skip_all)]
    pub async fn access_token(&self) -> Result<AccessToken, ClientError> {
        let now = self.now();
        if let Some(c) = self.cached().as_ref().filter(|c| self.usable(c, now)) {
            return Ok(c.access_token.clone());
        }
        let stored = self.load().await?.ok_or(ClientError::NotLoggedIn)?;
        if self.usable(&stored, now) {
            self.remember(&stored);
            return Ok(stored.access_token);
        }
        if let Decision::Dead(reason) = stored.decision(now) {
            return Err(ClientError::ReauthRequired { reason });
        }
        self.refresh(RefreshTrigger::Proactive, None).await
    }

    /// An access token the server accepts now, as it said when asked (its introspection
    /// endpoint for a confidential client, else the identity URL): the token [`Self::access_token`]
    /// gives, or, when the server refuses it (revoked early: a logout elsewhere, an
    /// administrator), a refreshed one, asked about again. One or two requests more than
    /// [`Self::access_token`], for callers that must not hand out a dead token.
    #[tracing::instrument(skip_all)]
    pub async fn verified_access_token(&self) -> Result<AccessToken, ClientError> {
        let token = self.access_token().await?;
        if self.server_accepts(&token).await? {
            return Ok(token);
        }
        tracing::info!("the server refused the access token; refreshing");
        let fresh = self.refresh_after_rejection(&token).await?;
        if self.server_accepts(&fresh).await? {
            return Ok(fresh);
        }
        Err(ClientError::Protocol(
            "the server refuses the access token even right after a refresh".into(),
        ))
    }

    async fn server_accepts(&self, token: &AccessToken) -> Result<bool, ClientError> {
        let credential = self.current().await?;
        let prover = self.resource_prover(&credential)?;
        let check =
            oauth::check_access_token(&self.config.http, &credential, token, prover.as_ref())
                .await?;
        Ok(matches!(check, TokenCheck::Accepted { .. }))
    }

    /// After the resource server refused `rejected`: the store's token if it is another one
    /// (someone refreshed meanwhile), else a refresh.
    #[tracing::instrument(skip_all)]
    pub async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, ClientError> {
        self.refresh(RefreshTrigger::Rejected, Some(rejected)).await
    }

    /// One refresh under both locks, with its event.
    #[tracing::instrument(skip_all, fields(trigger = ?trigger))]
    async fn refresh(
        &self,
        trigger: RefreshTrigger,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, ClientError> {
        let waiting = Instant::now();
        let _gate = self.gate.lock().await;
        let _lock = self.lock().await?;
        let lock_wait = waiting.elapsed();
        let mut attempt = Attempt {
            outcome: RefreshOutcome::Failed,
            rotated: false,
            attempts: 0,
        };
        let result = self.refresh_locked(rejected, &mut attempt).await;
        let error = result.as_ref().err().map(ToString::to_string);
        tracing::info!(
            outcome = ?attempt.outcome,
            rotated = attempt.rotated,
            lock_wait_ms = lock_wait.as_millis() as u64,
            attempts = attempt.attempts,
            error = error.as_deref().unwrap_or(""),
            "token refresh"
        );
        if let Some(on_event) = &self.config.on_event {
            on_event(&RefreshEvent {
                outcome: attempt.outcome,
                rotated: attempt.rotated,
                lock_wait,
                attempts: attempt.attempts,
                trigger,
                error,
            });
        }
        result
    }

    async fn refresh_locked(
        &self,
        rejected: Option<&AccessToken>,
        attempt: &mut Attempt,
    ) -> Result<AccessToken, ClientError> {
        let Some(credential) = self.load().await? else {
            self.forget();
            return Err(ClientError::NotLoggedIn);
        };
        let now = self.now();
        if let Decision::Dead(reason) = credential.decision(now) {
            self.forget();
            return Err(ClientError::ReauthRequired { reason });
        }
        // Under the lock, the store may hold what another process or task just refreshed.
        let adopt = match rejected {
            None => self.usable(&credential, now),
            Some(refused) => credential.access_token != *refused && self.usable(&credential, now),
        };
        if adopt {
            self.remember(&credential);
            attempt.outcome = RefreshOutcome::Adopted;
            return Ok(credential.access_token);
        }
        let Some(refresh_token) = credential.refresh_token.clone() else {
            return Err(ClientError::ReauthRequired {
                reason: ReauthReason::NoRefreshToken,
            });
        };

        // Before the marker: a bound credential without its key stops here, with nothing to
        // clean up (the decision above has already said so).
        let prover = self.token_prover(&credential)?;

        // Durably note the attempt first: if this process dies or the answer is lost, the next
        // one retries with the same token (the server's retry window returns the same
        // successor) and knows how long ago it started.
        let prior = credential.pending_refresh().cloned();
        let marked = Credential {
            in_flight: Some(InFlight::new(
                &refresh_token,
                prior.as_ref().map_or(now, |p| p.started_at_ms),
            )),
            ..credential.clone()
        };
        self.save(Some(&refresh_token), &marked).await?;

        let (result, attempts) = self
            .post_refresh(&marked, &refresh_token, prover.as_ref())
            .await;
        attempt.attempts = attempts;
        match result {
            Ok(reply) => {
                let next = marked.refreshed(
                    &reply.response,
                    reply.server_date,
                    self.now(),
                    self.config.session_timeout,
                );
                attempt.rotated = reply
                    .response
                    .refresh_token
                    .as_ref()
                    .is_some_and(|new| *new != refresh_token);
                // The new refresh token is on disk before the access token leaves this
                // function; if this write fails, the marker still names the old token, whose
                // retry window gives the same pair again.
                self.save(Some(&refresh_token), &next).await?;
                let mut next = next;
                // What follows asks the server again (its JWKS, its introspection endpoint),
                // so it comes after the new refresh token is on disk.
                let mut learnt = false;
                if let Some(fresh) = &reply.response.id_token {
                    learnt |= self.adopt_refreshed_id_token(&mut next, fresh).await;
                }
                if let Some(exp) = self.introspected_expiry(&next).await {
                    next.expires_at_ms = Some(exp);
                    learnt = true;
                }
                if learnt {
                    if let Err(e) = self.save(next.refresh_token.as_ref(), &next).await {
                        tracing::warn!(error = %e, "could not store what was learnt after a refresh");
                    }
                }
                self.remember(&next);
                self.pause_until_ms.store(i64::MIN, Ordering::Relaxed);
                attempt.outcome = RefreshOutcome::Refreshed;
                Ok(next.access_token)
            }
            Err(failure) => {
                self.after_failure(
                    &credential,
                    &refresh_token,
                    prior.as_ref(),
                    failure,
                    rejected,
                    attempt,
                )
                .await
            }
        }
    }

    /// Replaces `credential`'s ID token with `fresh` from a refresh once it verifies, as OpenID
    /// Connect Core §12.2 has it (the same `iss`, `sub`, `aud`, `azp`, `auth_time` as the
    /// login's, `iat` not earlier); whether it did.
    ///
    /// One that does not verify is dropped and logged, and the previous ID token stays: the
    /// access and refresh tokens of the same response are kept, since they came over TLS from
    /// the token endpoint this client already trusts with its refresh token, and refusing them
    /// would lose a rotated refresh token the server has already committed.
    async fn adopt_refreshed_id_token(&self, credential: &mut Credential, fresh: &IdToken) -> bool {
        let previous = credential.id_token_claims.clone();
        match self
            .verify_id_token(credential, fresh, None, previous.as_ref())
            .await
        {
            Ok(claims) => {
                credential.id_token = Some(fresh.clone());
                credential.id_token_claims = Some(claims);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the ID token of a refresh was refused; the previous one is kept");
                false
            }
        }
    }

    async fn after_failure(
        &self,
        credential: &Credential,
        refresh_token: &RefreshToken,
        prior: Option<&InFlight>,
        failure: RefreshFailure,
        rejected: Option<&AccessToken>,
        attempt: &mut Attempt,
    ) -> Result<AccessToken, ClientError> {
        let now = self.now();
        // Someone may have rotated meanwhile (a login, or a process that shares the file but
        // not the lock): their token beats a verdict on ours.
        if let Ok(Some(current)) = self.load().await {
            if current.refresh_token.as_ref() != Some(refresh_token)
                && current.dead.is_none()
                && self.usable(&current, now)
            {
                self.remember(&current);
                attempt.outcome = RefreshOutcome::Adopted;
                return Ok(current.access_token);
            }
        }
        if let Some(reason) = failure.reauth_reason() {
            let reason = match reason {
                ReauthReason::RefreshTokenRejected { description } => {
                    rejected_reason(prior, now, &description)
                }
                other => other,
            };
            // The negative cache: other processes read this and do not ask the server again.
            let dead = Credential {
                in_flight: None,
                dead: Some(reason.clone()),
                ..credential.clone()
            };
            if let Err(e) = self.save(Some(refresh_token), &dead).await {
                tracing::warn!(error = %e, "could not record the dead refresh token");
            }
            self.forget();
            return Err(ClientError::ReauthRequired { reason });
        }
        if !failure.maybe_processed() {
            // The server answered without rotating: put back the marker as it was.
            if let Err(e) = self.save(Some(refresh_token), credential).await {
                tracing::warn!(error = %e, "could not clear the in-flight marker");
            }
        }
        let error = failure.into_client_error();
        if rejected.is_none()
            && matches!(error, ClientError::Transient { .. })
            && !credential.is_expired(now)
        {
            tracing::warn!(error = %error, "refresh failed; the current access token is still valid");
            let pause = match &error {
                ClientError::Transient {
                    retry_after: Some(wait),
                    ..
                } => (*wait).max(PROACTIVE_RETRY_PAUSE),
                _ => PROACTIVE_RETRY_PAUSE,
            };
            self.pause_until_ms
                .store(now + pause.as_millis() as i64, Ordering::Relaxed);
            self.remember(credential);
            return Ok(credential.access_token.clone());
        }
        Err(error)
    }

    /// The refresh request with bounded, jittered retries of transient failures, honouring
    /// `Retry-After` up to [`MAX_RETRY_AFTER`].
    async fn post_refresh(
        &self,
        credential: &Credential,
        refresh_token: &RefreshToken,
        prover: Option<&Prover>,
    ) -> (Result<TokenReply, RefreshFailure>, u32) {
        let attempts = AtomicU32::new(0);
        let first = Instant::now();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(MAX_RETRIES)
            .with_total_delay(Some(MAX_TOTAL_BACKOFF))
            .with_jitter();
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            oauth::refresh_once(&self.config.http, credential, refresh_token, prover).await
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|failure: &RefreshFailure| match failure {
            f if f.is_transient() => true,
            RefreshFailure::InProgress { .. } => first.elapsed() < IN_PROGRESS_RETRY_BUDGET,
            _ => false,
        })
        .adjust(|failure: &RefreshFailure, planned: Option<Duration>| {
            let planned = planned?;
            match failure.retry_after() {
                Some(wait) if wait > MAX_RETRY_AFTER => None,
                Some(wait) => Some(wait.max(planned)),
                None => Some(planned),
            }
        })
        .notify(|failure: &RefreshFailure, wait: Duration| {
            tracing::warn!(failure = ?failure, wait_ms = wait.as_millis() as u64, "refresh failed; retrying");
        })
        .await;
        (result, attempts.load(Ordering::Relaxed))
    }

    /// Who logged in, from the verified OpenID Connect ID token (the login's, or the last
    /// refresh's that verified); `None` without the `openid` scope.
    pub async fn identity(&self) -> Result<Option<IdTokenClaims>, ClientError> {
        Ok(self.current().await?.id_token_claims)
    }

    /// Who is logged in, where, until when, and how it is stored.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let c = self.load().await?.ok_or(ClientError::NotLoggedIn)?;
        let now = self.now();
        Ok(Status {
            issuer: c.endpoints.issuer.clone(),
            client_id: c.client_id.clone(),
            username: c.username.clone(),
            identity_url: c.identity_url.clone(),
            instance_url: c.instance_url.clone(),
            scope: c.scope.clone(),
            issued_at_ms: c.issued_at_ms,
            expires_at_ms: c.expires_at_ms,
            remaining_ms: c.remaining_ms(now),
            clock_offset_ms: c.clock_offset_ms,
            has_refresh_token: c.refresh_token.is_some(),
            refresh_in_flight: c.pending_refresh().is_some(),
            reauth_required: c.dead.clone(),
            protection: self.store.protection(),
            protection_note: self.store.protection_note(),
            identity: c.id_token_claims.clone(),
            dpop_thumbprint: c.dpop_key.as_ref().map(DpopKey::thumbprint),
            dpop_bound: c.dpop_bound,
        })
    }

    /// Revokes the refresh token, then the access token, at the revocation endpoint (best
    /// effort: a failure is reported, not raised), then deletes the local copy.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self) -> LogoutReport {
        let _gate = self.gate.lock().await;
        let lock = self.lock().await;
        self.forget();
        let stored = match &lock {
            Ok(_) => self.load().await,
            Err(e) => Err(StoreError::KeyUnavailable(format!(
                "cannot lock the store: {e}"
            ))),
        };
        let credential = match stored {
            Ok(Some(c)) => c,
            Ok(None) => {
                let nothing = || LogoutStep::Skipped("not logged in".into());
                return LogoutReport {
                    refresh_token: nothing(),
                    access_token: nothing(),
                    local_copy: nothing(),
                };
            }
            Err(e) => {
                let why = format!("the stored credential cannot be read ({e})");
                let local_copy = match self.blocking(|s| s.delete()).await {
                    Ok(()) => LogoutStep::Done,
                    Err(e) => LogoutStep::Failed(e.to_string()),
                };
                return LogoutReport {
                    refresh_token: LogoutStep::Skipped(why.clone()),
                    access_token: LogoutStep::Skipped(why),
                    local_copy,
                };
            }
        };
        let http = &self.config.http;
        let endpoint = credential.endpoints.revocation.as_deref();
        let refresh_token = match (endpoint, &credential.refresh_token) {
            (None, _) => LogoutStep::Skipped("the issuer has no revocation endpoint".into()),
            (_, None) => LogoutStep::Skipped("no refresh token".into()),
            (Some(url), Some(rt)) => {
                revocation_step(oauth::revoke(http, url, &credential, rt.expose_secret()).await)
            }
        };
        let access_token = match endpoint {
            None => LogoutStep::Skipped("the issuer has no revocation endpoint".into()),
            Some(url) => revocation_step(
                oauth::revoke(
                    http,
                    url,
                    &credential,
                    credential.access_token.expose_secret(),
                )
                .await,
            ),
        };
        let local_copy = match self.blocking(|s| s.delete()).await {
            Ok(()) => LogoutStep::Done,
            Err(e) => LogoutStep::Failed(e.to_string()),
        };
        let report = LogoutReport {
            refresh_token,
            access_token,
            local_copy,
        };
        tracing::info!(complete = report.is_complete(), "logout");
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(has_refresh_token: bool, remaining_ms: Option<i64>) -> Status {
        Status {
            issuer: "https://login.example.test".into(),
            client_id: "3MVG9client".into(),
            username: Some("ada@example.com".into()),
            identity_url: Some("https://login.example.test/id/00D/005".into()),
            instance_url: "https://na1.example.test".into(),
            scope: "api id".into(),
            issued_at_ms: 1_800_000_000_000,
            expires_at_ms: remaining_ms.map(|_| 1_800_007_200_000),
            remaining_ms,
            clock_offset_ms: 0,
            has_refresh_token,
            refresh_in_flight: false,
            reauth_required: None,
            protection: Protection::Passphrase,
            protection_note: None,
            identity: None,
            dpop_thumbprint: None,
            dpop_bound: false,
        }
    }

    #[test]
    fn dates_a_server_made_up_are_shown_without_panicking() {
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn status_names_the_user_and_keeps_the_identity_url_apart() {
        let text = status(true, Some(3_600_000)).to_string();
        assert!(text.starts_with("user      ada@example.com\n"), "{text}");
        assert!(text.contains("identity  https://login.example.test/id/00D/005"));
        let unknown = Status {
            username: None,
            ..status(true, Some(3_600_000))
        };
        assert!(unknown.to_string().contains("user      unknown"));
    }

    #[test]
    fn status_names_the_user_from_a_verified_id_token_when_there_is_one() {
        let claims = IdTokenClaims {
            iss: "https://login.example.test".into(),
            sub: "https://login.example.test/id/00D/005xx0000012345".into(),
            aud: vec!["3MVG9client".into()],
            azp: None,
            iat: 1_800_000_000,
            exp: 1_800_000_300,
            auth_time: None,
            nonce: None,
            name: Some("Ada Lovelace".into()),
            given_name: None,
            family_name: None,
            preferred_username: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
        };
        let text = Status {
            identity: Some(claims.clone()),
            ..status(true, Some(3_600_000))
        }
        .to_string();
        assert!(
            text.starts_with("user      Ada Lovelace <ada@example.com> (005xx0000012345)\n"),
            "{text}"
        );
        assert!(
            text.contains("\nid token  verified, issued Fri, 15 Jan 2027 08:00:00 GMT, expires Fri, 15 Jan 2027 08:05:00 GMT\n"),
            "{text}"
        );
        // Without a name in the token, the username the server gave stands in.
        let unnamed = Status {
            identity: Some(IdTokenClaims {
                name: None,
                preferred_username: None,
                email: None,
                ..claims
            }),
            ..status(true, Some(3_600_000))
        }
        .to_string();
        assert!(
            unnamed.starts_with("user      ada@example.com (005xx0000012345)\n"),
            "{unnamed}"
        );
        // Without an ID token, the lines are as they were.
        let plain = status(true, Some(3_600_000)).to_string();
        assert!(!plain.contains("id token"), "{plain}");
    }

    #[test]
    fn only_a_session_with_a_usable_refresh_token_is_refreshed_automatically() {
        for remaining in [Some(3_600_000), Some(-1_000), None] {
            let with = status(true, remaining).to_string();
            assert!(with.contains("refreshed"), "{with}");
            assert!(!with.contains("log in again"), "{with}");
            let without = status(false, remaining).to_string();
            assert!(!without.contains("refreshed"), "{without}");
            assert!(without.contains("log in again"), "{without}");
            let dead = Status {
                reauth_required: Some(ReauthReason::UserInactive),
                ..status(true, remaining)
            };
            assert!(!dead.to_string().contains("refreshed"), "{dead}");
        }
    }

    #[test]
    fn a_refused_refresh_token_is_not_reported_as_stored_and_usable() {
        let refused = Status {
            reauth_required: Some(ReauthReason::RefreshTokenRejected {
                description: "token revoked".into(),
            }),
            ..status(true, Some(3_600_000))
        }
        .to_string();
        assert!(!refused.contains("refresh token stored"), "{refused}");
        assert!(
            refused.contains("refresh   the stored refresh token was refused: a login is needed"),
            "{refused}"
        );
        assert!(
            refused.contains("state     login needed (tessera login): the server rejected"),
            "{refused}"
        );
    }

    #[test]
    fn status_says_whether_the_tokens_are_bound_and_to_which_key() {
        let line = |dpop_thumbprint: Option<&str>, dpop_bound| {
            let text = Status {
                dpop_thumbprint: dpop_thumbprint.map(str::to_owned),
                dpop_bound,
                ..status(true, Some(3_600_000))
            }
            .to_string();
            text.lines()
                .find(|l| l.starts_with("dpop"))
                .map(str::to_owned)
        };
        assert_eq!(
            line(Some("jkt-1"), true).as_deref(),
            Some("dpop      bound to key jkt-1")
        );
        assert_eq!(
            line(Some("jkt-1"), false).as_deref(),
            Some("dpop      key jkt-1 (proofs sent; the server did not bind the tokens)")
        );
        assert_eq!(
            line(None, true).as_deref(),
            Some("dpop      bound, but the key is lost: log in again")
        );
        assert_eq!(line(None, false), None);
    }
}
