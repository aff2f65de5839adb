//! The authorization server's domain service. [`Authority`] owns its collaborators — the store,
//! the clock, the randomness, the throttle — and keeps them to itself: the HTTP adapter calls
//! one operation per request and maps the result, so it cannot do domain work by accident.
//!
//! The end-user operations are spread over one file per concern, each adding an
//! `impl Authority`: `flows/` (the authorization request, the token endpoint and its grants,
//! revocation, introspection, resource-token validation) and `identity/` (client
//! authentication, login and consent). What an operator does is on
//! [`crate::operations::operator::Operator`]. This file holds what they share: the
//! configuration, following the store's changes, issuing tokens and recording audit events.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::{
    AccessToken, ClientSecret, ExposeSecret, OAuthError, RefreshToken, Scope, TokenResponse,
    TokenType,
};
use tokio::sync::Semaphore;

use crate::flows::dpop_binding::DpopRuntime;
use crate::flows::id_token::{IdTokenFor, NonceEcho};
use crate::flows::jwt_access::JwtVerifier;
pub use crate::identity::guard::ChangeFeedStale;
use crate::identity::guard::{FeedFreshness, Guard};
use crate::identity::password::ReusableVerifier;
use crate::identity::throttle::{Throttle, ThrottleConfig, Throttled};
use crate::model::{ChangeKind, Client, Event, EventKind, Grant, Org, User};
use crate::operations::admin::ClientDefaults;
use crate::operations::audit_repeats::AuditRepeats;
use crate::operations::signing_keys::{KeyCache, KeySchedule};
use crate::operations::usage_ledger::{UsageLedger, DEFAULT_USAGE_LEDGER_CAPACITY};
use crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use crate::store::{ChangeNotice, Issuance, IssueOutcome, Store, StoreError};
use crate::time::{Clock, Random, Timestamp};
use crate::tokens::crypto;
use crate::tokens::hash::secret_hash;
use crate::tokens::hash::Hash;
use crate::tokens::ids::{salesforce_id, time_ordered_id};
use crate::tokens::sealing::mint_refresh_token;
use crate::tokens::server_key::ServerKey;

/// How long an authorization code lives (Salesforce: 15 minutes).
pub(crate) const CODE_TTL_SECS: u64 = 15 * 60;
/// Bytes of randomness in every token, code and secret: 256 bits (RFC 6749 §10.10 asks ≥ 128).
pub(crate) const TOKEN_BYTES: usize = 32;
/// Longest token value worth a lookup; anything longer is refused before hashing.
pub(crate) const MAX_TOKEN_LEN: usize = 512;
/// How long a client waits before retrying after a 503 (a storage failure, a full queue of
/// password checks).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;
/// A token issued more than this far ahead of the clock is refused: the clock was stepped back,
/// and its expiry can no longer be trusted to have been judged on the same clock.
pub(crate) const MAX_CLOCK_SKEW_MS: i64 = 30_000;
/// A step back of the wall clock larger than this is logged as an error.
const CLOCK_STEP_TOLERANCE_MS: i64 = 1_000;

/// Audit events are kept 30 days unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION_SECS: u64 = 30 * 86_400;
/// Salesforce's "five unique approvals per user per app".
pub const DEFAULT_MAX_LIVE_GRANTS: u32 = 5;
/// How long a login waits for a free password check before it is answered 503.
pub const DEFAULT_PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(5);
/// How long the change feed may go unread before the checks that rely on it answer 503: many
/// polling periods (100 ms), so that a slow read or a reconnection is not an outage, and short
/// next to an access token's life, so that a node cut off from the database stops accepting
/// tokens revoked elsewhere within seconds.
pub const DEFAULT_CHANGE_FEED_MAX_STALENESS: Duration = Duration::from_secs(10);

/// How old a DPoP proof's `iat` may be: RFC 9449 §11.1's "relatively brief period", long enough
/// for a request that waited in a queue or crossed a slow network.
pub const DEFAULT_DPOP_IAT_PAST_SECS: u64 = 60;
/// How far ahead of the server's clock a proof's `iat` may be: a client's clock that runs a
/// little fast is common, one far ahead would let a proof be made now and used much later.
pub const DEFAULT_DPOP_IAT_FUTURE_SECS: u64 = 10;
/// Proofs a node's replay cache holds at once: at one proof per request for the `iat` window
/// (70 s by default), some 14,000 proof-carrying requests a second, more than a node checks
/// (each proof's signature costs tens of microseconds); about 100 MB when full. Beyond it
/// proofs are refused with 503, never forgotten early. (A tenth of this capped the benchmark's
/// DPoP API calls at 1,400 a second: a default must not be the bottleneck.)
pub const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 1_000_000;

/// How this server judges DPoP proofs (RFC 9449), for every client; each client's own setting
/// (`Client.dpop`) says whether its proofs bind, and may require a nonce on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopPolicyConfig {
    /// Whether every proof must carry a nonce this server issued (RFC 9449 §8), for every
    /// client: off by default, as a nonce costs a client one more round trip.
    pub require_nonce: bool,
    /// How old a proof's `iat` may be, in seconds.
    pub iat_past_secs: u64,
    /// How far ahead of the server's clock a proof's `iat` may be, in seconds.
    pub iat_future_secs: u64,
    /// Most proofs a node's replay cache holds (see [`DEFAULT_DPOP_REPLAY_CAPACITY`]).
    pub replay_capacity: usize,
}

impl DpopPolicyConfig {
    /// How the proof validator judges proofs under this policy (the algorithms and the nonce
    /// step are the validator's defaults).
    pub(crate) fn proofs(&self) -> crate::dpop::DpopConfig {
        crate::dpop::DpopConfig {
            iat_past_secs: self.iat_past_secs,
            iat_future_secs: self.iat_future_secs,
            replay_capacity: self.replay_capacity,
            ..crate::dpop::DpopConfig::default()
        }
    }
}

impl Default for DpopPolicyConfig {
    fn default() -> Self {
        Self {
            require_nonce: false,
            iat_past_secs: DEFAULT_DPOP_IAT_PAST_SECS,
            iat_future_secs: DEFAULT_DPOP_IAT_FUTURE_SECS,
            replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
        }
    }
}

/// Password checks that may run at once unless configured otherwise: one per core. Each takes
/// Argon2id's 19 MiB, so this bounds their memory at cores × 19 MiB.
pub fn default_password_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

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
    pub throttle: ThrottleConfig,
    /// Password checks (Argon2id, 19 MiB each) that may run at once.
    pub max_concurrent_password_checks: usize,
    /// How long a login waits for one of them before it is answered 503.
    pub password_check_wait: Duration,
    /// How long the change feed may go unread, its reads failing, before access-token checks
    /// and the token endpoint answer 503 and readiness fails (see [`ChangeFeedStale`]).
    pub change_feed_max_staleness: Duration,
    /// When signing keys rotate, and how long clients may cache the JWKS.
    pub key_schedule: KeySchedule,
    /// How DPoP proofs are judged.
    pub dpop: DpopPolicyConfig,
    /// Distinct grants the usage ledger holds before it is written early (see
    /// [`crate::operations::usage_ledger`]).
    pub usage_ledger_capacity: usize,
    /// The controls a new client gets unless its settings say otherwise.
    pub client_defaults: ClientDefaults,
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
            throttle: ThrottleConfig::default(),
            max_concurrent_password_checks: default_password_checks(),
            password_check_wait: DEFAULT_PASSWORD_CHECK_WAIT,
            change_feed_max_staleness: DEFAULT_CHANGE_FEED_MAX_STALENESS,
            key_schedule: KeySchedule::default(),
            dpop: DpopPolicyConfig::default(),
            usage_ledger_capacity: DEFAULT_USAGE_LEDGER_CAPACITY,
            client_defaults: ClientDefaults::default(),
        }
    }
}

/// Client credentials as presented at an endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<ClientSecret>,
    /// Whether they came in an `Authorization: Basic` header (changes the error status).
    pub via_basic: bool,
}

impl ClientCredentials {
    /// Credentials sent in the body.
    pub fn body(client_id: &str, secret: Option<&str>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: secret.map(ClientSecret::new),
            via_basic: false,
        }
    }
}

/// Who sent a request, as far as the server can tell: the throttle's key and what the audit
/// trail records of security events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The TCP peer, or the client a trusted proxy names; `None` where there is no socket.
    pub address: Option<IpAddr>,
    /// The `User-Agent` header, shortened and stripped of control characters.
    pub user_agent: Option<String>,
}

/// Longest user agent kept in the audit trail.
const USER_AGENT_MAX: usize = 200;

impl Source {
    pub fn new(address: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_MAX)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Self {
            address,
            user_agent,
        }
    }

    pub(crate) fn address_text(&self) -> Option<String> {
        self.address.map(|a| a.to_string())
    }
}

/// The clock, watched: a step back (an NTP correction, an operator) is logged loudly once, so
/// that the refusals of tokens "issued in the future" that follow it have a visible cause.
#[derive(Debug)]
struct WatchedClock {
    clock: Arc<dyn Clock>,
    latest: AtomicI64,
}

impl WatchedClock {
    fn now(&self) -> Timestamp {
        let now = self.clock.now();
        let latest = self.latest.fetch_max(now.millis(), Ordering::Relaxed);
        if latest - now.millis() > CLOCK_STEP_TOLERANCE_MS {
            // Follow the clock from here, so that the step is reported once.
            self.latest.store(now.millis(), Ordering::Relaxed);
            tracing::error!(
                stepped_back_ms = latest - now.millis(),
                "the system clock stepped back; tokens issued before the step are refused until the clock catches up"
            );
        }
        now
    }
}

/// The domain service; cloning it is one reference count (every request's handlers and
/// extractors clone the server's state, which holds it).
#[derive(Debug, Clone)]
pub struct Authority {
    inner: Arc<Parts>,
}

#[derive(Debug)]
struct Parts {
    store: Arc<dyn Store>,
    clock: Arc<WatchedClock>,
    rng: Arc<dyn Random>,
    config: Arc<AuthorityConfig>,
    throttle: Arc<Throttle>,
    password_checks: Arc<Semaphore>,
    password_verifier: Arc<ReusableVerifier>,
    guard: Arc<Guard>,
    feed_freshness: Arc<FeedFreshness>,
    repeats: Arc<AuditRepeats>,
    key_cache: Arc<KeyCache>,
    jwt_verifier: Arc<JwtVerifier>,
    dpop: Arc<DpopRuntime>,
    usage_ledger: UsageLedger,
}

/// Why `/readyz` fails.
#[derive(Debug)]
pub enum NotReady {
    /// The database does not answer, or its schema is not this build's.
    Store(StoreError),
    /// The change feed could not be read for longer than the bound: this process may not know
    /// of revocations made elsewhere.
    ChangeFeedStale(ChangeFeedStale),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(error) => write!(f, "{error}"),
            Self::ChangeFeedStale(stale) => write!(f, "{stale}"),
        }
    }
}

/// Stale revocation knowledge at an OAuth endpoint: 503 `temporarily_unavailable`, as a
/// storage failure is (docs/security.md, "When the change feed cannot be read").
impl From<ChangeFeedStale> for OAuthError {
    fn from(_: ChangeFeedStale) -> Self {
        OAuthError::TemporarilyUnavailable {
            retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
        }
    }
}

/// A storage failure at an OAuth endpoint: 503 `temporarily_unavailable` with `Retry-After`,
/// never an authentication error and never a 500 (docs/security.md, "When the database is
/// down"). The cause is logged here and never sent.
impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        log_store_failure(&error);
        OAuthError::TemporarilyUnavailable {
            retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
        }
    }
}

pub(crate) fn log_event(event: &Event) {
    tracing::info!(
        target: "tessera::audit",
        kind = event.kind.name(),
        client_id = event.client_id.as_deref().unwrap_or_default(),
        user_id = event.user_id.as_deref().unwrap_or_default(),
        grant_id = event.grant_id.as_deref().unwrap_or_default(),
        source = event.source.as_deref().unwrap_or_default(),
        detail = %event.detail,
        "audit"
    );
}

async fn append_event(store: &dyn Store, event: Event) {
    if let Err(error) = store.append_events(std::slice::from_ref(&event)).await {
        tracing::error!(error = %error, "could not record an audit event");
    }
}

pub(crate) fn log_store_failure(error: &StoreError) {
    tracing::error!(error = %error, "storage failure; answering 503");
}

impl Authority {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthorityConfig,
    ) -> Self {
        let permits = config.max_concurrent_password_checks.max(1);
        let feed_freshness = Arc::new(FeedFreshness::new(
            clock.now(),
            config.change_feed_max_staleness,
        ));
        Self {
            inner: Arc::new(Parts {
                feed_freshness,
                store,
                clock: Arc::new(WatchedClock {
                    latest: AtomicI64::new(clock.now().millis()),
                    clock,
                }),
                rng,
                throttle: Arc::new(Throttle::new(config.throttle)),
                password_checks: Arc::new(Semaphore::new(permits)),
                password_verifier: Arc::new(ReusableVerifier::default()),
                guard: Arc::new(Guard::default()),
                repeats: Arc::new(AuditRepeats::default()),
                key_cache: Arc::new(KeyCache::default()),
                jwt_verifier: Arc::new(JwtVerifier::default()),
                dpop: Arc::new(DpopRuntime::new(config.dpop.proofs(), &config.server_key)),
                usage_ledger: UsageLedger::new(config.usage_ledger_capacity),
                config: Arc::new(config),
            }),
        }
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.inner.config
    }

    /// Keys held by the throttle's counters, for measurements.
    pub fn throttle_keys(&self) -> [u64; 4] {
        self.inner.throttle.tracked_keys()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn shared_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner.store)
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn key_cache(&self) -> &KeyCache {
        &self.inner.key_cache
    }

    pub(crate) fn jwt_verifier(&self) -> &JwtVerifier {
        &self.inner.jwt_verifier
    }

    pub(crate) fn dpop(&self) -> &DpopRuntime {
        &self.inner.dpop
    }

    pub(crate) fn usage_ledger(&self) -> &UsageLedger {
        &self.inner.usage_ledger
    }

    pub(crate) fn rng(&self) -> &dyn Random {
        self.inner.rng.as_ref()
    }

    pub(crate) fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    pub(crate) fn password_checks(&self) -> &Arc<Semaphore> {
        &self.inner.password_checks
    }

    pub(crate) fn password_verifier(&self) -> &Arc<ReusableVerifier> {
        &self.inner.password_verifier
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.inner.guard
    }

    /// Whether what this process knows of revocations, from the change feed, may still be
    /// trusted: every check that answers from that knowledge asks first. One atomic load.
    pub(crate) fn revocations_known(&self, now: Timestamp) -> Result<(), ChangeFeedStale> {
        self.inner.feed_freshness.check(now)
    }

    /// A grant this process revoked: its access tokens stop working here at once (other
    /// processes learn it from the change feed).
    pub(crate) fn grant_revoked(&self, grant_id: &str, now: Timestamp) {
        self.inner.guard.changed(
            ChangeKind::GrantRevoked,
            grant_id,
            now.plus_secs(MAX_ACCESS_TOKEN_TTL_SECS),
        );
    }

    /// The client, from the cache when it is there.
    pub(crate) async fn cached_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Client>, StoreError> {
        self.read_cached_client(client_id, Client::clone).await
    }

    /// What `read` takes from a client, read as [`Authority::cached_client`] reads it but
    /// without copying a cached client whole.
    pub(crate) async fn read_cached_client<R>(
        &self,
        client_id: &str,
        read: impl Fn(&Client) -> R + Send,
    ) -> Result<Option<R>, StoreError> {
        if let Some(found) = self.inner.guard.read_client(client_id, &read) {
            return Ok(Some(found));
        }
        let client = self.inner.store.client_by_id(client_id).await?;
        if let Some(client) = &client {
            self.inner.guard.keep_client(client);
        }
        Ok(client.as_ref().map(read))
    }

    /// Reads the change feed from where the store is now, then follows it every `every`, so
    /// that revocations and client and user changes made by other processes (the admin
    /// commands, other nodes) reach this one's caches. Call it before serving: it loads the
    /// revocations still in force.
    pub async fn follow_changes(
        &self,
        every: std::time::Duration,
    ) -> Result<tokio::task::JoinHandle<()>, StoreError> {
        let (live, seq) = self.inner.store.live_changes(self.now()).await?;
        self.inner.guard.reset(&live, seq);
        self.inner.feed_freshness.read(self.now());
        let authority = self.clone();
        // A read that hangs (a peer vanished without a reset) fails after the bound, as an
        // error would: the knowledge it was to refresh goes stale all the same.
        let read_limit = self.inner.config.change_feed_max_staleness;
        // Where the database pushes entries as they commit (PostgreSQL's NOTIFY), each is applied
        // the moment it arrives, before any later request here can need it; the polling stays,
        // so that a lost notice costs at most `every`.
        let mut notices = self.inner.store.change_notices();
        Ok(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if let Some(receiver) = notices.as_mut() {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        notice = receiver.recv() => match notice {
                            Ok(ChangeNotice::Entry(change)) if authority.inner.guard.apply_next(&change) => continue,
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => notices = None,
                        },
                    }
                } else {
                    ticker.tick().await;
                }
                let failure = match tokio::time::timeout(read_limit, authority.catch_up()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => {
                        authority.inner.feed_freshness.read_failed();
                        Some(format!("no answer within {} s", read_limit.as_secs()))
                    }
                };
                if let Some(error) = failure {
                    match authority.revocations_known(authority.now()) {
                        Ok(()) => {
                            tracing::warn!(%error, "reading the change feed failed; retrying")
                        }
                        Err(stale) => {
                            tracing::error!(%error, %stale, "reading the change feed failed; token checks answer 503 until it is read again")
                        }
                    }
                }
            }
        }))
    }

    /// Applies what the change feed holds past what this process has seen, and records whether
    /// that worked (see [`Authority::revocations_known`]).
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        // Stamped before the read: what it returns is at least as new as this.
        let now = self.now();
        let read = self.read_feed().await;
        match &read {
            Ok(()) => self.inner.feed_freshness.read(now),
            Err(_) => self.inner.feed_freshness.read_failed(),
        }
        read
    }

    async fn read_feed(&self) -> Result<(), StoreError> {
        loop {
            let changes = self
                .inner
                .store
                .changes_since(self.inner.guard.seq(), 1000)
                .await?;
            if self.inner.guard.apply_feed(&changes) {
                // Entries were purged before this process read them: start over.
                let (live, seq) = self.inner.store.live_changes(self.now()).await?;
                self.inner.guard.reset(&live, seq);
                tracing::warn!(
                    "the change feed moved on while this process was away; caches reset"
                );
            }
            if changes.len() < 1000 {
                break;
            }
        }
        self.inner.guard.prune(self.now());
        Ok(())
    }

    /// Sets the store's gauges (see [`crate::store::Operations::publish_gauges`]).
    pub fn publish_store_gauges(&self) {
        self.inner.store.publish_gauges();
        crate::operations::metrics::publish_cache_lookups();
    }

    /// Whether this process should be sent requests (`/readyz`): the store answers with the
    /// schema this build expects, and the change feed has been read within the bound.
    pub async fn ready(&self) -> Result<(), NotReady> {
        self.inner.store.ready().await.map_err(NotReady::Store)?;
        self.revocations_known(self.now())
            .map_err(NotReady::ChangeFeedStale)
    }

    /// How much the in-memory state holds, for measurements: revoked grants, revoked tokens,
    /// cached clients, users, grant owners and families.
    pub fn cache_sizes(&self) -> [usize; 6] {
        self.inner.guard.sizes()
    }

    /// Records an audit event: a row in the events table and a structured log line, never a
    /// token value. A failure to record is logged, not raised: the operation it describes has
    /// already happened.
    pub(crate) async fn record(&self, event: Event) {
        log_event(&event);
        append_event(self.inner.store.as_ref(), event).await;
    }

    /// The same, off the request path: for failures, whose answer must not wait on the audit
    /// write (a flood of them would otherwise queue behind it).
    pub(crate) fn record_detached(&self, event: Event) {
        log_event(&event);
        let store = self.inner.store.clone();
        tokio::spawn(async move { append_event(store.as_ref(), event).await });
    }

    /// An event about a grant, caused by a request from `source` (or by the server itself).
    pub(crate) fn grant_event(
        &self,
        kind: EventKind,
        grant: &Grant,
        detail: &str,
        source: Option<&Source>,
    ) -> Event {
        Event {
            at: self.now(),
            kind,
            client_id: Some(grant.client_id.clone()),
            user_id: Some(grant.user_id.clone()),
            grant_id: Some(grant.id.clone()),
            detail: detail.to_owned(),
            source: source.and_then(Source::address_text),
            user_agent: source.and_then(|s| s.user_agent.clone()),
        }
    }

    pub(crate) async fn record_grant(
        &self,
        kind: EventKind,
        grant: &Grant,
        detail: &str,
        source: Option<&Source>,
    ) {
        self.record(self.grant_event(kind, grant, detail, source))
            .await;
    }

    /// An event whose repeats about the same grant are counted rather than written, for a
    /// window (`reuse_detected` of a family already revoked, `concurrent_refresh_refused`,
    /// `code_reused`; see [`crate::operations::audit_repeats`]). The first is written, and
    /// the next one written after the window carries the count.
    pub(crate) async fn record_grant_once(
        &self,
        kind: EventKind,
        grant: &Grant,
        detail: &str,
        source: Option<&Source>,
    ) {
        if !self.is_repeat(kind, &grant.id) {
            self.record_opening(self.grant_event(kind, grant, detail, source))
                .await;
        }
    }

    /// Whether an event of `kind` about `grant_id` now would be a repeat, counted and not
    /// written: asked first where building the event would cost a read.
    pub(crate) fn is_repeat(&self, kind: EventKind, grant_id: &str) -> bool {
        self.inner.repeats.is_repeat(kind, grant_id, self.now())
    }

    /// Writes an event that is no repeat, or that must never be held back (a revocation): it
    /// opens a window for its repeats and carries the count of the one it closes.
    pub(crate) async fn record_opening(&self, event: Event) {
        for event in self.inner.repeats.written(event) {
            self.record(event).await;
        }
    }

    /// Writes the summaries of the windows of repeats that have ended without a later event
    /// to carry their count (run by housekeeping).
    pub(crate) async fn summarise_repeats(&self) {
        for event in self.inner.repeats.close_ended(self.now()) {
            self.record(event).await;
        }
    }

    /// An event about a failed request that names no grant (failed authentication,
    /// throttling), recorded off the request path.
    pub(crate) fn record_failure(
        &self,
        kind: EventKind,
        client_id: Option<&str>,
        detail: String,
        source: &Source,
    ) {
        self.record_detached(Event {
            at: self.now(),
            kind,
            client_id: client_id.map(str::to_owned),
            user_id: None,
            grant_id: None,
            detail,
            source: source.address_text(),
            user_agent: source.user_agent.clone(),
        });
    }

    /// A refused refresh's `refresh_refused` event, off the request path: the presenting
    /// client, the source and the reason, never the token nor its hash. Written once per
    /// client, source and reason per window, with the count of its repeats, and past a cap on
    /// new windows only counted by reason (see [`crate::operations::audit_repeats`]): a flood
    /// of bogus tokens from many addresses is a bounded number of writes.
    pub(crate) fn record_refusal(&self, client_id: &str, reason: &str, source: &Source) {
        self.record_refusal_of(EventKind::RefreshRefused, client_id, reason, source);
    }

    /// A refusal's event of `kind`, bounded as [`Authority::record_refusal`]'s.
    pub(crate) fn record_refusal_of(
        &self,
        kind: EventKind,
        client_id: &str,
        reason: &str,
        source: &Source,
    ) {
        let address = source.address_text();
        // The repeat windows are keyed by kind and subject.
        let subject = format!("{client_id} {} {reason}", address.as_deref().unwrap_or("-"));
        let event = Event {
            at: self.now(),
            kind,
            client_id: Some(client_id.to_owned()),
            user_id: None,
            grant_id: None,
            detail: reason.to_owned(),
            source: address,
            user_agent: source.user_agent.clone(),
        };
        for event in self.inner.repeats.refused(subject, event) {
            self.record_detached(event);
        }
    }

    /// The audit event of a throttle decision: which budget, for whom; never a secret.
    pub(crate) fn record_throttled(
        &self,
        throttled: Throttled,
        client_id: Option<&str>,
        username: Option<&str>,
        source: &Source,
    ) {
        let mut detail = format!(
            "{} exhausted for {}s",
            throttled.reason.name(),
            throttled.retry_after_secs
        );
        if let Some(username) = username {
            detail.push_str(&format!(", username {username}"));
        }
        self.record_failure(EventKind::Throttled, client_id, detail, source);
    }

    /// Whether `source` has spent its credential budget, checked before a grant runs: its next
    /// failure would be answered 429, so the grant does no store work that only a failure
    /// would need (docs/security.md, "Throttling"). One atomic load unless some source is
    /// close to its budget.
    pub(crate) fn budget_spent(&self, source: &Source) -> bool {
        self.inner
            .throttle
            .credential_budget_spent(source.address, self.now())
            .is_some()
    }

    /// 429 for a request from a source that has spent its credential budget, before any work:
    /// for a grant that cannot tell a valid request from a failing one without the store (a
    /// code is known only to the store, and redeeming it is a write). Nothing is spent, so the
    /// request may be sent again once the window ends. `None` when the source may go on.
    pub(crate) fn refuse_spent_source(
        &self,
        client_id: Option<&str>,
        source: &Source,
    ) -> Option<OAuthError> {
        let (throttled, first) = self
            .inner
            .throttle
            .refuse_spent_credentials(source.address, self.now())?;
        if first {
            self.record_throttled(throttled, client_id, None, source);
        }
        Some(OAuthError::RateLimited {
            retry_after_secs: throttled.retry_after_secs,
        })
    }

    /// Load shedding for high-entropy credentials: a request that failed is counted against its
    /// source, and once the source is over its budget it is answered 429 instead. Successes
    /// pass untouched, whatever the source did before. A failed client authentication within
    /// the budget is an audit event; past it, the throttle decision stands for them all, so a
    /// flood cannot turn into a flood of audit writes.
    pub(crate) fn shed<T>(
        &self,
        result: Result<T, OAuthError>,
        client_id: Option<&str>,
        source: &Source,
    ) -> Result<T, OAuthError> {
        let Err(error) = result else {
            return result;
        };
        if !is_guessing_failure(&error) {
            return Err(error);
        }
        match self
            .inner
            .throttle
            .credential_failure(source.address, self.now())
        {
            Ok(()) => {
                if matches!(
                    error,
                    OAuthError::InvalidClientId | OAuthError::InvalidClientCredentials { .. }
                ) {
                    self.record_failure(
                        EventKind::ClientAuthFailed,
                        client_id,
                        error.code().to_owned(),
                        source,
                    );
                }
                Err(error)
            }
            Err((throttled, first)) => {
                if first {
                    self.record_throttled(throttled, client_id, None, source);
                }
                tracing::debug!(reason = throttled.reason.name(), "throttled");
                Err(OAuthError::RateLimited {
                    retry_after_secs: throttled.retry_after_secs,
                })
            }
        }
    }

    pub fn identity_url(&self, org_id: &str, user_id: &str) -> String {
        crate::identity::claims::identity_url(&self.inner.config.issuer, org_id, user_id)
    }

    /// The organisation, created on first use.
    pub async fn org(&self) -> Result<Org, StoreError> {
        if let Some(org) = self.inner.store.default_org().await? {
            return Ok(org);
        }
        let org = Org {
            id: salesforce_id("00D", self.inner.rng.as_ref()),
            name: "Tessera".into(),
        };
        self.inner.store.insert_org(&org).await?;
        // Another process may have created one first; the first one wins.
        Ok(self.inner.store.default_org().await?.unwrap_or(org))
    }

    /// The user, from the cache when it is there (every change to a user goes through the
    /// change feed).
    pub(crate) async fn cached_user(&self, user_id: &str) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(user) = self.inner.guard.user(user_id) {
            return Ok(Some(user));
        }
        let user = self.inner.store.user_by_id(user_id).await?.map(Arc::new);
        if let Some(user) = &user {
            self.inner.guard.keep_user(user);
        }
        Ok(user)
    }

    pub(crate) async fn active_user(&self, user_id: &str) -> Result<Arc<User>, OAuthError> {
        match self.cached_user(user_id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(OAuthError::InactiveUser),
        }
    }

    /// Issues a new grant with its tokens. `code_hash` is the code this issuance was redeemed
    /// from (see [`Issuance::code_hash`]).
    pub(crate) async fn issue_new_grant(
        &self,
        grant: NewGrant<'_>,
        source: Option<&Source>,
    ) -> Result<TokenResponse, OAuthError> {
        let NewGrant {
            client,
            user,
            scope,
            code_hash,
            may_issue_refresh,
            presented_secret,
            authentication,
            answers_id_token,
        } = grant;
        let (issuance, response) = self
            .build_issuance(
                client,
                user,
                scope,
                may_issue_refresh,
                authentication,
                presented_secret,
            )
            .await?;
        let now = issuance.grant.created_at;
        // Signed before the write: a failure to sign issues nothing.
        let response = if answers_id_token {
            self.with_id_token(
                response,
                IdTokenFor {
                    client,
                    grant: &issuance.grant,
                    user,
                    scope,
                    nonce: NonceEcho::Authorization,
                    at: now,
                },
            )
            .await?
        } else {
            response
        };
        let detail = without_refresh_token(&issuance.grant, scope);
        let issued = self.grant_event(EventKind::Issued, &issuance.grant, detail, source);
        let issuance = Issuance {
            code_hash,
            max_live_grants: self.inner.config.max_live_grants,
            events: vec![issued.clone()],
            ..issuance
        };
        match self.inner.store.issue(&issuance).await? {
            IssueOutcome::Issued { evicted } => {
                log_event(&issued);
                for grant_id in evicted {
                    self.grant_revoked(&grant_id, now);
                    let event_grant = Grant {
                        id: grant_id,
                        ..issuance.grant.clone()
                    };
                    self.record_grant(EventKind::Revoked, &event_grant, "approval limit", source)
                        .await;
                }
            }
            IssueOutcome::CodePresentedAgain => {
                // The code was presented again between its redemption and this write: RFC 6749
                // §4.1.2, a code used twice issues nothing.
                self.record_grant(
                    EventKind::CodeReused,
                    &issuance.grant,
                    "presented again while issuing, nothing issued",
                    source,
                )
                .await;
                return Err(OAuthError::ExpiredAuthorizationCode);
            }
        }
        Ok(response)
    }

    /// A new grant with its tokens, issued now, ready to store (no code, no approval limit, no
    /// event), and the response that answers them (without its ID token: signing is the
    /// caller's, off the runtime's threads and before the write).
    async fn build_issuance(
        &self,
        client: &Client,
        user: &User,
        scope: &Scope,
        may_issue_refresh: bool,
        authentication: Authentication,
        presented_secret: Option<&ClientSecret>,
    ) -> Result<(Issuance, TokenResponse), OAuthError> {
        let now = self.now();
        let issue_refresh = may_issue_refresh && scope.allows_refresh_token();
        let grant = Grant {
            id: time_ordered_id(now, self.inner.rng.as_ref()),
            client_id: client.client_id.clone(),
            user_id: user.id.clone(),
            org_id: user.org_id.clone(),
            scope: scope.clone(),
            created_at: now,
            last_used_at: now,
            revoked_at: None,
            has_refresh_token: issue_refresh,
            auth_time: authentication.auth_time,
            nonce: authentication.nonce,
            // A confidential client's refresh token is bound by its client authentication; a
            // public client's only by the key (RFC 9449 §5).
            dpop_jkt: authentication
                .dpop_jkt
                .clone()
                .filter(|_| client.secret_hash.is_none()),
        };
        let refresh_token = issue_refresh.then(|| {
            mint_refresh_token(
                &self.inner.config.server_key,
                self.inner.rng.as_ref(),
                &grant.id,
            )
        });
        let access_token = self
            .mint_access_token(
                client,
                &grant,
                scope,
                now,
                &self.random_part(),
                authentication.dpop_jkt.as_deref(),
            )
            .await?;
        let issuance = Issuance {
            refresh_token_hash: refresh_token
                .as_ref()
                .map(|t| secret_hash(t.expose_secret())),
            idle_expires_at: idle_expiry(client, now),
            events: Vec::new(),
            code_hash: None,
            max_live_grants: None,
            grant,
        };
        let response = self.token_response(IssuedTokens {
            client,
            user,
            scope,
            access_token,
            refresh_token,
            issued_at: now,
            presented_secret,
            dpop_jkt: authentication.dpop_jkt.as_deref(),
        });
        Ok((issuance, response))
    }

    /// An issuance for the bulk path, and the response it answers.
    pub(crate) async fn new_issuance(
        &self,
        client: &Client,
        user: &User,
        scope: &Scope,
    ) -> Result<(Issuance, TokenResponse), OAuthError> {
        self.build_issuance(client, user, scope, true, Authentication::default(), None)
            .await
    }

    /// An access token of `grant`, verifiable from its own content (see `access_token.rs`, and
    /// `jwt_access_token.rs` for the clients that ask for JWTs), for the client's lifetime, at
    /// most [`MAX_ACCESS_TOKEN_TTL_SECS`], issued at `now`, with `random` as its random part
    /// (see [`Authority::random_part`]; a rotation's successor derives it).
    pub(crate) async fn mint_access_token(
        &self,
        client: &Client,
        grant: &Grant,
        scope: &Scope,
        now: Timestamp,
        random: &[u8; crate::tokens::access_token::RANDOM_BYTES],
        dpop_jkt: Option<&str>,
    ) -> Result<AccessToken, OAuthError> {
        let ttl = client.access_token_ttl_secs.min(MAX_ACCESS_TOKEN_TTL_SECS);
        if client.openid.jwt_access_tokens {
            return self
                .mint_jwt_access_token(client, grant, scope, now, random, dpop_jkt)
                .await;
        }
        crate::tokens::access_token::mint(
            &self.inner.config.server_key,
            random,
            &grant.org_id,
            &grant.id,
            scope,
            now,
            now.plus_secs(ttl),
            dpop_jkt,
        )
        .ok_or(OAuthError::InvalidScope)
    }

    /// Fresh random bytes for a token.
    pub(crate) fn random_part(&self) -> [u8; crate::tokens::access_token::RANDOM_BYTES] {
        let mut random = [0u8; crate::tokens::access_token::RANDOM_BYTES];
        self.inner.rng.fill(&mut random);
        random
    }

    /// The token response describing `issued`, signed as Salesforce signs it.
    pub(crate) fn token_response(&self, issued: IssuedTokens<'_>) -> TokenResponse {
        let IssuedTokens {
            client,
            user,
            scope,
            access_token,
            refresh_token,
            issued_at: now,
            presented_secret,
            dpop_jkt,
        } = issued;
        let id = self.identity_url(&user.org_id, &user.id);
        let issued_at = now.millis().to_string();
        // Keyed by the client secret so that clients can verify it
        // (docs/salesforce-compatibility.md, "The signature field"). Only hashes of secrets
        // are stored, so where none was presented (public clients, the user-agent flow, minting)
        // a per-client key derived from the server key stands in; nobody can verify it, and no
        // client of those flows does.
        let signature = match presented_secret {
            Some(secret) => {
                crypto::token_signature(secret.expose_secret().as_bytes(), &id, &issued_at)
            }
            None => {
                let key = self
                    .inner
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
            instance_url: self.inner.config.issuer.clone(),
            id,
            token_type: if dpop_jkt.is_some() {
                TokenType::DPoP
            } else {
                TokenType::Bearer
            },
            issued_at,
            expires_in: self
                .inner
                .config
                .emit_expires_in
                .then_some(client.access_token_ttl_secs.min(MAX_ACCESS_TOKEN_TTL_SECS)),
            id_token: None,
        }
    }
}

/// An authority for unit tests: an in-memory store, a manual clock at a fixed instant, an
/// issuer of `http://as.test`, and one user with this password.
#[cfg(test)]
pub(crate) async fn test_authority(
    username: &str,
    password: &str,
) -> (Authority, Arc<crate::time::ManualClock>) {
    let clock = Arc::new(crate::time::ManualClock::new(Timestamp(1_800_000_000_000)));
    let authority = Authority::new(
        Arc::new(crate::store::memory::MemoryStore::new()),
        clock.clone(),
        Arc::new(crate::time::SystemRandom),
        AuthorityConfig::new(
            "http://as.test",
            ServerKey::generate(&crate::time::SystemRandom),
        ),
    );
    let password = tessera_proto::Password::new(password);
    let operator = authority.operator();
    let created = operator.create_user(username, password, None).await;
    created.unwrap_or_else(|e| panic!("{e}"));
    (authority, clock)
}

/// Whether a record stamped `at` was made by a clock ahead of `now` by more than the allowed
/// skew: the clock was stepped back since.
pub(crate) fn ahead_of_clock(at: Timestamp, now: Timestamp) -> bool {
    at.millis() > now.millis().saturating_add(MAX_CLOCK_SKEW_MS)
}

/// Tokens issued to a user's client, as a token response describes them.
#[derive(Debug)]
pub(crate) struct IssuedTokens<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a Scope,
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub issued_at: Timestamp,
    /// The client secret the request presented, which keys the response's `signature`.
    pub presented_secret: Option<&'a ClientSecret>,
    /// The DPoP key the access token is bound to: its `token_type` is then `DPoP`.
    pub dpop_jkt: Option<&'a str>,
}

/// Who asks at the token endpoint, besides the client: the secret it presented (which keys the
/// response's `signature`), where the request comes from, and the DPoP key its proof proved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester<'a> {
    pub secret: Option<&'a ClientSecret>,
    pub source: &'a Source,
    pub dpop_jkt: Option<&'a str>,
}

/// What a new grant is made of.
#[derive(Debug)]
pub(crate) struct NewGrant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a Scope,
    pub code_hash: Option<Hash>,
    /// Whether the flow may carry a refresh token at all (the user-agent flow only to
    /// redirects no other page can read).
    pub may_issue_refresh: bool,
    pub presented_secret: Option<&'a ClientSecret>,
    /// The login and the OpenID Connect request the grant comes from.
    pub authentication: Authentication,
    /// Whether the response is to carry an ID token when the scope has `openid`: not for
    /// `response_type=token`, whose fragment has none (nothing is signed for it).
    pub answers_id_token: bool,
}

/// What a grant keeps of the authorization it comes from, for its ID tokens: when the user
/// logged in (`auth_time`) and the request's `nonce`. Both `None` for grants made without a
/// login (minted by an operator).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authentication {
    pub auth_time: Option<Timestamp>,
    pub nonce: Option<String>,
    /// The thumbprint of the DPoP key the token request proved (RFC 9449): its access token is
    /// bound to it, and so are a public client's refresh tokens, through the grant.
    pub dpop_jkt: Option<String>,
}

/// When a grant used at `now` expires from idleness, under its client's policy: never for most
/// policies, which keeps the grant's row out of the idle index (and its refreshes from writing
/// to it). An access token issued at `now` must have expired by then, so the later of the two.
pub(crate) fn idle_expiry(client: &Client, now: Timestamp) -> Option<Timestamp> {
    client
        .effective_refresh_policy()
        .idle_secs()
        .map(|idle| now.plus_secs(idle.max(client.access_token_ttl_secs)))
}

/// What of `scope` the client may still have: an administrator may have removed scopes from it
/// since the grant (or the code) was made, and a grant never outlives its client's permission.
pub(crate) fn still_allowed(client: &Client, scope: &Scope) -> Scope {
    scope.intersection(&client.scopes)
}

/// The failures that guessing high-entropy credentials produces, which the throttle counts.
/// The detail of an `issued` event: why no refresh token was issued, when none was (a client
/// that expected one learns why from the server's events, since the token response, as
/// Salesforce's, just leaves it out).
fn without_refresh_token(grant: &Grant, scope: &Scope) -> &'static str {
    if grant.has_refresh_token {
        ""
    } else if !scope.allows_refresh_token() {
        NO_REFRESH_TOKEN_FOR_SCOPE
    } else {
        "no refresh token: the user-agent flow answers one only to a custom scheme or the success page"
    }
}

/// The detail of an `issued` event whose scope had neither `refresh_token` nor
/// `offline_access`.
pub const NO_REFRESH_TOKEN_FOR_SCOPE: &str =
    "no refresh token: scope lacks refresh_token / offline_access";

fn is_guessing_failure(error: &OAuthError) -> bool {
    matches!(
        error,
        OAuthError::InvalidClientId
            | OAuthError::InvalidClientCredentials { .. }
            | OAuthError::ExpiredRefreshToken
            | OAuthError::InvalidAuthorizationCode
            | OAuthError::ExpiredAuthorizationCode
            | OAuthError::InvalidCodeVerifier
    )
}
