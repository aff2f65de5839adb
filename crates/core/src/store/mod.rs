//! The storage contract. Every backend implements [`Store`], that is its eight concerns; nothing
//! above it branches on which database is behind it. Each method is one transaction: a rotation, a family revocation or an
//! issuance either happens whole or not at all.
//!
//! What every backend must carry out (the conformance suite is its executable form):
//! - a refresh is one conditional update of the family's row, applied only while the presented
//!   token is the family's current one and the grant is live; of concurrent refreshes of one
//!   token exactly one applies, the others are `Stale` and write nothing;
//! - a rotation makes the presented token the family's previous one and records when, so that
//!   the retry window is closed by the next rotation;
//! - the events a write carries are written in its transaction, or not at all;
//! - a refresh without rotation that does not record its use changes no row but adds its event;
//! - every revocation, and every change to a client or a user, is appended to the change feed
//!   in the same transaction, which is how caches of other processes and nodes learn of it;
//! - the approval limit evicts, in the issuance's transaction, the oldest live refresh-token
//!   grants of the user and client beyond it;
//! - a purge round removes at most `batch` rows per rule.

use async_trait::async_trait;

use crate::model::{
    AccessTokenRecord, AuthCode, Change, Client, Event, EventKind, Family, Grant, Note, Org,
    StoredEvent, User,
};
use crate::time::Timestamp;
use crate::tokens::hash::Hash;
use crate::tokens::signing_keys::SigningKey;

mod usage;
pub use usage::{AppUsage, TokenUsage, Usage, UsageDelta, UserUsage};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (a username, a client id).
    #[error("already exists: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or is busy; nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged, never sent.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// What a store pushes to the followers of its change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// An entry, just committed.
    Entry(Change),
    /// Entries may have been committed unannounced: read the feed.
    ReadFeed,
}

/// What an update of a user does to the user's browser sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserSessions {
    /// They go on (an email change, enabling a user).
    Keep,
    /// Every one of them ends: the session epoch goes up in the same write (a new password, a
    /// role given or taken away).
    End,
}

/// Outcome of presenting an authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First presentation: the code is now spent, whatever comes of this request.
    /// Boxed: a code is many times larger than the other outcomes.
    Redeemed(Box<AuthCode>),
    /// The code was presented before. This presentation is recorded on the code, so that an
    /// issuance still in flight from the first one issues nothing; what the first one issued,
    /// if it has, is revoked in the same transaction (RFC 6749 §4.1.2).
    AlreadyUsed {
        revoked_grant: Option<String>,
    },
    NotFound,
}

/// Everything an issuance writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Issuance {
    pub grant: Grant,
    /// The family's first refresh token, if one is issued.
    pub refresh_token_hash: Option<Hash>,
    /// When the grant expires from idleness under its client's policy, if it can.
    pub idle_expires_at: Option<Timestamp>,
    /// The issuance's audit events, written with it.
    pub events: Vec<Event>,
    /// The code this issuance was redeemed from: linked to the grant in the same transaction,
    /// unless the code was presented again meanwhile — then nothing is issued.
    pub code_hash: Option<Hash>,
    /// The approval limit: when issuing a refresh token makes the user's live refresh-token
    /// grants for this client more than this, the oldest are revoked with their tokens, in the
    /// same transaction.
    pub max_live_grants: Option<u32>,
}

/// A refresh request's state change, applied only if the presented token is still its family's
/// current one and the grant is live.
#[derive(Debug, Clone)]
pub struct RefreshCommit {
    pub presented_hash: Hash,
    pub grant_id: String,
    /// `Some` when rotating: this becomes the current token and the presented one the previous,
    /// rotated out at `now`.
    pub successor_hash: Option<Hash>,
    /// When rotating: the thumbprint of the key the new access token is bound to, if it is.
    /// It becomes the family's `rotated_jkt` in the same conditional write as the rotation (no
    /// write of its own), so that a replay inside the retry window rebuilds the identical pair.
    pub successor_jkt: Option<String>,
    /// The grant's new idle expiry under its client's policy, if it has one.
    pub idle_expires_at: Option<Timestamp>,
    /// Whether a refresh without rotation writes the grant's last use (and idle expiry): only
    /// an idle limit reads them. Without one, the refresh writes its event alone, still only if
    /// the presented token is current and the grant live, and the audit trail holds the use.
    pub record_use: bool,
    pub now: Timestamp,
    /// The refresh's audit event, written only if the refresh applies.
    pub event: Event,
}

/// What an issuance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Written; `evicted` are the grants the approval limit revoked, oldest first.
    Issued { evicted: Vec<String> },
    /// The code was presented again while this issuance was on its way: nothing was written.
    CodePresentedAgain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Committed,
    /// The presented token was used, or its grant revoked, since it was read: nothing written.
    Stale,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events with a larger id (for following).
    pub after_id: i64,
    pub limit: u32,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub grant_id: Option<String>,
    pub kind: Option<EventKind>,
    /// Only events at or after this instant (a summary over the last days).
    pub since: Option<Timestamp>,
    /// Newest first (the admin console's list), instead of id order (following).
    pub newest_first: bool,
}

/// What housekeeping removes, decided by the domain (which knows the policies) and carried out
/// by the store in rounds: each [`Store::purge`] call is one short transaction that removes at
/// most `batch` rows per rule, so that a backlog (after a long downtime) never becomes one huge
/// write that stalls refreshes.
#[derive(Debug, Clone)]
pub struct PurgePlan {
    /// Most rows one rule removes in one round (grants count as one row with their tokens).
    pub batch: u32,
    /// Access tokens that expired before this.
    pub access_expired_before: Timestamp,
    /// Authorization codes that expired before this (used or not).
    pub codes_expired_before: Timestamp,
    /// Grants revoked before this, with all their rows.
    pub revoked_before: Timestamp,
    /// Events older than this.
    pub events_before: Timestamp,
    /// Grants whose idle expiry is before this.
    pub idle_expired_before: Timestamp,
    /// Change-feed entries that stopped mattering before this.
    pub changes_before: Timestamp,
    /// Seen DPoP proofs that expired before this (stores that share them; see [`DpopProofs`]).
    pub dpop_proofs_expired_before: Timestamp,
    pub clients: Vec<ClientPurge>,
}

/// Per-client cut-offs, from the client's policy.
#[derive(Debug, Clone)]
pub struct ClientPurge {
    pub client_id: String,
    /// Grants created before this have outlived the policy's absolute lifetime.
    pub created_before: Option<Timestamp>,
    /// Grants without a refresh token created before this have no live access token left.
    pub access_only_created_before: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Access-token rows of the earlier, stored format.
    pub access_tokens: u64,
    pub codes: u64,
    pub grants: u64,
    pub events: u64,
    pub changes: u64,
    /// Seen DPoP proofs, past their `iat` window.
    pub dpop_proofs: u64,
}

impl PurgeCounts {
    pub fn add(&mut self, other: PurgeCounts) {
        self.access_tokens += other.access_tokens;
        self.codes += other.codes;
        self.grants += other.grants;
        self.events += other.events;
        self.changes += other.changes;
        self.dpop_proofs += other.dpop_proofs;
    }
}

/// What an operator counts (`tessera admin stats`), whatever tables hold it: not the rows of
/// the earlier formats, nor the bookkeeping of the change feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inventory {
    pub clients: u64,
    pub users: u64,
    /// Grants not revoked, with a refresh token or without (those live as long as their access
    /// tokens). Housekeeping removes the ones past their client's policy.
    pub live_grants: u64,
    /// The current refresh tokens of live grants (a family has one at a time).
    pub live_refresh_tokens: u64,
    /// The refresh tokens of revoked grants, kept until housekeeping removes them a day after
    /// their revocation.
    pub revoked_refresh_tokens: u64,
    /// Audit events, kept for the audit retention.
    pub events: u64,
}

impl Inventory {
    /// The names a backend's counting query gives its counts, in [`Inventory::from_named`].
    pub const NAMES: [&'static str; 6] = [
        "clients",
        "users",
        "live_grants",
        "live_refresh_tokens",
        "revoked_refresh_tokens",
        "events",
    ];

    /// From a query's `(name, count)` rows, named as in [`Inventory::NAMES`]; a name missing is
    /// the query's mistake, reported as `Internal`.
    pub fn from_named(counts: &[(String, u64)]) -> Result<Self, StoreError> {
        let count = |name: &str| {
            counts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, count)| *count)
                .ok_or_else(|| StoreError::Internal(format!("the inventory lacks {name}")))
        };
        Ok(Self {
            clients: count("clients")?,
            users: count("users")?,
            live_grants: count("live_grants")?,
            live_refresh_tokens: count("live_refresh_tokens")?,
            revoked_refresh_tokens: count("revoked_refresh_tokens")?,
            events: count("events")?,
        })
    }
}

/// One round of housekeeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeRound {
    pub counts: PurgeCounts,
    /// Whether every rule removed fewer than the batch: nothing is left to purge.
    pub complete: bool,
}

/// Everything a backend is: the eight concerns below, each its own trait. Code above the store
/// holds an `Arc<dyn Store>` and brings the concern it uses into scope
/// (`use tessera_core::store::Grants;`, or `store::prelude::*`).
pub trait Store:
    Operations + Directory + Grants + Audit + Records + SigningKeys + DpopProofs + Usage
{
}

impl<T: Operations + Directory + Grants + Audit + Records + SigningKeys + DpopProofs + Usage> Store
    for T
{
}

/// What an operator asks of the database: health, time, the change feed's push, housekeeping.
#[async_trait]
pub trait Operations: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the database answers and its schema is the one this build expects (`/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;
    /// The database's own clock, where it has one that several server processes share
    /// (PostgreSQL's); `None` where the process's clock is the database's (embedded SQLite).
    /// Servers stamp and judge time by it, so that nodes with skewed clocks agree.
    async fn database_time(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(None)
    }
    /// The change feed's entries as they are committed, by any process, where the database
    /// can push them (PostgreSQL's `NOTIFY`); `None` where followers poll only. A follower
    /// applies an entry at once when it is the next one; on anything else — a gap, a lagging
    /// receiver, or a `ChangeNotice::ReadFeed` after a lost connection — it reads the feed.
    /// Nothing is lost if a notice is: followers poll the feed too.
    fn change_notices(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>> {
        None
    }
    /// Sets the gauges of the backend's own state (a connection pool's usage) through
    /// [`crate::operations::metrics`]; called when the metrics are rendered, so they are read when asked.
    fn publish_gauges(&self) {}

    // Housekeeping.
    /// One round of the plan; call again until it is complete.
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeRound, StoreError>;
    /// Row counts per table, for the growth measurement and the tests of housekeeping.
    async fn row_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// What an operator counts (`tessera admin stats`), in time proportional to the rows.
    async fn inventory(&self) -> Result<Inventory, StoreError>;
}

/// Who: the organisation, its users, the clients, and which scopes a user approved for a client.
#[async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug + 'static {
    // Organisation and users.
    async fn insert_org(&self, org: &Org) -> Result<(), StoreError>;
    /// The organisation this server serves (the first one created).
    async fn default_org(&self) -> Result<Option<Org>, StoreError>;
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// Usernames are compared case-insensitively (ASCII), as Salesforce's, for lookup and for
    /// uniqueness: `Ada@Example.com` finds `ada@example.com`, and cannot be created beside it.
    /// Core asks with a username's normal form (`identity::username`), the form it stores, so
    /// that the stores' different foldings beyond ASCII never decide.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's mutable fields (email, password hash, disabled, admin), with a
    /// `UserChanged` entry in the change feed; with [`BrowserSessions::End`] the session epoch
    /// goes up in the same write (`user.session_epoch` is never written: it only goes up, here
    /// and in [`Directory::end_sessions`]). Returns false when no such user exists.
    async fn update_user(
        &self,
        user: &User,
        sessions: BrowserSessions,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends every browser session of a user: the session epoch goes up by one, atomically (two
    /// logouts at once both count). Returns false when no such user exists.
    async fn end_sessions(&self, user_id: &str) -> Result<bool, StoreError>;
    /// Disables a user in one transaction: `disabled` set, the session epoch up by one (with a
    /// `UserChanged` entry in the change feed), and every live grant of the user revoked (each
    /// in the change feed). Returns the revoked grants' ids, or `None` when no such user
    /// exists (then nothing is written).
    async fn disable_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError>;

    // Clients.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Replaces a client's settings, with a `ClientChanged` entry in the change feed. When its
    /// policy's idle limit changed, its grants' idle expiry follows.
    async fn update_client(&self, client: &Client, now: Timestamp) -> Result<bool, StoreError>;
    /// Deletes a client and everything issued to it, with a `ClientChanged` entry in the change
    /// feed. Revoke its grants first, so that their access tokens stop working everywhere.
    async fn delete_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    // Consent: which scopes a user has approved for a client.
    async fn approved_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError>;
    async fn record_approval(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// What is issued: codes, grants with their refresh-token families, access-token revocations, and
/// the change feed that carries every revocation to every process.
#[async_trait]
pub trait Grants: Send + Sync + std::fmt::Debug + 'static {
    // Authorization codes.
    async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError>;
    /// Spends a code on its first presentation, whatever its expiry or client (the caller
    /// checks those); see [`CodeRedemption`] for a later one.
    async fn redeem_code(
        &self,
        code_hash: &Hash,
        now: Timestamp,
    ) -> Result<CodeRedemption, StoreError>;

    // Grants and tokens.
    /// Creates the grant with its first refresh token and its events; links the code (see
    /// [`Issuance::code_hash`]); applies the approval limit.
    async fn issue(&self, issuance: &Issuance) -> Result<IssueOutcome, StoreError>;
    /// A grant with its family's refresh-token state.
    async fn family(&self, grant_id: &str) -> Result<Option<Family>, StoreError>;
    /// The grant of a refresh token of the earlier, unsigned format, by its hash.
    async fn legacy_refresh_grant(&self, token_hash: &Hash) -> Result<Option<String>, StoreError>;
    /// Applies a refresh as one conditional update (see [`RefreshCommit`]).
    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError>;
    /// Revokes a grant (its refresh tokens, and so its access tokens), with a `GrantRevoked`
    /// entry in the change feed. Returns false when it was unknown or already revoked.
    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// An access token of the earlier, stored format.
    async fn access_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<AccessTokenRecord>, StoreError>;
    /// Revokes one access token until it expires: an `AccessTokenRevoked` entry in the change
    /// feed (and the row of a token of the stored format).
    async fn revoke_access_token(
        &self,
        token_hash: &Hash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError>;
    /// Every grant of a user (live and revoked), newest first.
    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError>;
    /// Revokes every live grant of a user (each in the change feed); returns their ids.
    async fn revoke_grants_of_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// Revokes every live grant of a user for one client (each in the change feed): OAuth
    /// Usage's "revoke this user of this app". Returns their ids, oldest first.
    async fn revoke_grants_of_user_and_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// Revokes every live grant of a client (each in the change feed); returns their ids.
    async fn revoke_grants_of_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;

    // The change feed: revocations and client and user changes, in order, for caches.
    /// Entries after `after_seq`, oldest first, at most `limit`.
    async fn changes_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Change>, StoreError>;
    /// Entries still in force at `now` (revocations whose tokens may still be unexpired), and
    /// the newest sequence number: where a new process starts.
    async fn live_changes(&self, now: Timestamp) -> Result<(Vec<Change>, i64), StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait Audit: Send + Sync + std::fmt::Debug + 'static {
    // Audit trail.
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError>;
    /// Events in id order.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError>;
}

/// The REST API's records (Salesforce's Note).
#[async_trait]
pub trait Records: Send + Sync + std::fmt::Debug + 'static {
    // The REST API's records.
    async fn insert_note(&self, note: &Note) -> Result<(), StoreError>;
    async fn note(&self, id: &str) -> Result<Option<Note>, StoreError>;
    async fn list_notes(&self, owner_id: &str, limit: u32) -> Result<Vec<Note>, StoreError>;
    async fn update_note(&self, note: &Note) -> Result<bool, StoreError>;
    async fn delete_note(&self, id: &str) -> Result<bool, StoreError>;
}

/// The signing-key set (ID tokens, JWT access tokens): a few rows, each written once and
/// changed only by its retirement. Its private keys come and go sealed under the server key.
#[async_trait]
pub trait SigningKeys: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a key; `Conflict` if its kid is taken.
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;
    /// Every key, retired ones too, oldest first (by creation, then kid).
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    /// Sets when a key is retired (replacing an earlier date). Returns false when no such key
    /// exists.
    async fn retire_signing_key(&self, kid: &str, retire_at: Timestamp)
        -> Result<bool, StoreError>;
}

/// The DPoP proofs seen lately, where several nodes must share them (RFC 9449 §11.1): a proof
/// replayed to another node is caught only if that node can see it was used. A store that does
/// not share them (SQLite is one process's; the memory store is a test's) keeps the defaults,
/// and the server keeps its seen proofs in memory instead.
#[async_trait]
pub trait DpopProofs: Send + Sync + std::fmt::Debug + 'static {
    /// Whether [`DpopProofs::remember_dpop_proof`] records proofs where every node sees them.
    /// Only then is it called.
    fn shares_dpop_proofs(&self) -> bool {
        false
    }

    /// Records a proof's replay key until `expires_at`: true when it was not seen before (or
    /// only as an entry expired at `now`), false when it was seen and is not expired, that is a
    /// replay. One round trip, atomic between nodes: of two nodes remembering the same key at
    /// once, exactly one gets true. The default, for stores that do not share proofs, records
    /// nothing.
    async fn remember_dpop_proof(
        &self,
        _key: &Hash,
        _expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// Every concern in scope at once.
pub mod prelude {
    pub use super::{
        Audit, Directory, DpopProofs, Grants, Operations, Records, SigningKeys, Store, Usage,
    };
}

#[cfg(any(test, feature = "testing"))]
pub mod failing;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
