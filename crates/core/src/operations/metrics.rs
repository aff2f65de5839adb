//! The metrics the domain and the stores record, through the `metrics` facade (like `tracing`:
//! nothing is kept unless the binary installs a recorder; `tessera serve` installs Prometheus's
//! and serves it on `/metrics`). Each name is defined once here and documented in
//! docs/operations.md; labels take values from small fixed sets only, never a client id, a
//! user or an address, so that the number of series stays bounded.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};

use crate::store::PurgeCounts;

/// Refresh-token requests by outcome (label `outcome`, see [`RefreshOutcome`]).
pub const REFRESHES: &str = "tessera_refreshes_total";
/// Requests refused by a throttle budget (label `reason`, see
/// [`crate::identity::throttle::ThrottleReason::label`]).
pub const THROTTLED: &str = "tessera_throttled_total";
/// Lookups answered from an in-memory cache (label `cache`, see [`Cache`]).
pub const CACHE_HITS: &str = "tessera_cache_hits_total";
/// Lookups that went to the database (label `cache`).
pub const CACHE_MISSES: &str = "tessera_cache_misses_total";
/// Rows removed by housekeeping (label `kind`: the [`PurgeCounts`] fields).
pub const PURGED_ROWS: &str = "tessera_housekeeping_purged_rows_total";
/// Seconds one durable commit of the SQLite writer takes, from `BEGIN` to the end of `COMMIT`.
pub const STORE_COMMIT_SECONDS: &str = "tessera_store_commit_duration_seconds";
/// Write jobs sharing one commit of the SQLite writer.
pub const STORE_COMMIT_GROUP_SIZE: &str = "tessera_store_commit_group_size";
/// PostgreSQL connections the pool holds, idle or in use.
pub const POOL_SIZE: &str = "tessera_database_pool_connections";
/// PostgreSQL connections idle in the pool, ready to be taken.
pub const POOL_AVAILABLE: &str = "tessera_database_pool_available";
/// Requests waiting for a PostgreSQL connection.
pub const POOL_WAITING: &str = "tessera_database_pool_waiting";

/// The buckets of [`STORE_COMMIT_SECONDS`]: an fsync takes from tens of microseconds (a
/// battery-backed cache) to tens of milliseconds (a spinning disk).
pub const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// The buckets of [`STORE_COMMIT_GROUP_SIZE`], up to the writer's largest group (256).
pub const GROUP_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How a refresh-token request ended, as decided in `refresh.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A rotating client got a new pair.
    Rotated,
    /// A non-rotating client got a new access token.
    Refreshed,
    /// A rotated-out token inside the retry window got its rotation's pair again.
    Replayed,
    /// A rotated-out token outside the window: the family was revoked.
    ReuseDetected,
    /// A rotated-out token outside the window, to a client in rotation audit mode: answered
    /// with a new pair, nothing revoked, a `rotation_audit` event recorded.
    RotationAudit,
    /// A simultaneous duplicate of a refresh that had just committed (`token request is
    /// already being processed`).
    ConcurrentRefused,
    /// A token of a family already revoked.
    Revoked,
    /// Expired, unknown, forged, another client's, or past its family's policy.
    Invalid,
    /// Anything else: a scope wider than granted, a disabled user, the database unavailable.
    Failed,
}

impl RefreshOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Refreshed => "refreshed",
            Self::Replayed => "replayed",
            Self::ReuseDetected => "reuse_detected",
            Self::RotationAudit => "rotation_audit",
            Self::ConcurrentRefused => "concurrent_refused",
            Self::Revoked => "revoked",
            Self::Invalid => "invalid",
            Self::Failed => "failed",
        }
    }
}

/// The in-memory caches whose hit rate is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Clients, read on every token request.
    Client,
    /// Users, read on every token issue and API call.
    User,
    /// Who a grant belongs to: what validating an access token needs beyond its own content.
    GrantOwner,
    /// Refresh-token families: a hit that shows the presented token as current saves the
    /// refresh its read.
    Family,
    /// JWT access tokens whose signature was verified before: a miss costs an RSA verification,
    /// not a read.
    JwtSignature,
}

impl Cache {
    const ALL: [Cache; 5] = [
        Self::Client,
        Self::User,
        Self::GrantOwner,
        Self::Family,
        Self::JwtSignature,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::User => "user",
            Self::GrantOwner => "grant_owner",
            Self::Family => "family",
            Self::JwtSignature => "jwt_signature",
        }
    }
}

pub(crate) fn refresh(outcome: RefreshOutcome) {
    counter!(REFRESHES, "outcome" => outcome.label()).increment(1);
}

/// `reason` is a throttle reason's label: the throttle names its reasons, the metrics only count.
pub(crate) fn throttled(reason: &'static str) {
    counter!(THROTTLED, "reason" => reason).increment(1);
}

/// Lookups of one cache so far in this process. An API call makes three or four lookups;
/// counting each through the facade (a registry lookup by name and label) cost about 0.4 µs a
/// call, a tenth of what the API adds to the bare HTTP stack. They are counted here and handed
/// to the recorder when metrics are rendered.
struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Lookups {
    const fn new() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

static CLIENT_LOOKUPS: Lookups = Lookups::new();
static USER_LOOKUPS: Lookups = Lookups::new();
static GRANT_OWNER_LOOKUPS: Lookups = Lookups::new();
static FAMILY_LOOKUPS: Lookups = Lookups::new();
static JWT_SIGNATURE_LOOKUPS: Lookups = Lookups::new();

impl Cache {
    fn lookups(self) -> &'static Lookups {
        match self {
            Self::Client => &CLIENT_LOOKUPS,
            Self::User => &USER_LOOKUPS,
            Self::GrantOwner => &GRANT_OWNER_LOOKUPS,
            Self::Family => &FAMILY_LOOKUPS,
            Self::JwtSignature => &JWT_SIGNATURE_LOOKUPS,
        }
    }
}

pub(crate) fn cache_lookup(cache: Cache, hit: bool) {
    let lookups = cache.lookups();
    let count = if hit { &lookups.hits } else { &lookups.misses };
    count.fetch_add(1, Ordering::Relaxed);
}

/// Hands the cache counts to the installed recorder (when metrics are rendered).
pub fn publish_cache_lookups() {
    for cache in Cache::ALL {
        let lookups = cache.lookups();
        counter!(CACHE_HITS, "cache" => cache.label())
            .absolute(lookups.hits.load(Ordering::Relaxed));
        counter!(CACHE_MISSES, "cache" => cache.label())
            .absolute(lookups.misses.load(Ordering::Relaxed));
    }
}

pub(crate) fn purged(counts: &PurgeCounts) {
    for (kind, rows) in [
        ("access_tokens", counts.access_tokens),
        ("codes", counts.codes),
        ("grants", counts.grants),
        ("events", counts.events),
        ("changes", counts.changes),
        ("dpop_proofs", counts.dpop_proofs),
    ] {
        counter!(PURGED_ROWS, "kind" => kind).increment(rows);
    }
}

/// The PostgreSQL pool's state, set by the store when metrics are rendered.
pub fn pool_status(size: usize, available: usize, waiting: usize) {
    gauge!(POOL_SIZE).set(size as f64);
    gauge!(POOL_AVAILABLE).set(available as f64);
    gauge!(POOL_WAITING).set(waiting as f64);
}

/// Registers the help text of every metric above with the installed recorder.
pub fn describe() {
    describe_counter!(
        REFRESHES,
        Unit::Count,
        "Refresh-token requests by outcome: rotated, refreshed, replayed, reuse_detected, concurrent_refused, revoked, invalid, failed."
    );
    describe_counter!(
        THROTTLED,
        Unit::Count,
        "Requests refused with 429 by a throttle budget, by reason."
    );
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Lookups answered from an in-memory cache, by cache."
    );
    describe_counter!(
        CACHE_MISSES,
        Unit::Count,
        "Lookups that went to the database, by cache."
    );
    describe_counter!(
        PURGED_ROWS,
        Unit::Count,
        "Rows removed by housekeeping, by kind."
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Duration of one durable group commit of the SQLite writer."
    );
    describe_histogram!(
        STORE_COMMIT_GROUP_SIZE,
        Unit::Count,
        "Write jobs sharing one commit of the SQLite writer."
    );
    describe_gauge!(
        POOL_SIZE,
        Unit::Count,
        "PostgreSQL connections held by the pool."
    );
    describe_gauge!(
        POOL_AVAILABLE,
        Unit::Count,
        "PostgreSQL connections idle in the pool."
    );
    describe_gauge!(
        POOL_WAITING,
        Unit::Count,
        "Requests waiting for a PostgreSQL connection."
    );
}
