//! What the server keeps in memory so that a request needs no read for what rarely changes:
//! the revoked grants and access tokens (the only state an access token is checked against),
//! and caches of clients, users, grants' owners and refresh-token families.
//!
//! A cached family is a hint, never a verdict: a refresh that it shows as the current token of
//! a live family goes ahead, and the store's conditional update (applied only while the
//! presented token is still current and the grant live) decides; anything else is judged again
//! on a fresh read. So a family another process or node has changed since it was cached costs
//! one read, and never refuses or punishes a request.
//!
//! Every change comes from the change feed, the same for every process and node: the server's
//! own changes are applied the moment they commit (so that a revocation through this server
//! takes effect on the very next request), and a follower task reads the feed for the changes
//! of other processes (the admin commands) and, on PostgreSQL, of other nodes.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::model::{Change, ChangeKind, Client, Family, User};
use crate::operations::metrics::Cache;
use crate::time::Timestamp;
use crate::tokens::hash::Hash;

/// Entries each cache holds at most.
const CACHE_ENTRIES: usize = 100_000;
/// Families cached at most: the ones refreshed lately (about 300 bytes each).
const FAMILY_ENTRIES: usize = 50_000;

/// The owner of a grant: what never changes about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantOwner {
    pub client_id: String,
    pub user_id: String,
    pub org_id: String,
}

#[derive(Debug)]
struct State {
    revoked_grants: HashMap<String, Timestamp>,
    revoked_tokens: HashMap<Hash, Timestamp>,
    clients: LruCache<String, Client>,
    users: LruCache<String, Arc<User>>,
    owners: LruCache<String, GrantOwner>,
    families: LruCache<String, Family>,
    /// The newest change-feed entry applied.
    seq: i64,
}

#[derive(Debug)]
pub(crate) struct Guard {
    state: Mutex<State>,
}

impl Default for Guard {
    fn default() -> Self {
        let cap = NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self {
            state: Mutex::new(State {
                revoked_grants: HashMap::new(),
                revoked_tokens: HashMap::new(),
                clients: LruCache::new(cap),
                users: LruCache::new(cap),
                owners: LruCache::new(cap),
                families: LruCache::new(
                    NonZeroUsize::new(FAMILY_ENTRIES).unwrap_or(NonZeroUsize::MIN),
                ),
                seq: 0,
            }),
        }
    }
}

fn hex_hash(key: &str) -> Option<Hash> {
    hex::decode(key).ok()?.try_into().ok()
}

impl State {
    fn apply(&mut self, kind: ChangeKind, key: &str, until: Timestamp) {
        match kind {
            ChangeKind::GrantRevoked => {
                let entry = self.revoked_grants.entry(key.to_owned()).or_insert(until);
                *entry = (*entry).max(until);
                self.families.pop(key);
            }
            ChangeKind::AccessTokenRevoked => {
                if let Some(hash) = hex_hash(key) {
                    let entry = self.revoked_tokens.entry(hash).or_insert(until);
                    *entry = (*entry).max(until);
                }
            }
            ChangeKind::ClientChanged => {
                self.clients.pop(key);
            }
            ChangeKind::UserChanged => {
                self.users.pop(key);
            }
        }
    }
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change this process has just committed.
    pub(crate) fn changed(&self, kind: ChangeKind, key: &str, until: Timestamp) {
        self.lock().apply(kind, key, until);
    }

    /// Applies an entry pushed as it was committed, if it is the next one; returns whether it
    /// was (or had been applied already). Otherwise the caller reads the feed.
    pub(crate) fn apply_next(&self, change: &Change) -> bool {
        let mut state = self.lock();
        if change.seq <= state.seq {
            return true;
        }
        if change.seq != state.seq + 1 {
            return false;
        }
        state.apply(change.kind, &change.key, change.until);
        state.seq = change.seq;
        true
    }

    /// Applies entries read from the change feed; returns whether the feed had a gap (entries
    /// purged before this process read them), after which nothing cached can be trusted.
    pub(crate) fn apply_feed(&self, changes: &[Change]) -> bool {
        let mut state = self.lock();
        let mut gap = false;
        for change in changes {
            if change.seq <= state.seq {
                continue;
            }
            gap |= state.seq > 0 && change.seq > state.seq + 1;
            state.apply(change.kind, &change.key, change.until);
            state.seq = change.seq;
        }
        if gap {
            state.clients.clear();
            state.users.clear();
            state.families.clear();
        }
        gap
    }

    /// Starts over from a snapshot of the feed: the entries still in force and the newest
    /// sequence number.
    pub(crate) fn reset(&self, live: &[Change], seq: i64) {
        let mut state = self.lock();
        state.revoked_grants.clear();
        state.revoked_tokens.clear();
        state.clients.clear();
        state.users.clear();
        state.families.clear();
        for change in live {
            state.apply(change.kind, &change.key, change.until);
        }
        state.seq = seq;
    }

    pub(crate) fn seq(&self) -> i64 {
        self.lock().seq
    }

    /// Forgets revocations whose tokens have all expired.
    pub(crate) fn prune(&self, now: Timestamp) {
        let mut state = self.lock();
        state.revoked_grants.retain(|_, until| *until > now);
        state.revoked_tokens.retain(|_, until| *until > now);
    }

    pub(crate) fn grant_revoked(&self, grant_id: &str) -> bool {
        self.lock().revoked_grants.contains_key(grant_id)
    }

    pub(crate) fn token_revoked(&self, token_hash: &Hash) -> bool {
        self.lock().revoked_tokens.contains_key(token_hash)
    }

    /// What `read` takes from the cached client, without copying the rest of it (the API's
    /// path asks only whether the client is blocked).
    pub(crate) fn read_client<R>(
        &self,
        client_id: &str,
        read: impl FnOnce(&Client) -> R,
    ) -> Option<R> {
        let found = self.lock().clients.get(client_id).map(read);
        crate::operations::metrics::cache_lookup(Cache::Client, found.is_some());
        found
    }

    pub(crate) fn keep_client(&self, client: &Client) {
        self.lock()
            .clients
            .put(client.client_id.clone(), client.clone());
    }

    pub(crate) fn user(&self, user_id: &str) -> Option<Arc<User>> {
        let found = self.lock().users.get(user_id).cloned();
        crate::operations::metrics::cache_lookup(Cache::User, found.is_some());
        found
    }

    pub(crate) fn keep_user(&self, user: &Arc<User>) {
        self.lock().users.put(user.id.clone(), Arc::clone(user));
    }

    pub(crate) fn owner(&self, grant_id: &str) -> Option<GrantOwner> {
        let found = self.lock().owners.get(grant_id).cloned();
        crate::operations::metrics::cache_lookup(Cache::GrantOwner, found.is_some());
        found
    }

    pub(crate) fn keep_owner(&self, grant_id: &str, owner: GrantOwner) {
        self.lock().owners.put(grant_id.to_owned(), owner);
    }

    /// A family as this process last saw it: a hint (see the module's documentation).
    pub(crate) fn family(&self, grant_id: &str) -> Option<Family> {
        self.lock().families.get(grant_id).cloned()
    }

    pub(crate) fn keep_family(&self, family: Family) {
        self.lock().families.put(family.grant.id.clone(), family);
    }

    pub(crate) fn forget_family(&self, grant_id: &str) {
        self.lock().families.pop(grant_id);
    }

    /// How much it holds: revoked grants, revoked tokens, cached clients, users, owners,
    /// families.
    pub(crate) fn sizes(&self) -> [usize; 6] {
        let state = self.lock();
        [
            state.revoked_grants.len(),
            state.revoked_tokens.len(),
            state.clients.len(),
            state.users.len(),
            state.owners.len(),
            state.families.len(),
        ]
    }
}

/// How current this process's knowledge of revocations is: when the change feed was last read,
/// and from when, the reads failing, that knowledge counts as stale (docs/security.md, "When the
/// change feed cannot be read"). An access token is checked against memory only, so a process
/// that cannot read the feed would otherwise go on accepting tokens revoked elsewhere until they
/// expire.
///
/// Stale only once a read has failed and the bound has passed since the last good one: a
/// process whose follower is healthy is never stale, whatever its clock does (a test's manual
/// clock jumping hours ahead, a clock stepped forward), and a process that follows no feed at
/// all (a test's authority, an admin command) never fails a read.
#[derive(Debug)]
pub(crate) struct FeedFreshness {
    /// The time (ms) of the last successful read.
    last_read: AtomicI64,
    /// The time (ms) past which the knowledge is stale; `i64::MAX` while reads succeed. The
    /// one value the request path loads.
    stale_after: AtomicI64,
    max_staleness_ms: i64,
}

/// The revocation knowledge is older than the bound: the change feed has not been read since
/// `unread_for_secs` ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeFeedStale {
    pub unread_for_secs: u64,
}

impl std::fmt::Display for ChangeFeedStale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the change feed has not been read for {} s",
            self.unread_for_secs
        )
    }
}

impl FeedFreshness {
    /// Fresh as of `now`, with `max_staleness` as the bound.
    pub(crate) fn new(now: Timestamp, max_staleness: std::time::Duration) -> Self {
        Self {
            last_read: AtomicI64::new(now.millis()),
            stale_after: AtomicI64::new(i64::MAX),
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The feed was read at `now`, and what it held applied.
    pub(crate) fn read(&self, now: Timestamp) {
        self.last_read.fetch_max(now.millis(), Ordering::Relaxed);
        self.stale_after.store(i64::MAX, Ordering::Relaxed);
    }

    /// A read failed: the knowledge goes stale once the bound has passed since the last good one.
    pub(crate) fn read_failed(&self) {
        let last = self.last_read.load(Ordering::Relaxed);
        self.stale_after.store(
            last.saturating_add(self.max_staleness_ms),
            Ordering::Relaxed,
        );
    }

    /// Whether the knowledge may still be trusted at `now`: one atomic load while it may.
    pub(crate) fn check(&self, now: Timestamp) -> Result<(), ChangeFeedStale> {
        if now.millis() <= self.stale_after.load(Ordering::Relaxed) {
            return Ok(());
        }
        let unread_for_ms = now
            .millis()
            .saturating_sub(self.last_read.load(Ordering::Relaxed));
        Err(ChangeFeedStale {
            unread_for_secs: u64::try_from(unread_for_ms / 1000).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, kind: ChangeKind, key: &str) -> Change {
        Change {
            seq,
            kind,
            key: key.to_owned(),
            until: Timestamp(1_000),
        }
    }

    #[test]
    fn revocations_apply_until_they_expire() {
        let guard = Guard::default();
        guard.changed(ChangeKind::GrantRevoked, "g1", Timestamp(500));
        let token = [7u8; 32];
        guard.changed(
            ChangeKind::AccessTokenRevoked,
            &hex::encode(token),
            Timestamp(900),
        );
        assert!(guard.grant_revoked("g1") && guard.token_revoked(&token));
        guard.prune(Timestamp(600));
        assert!(!guard.grant_revoked("g1") && guard.token_revoked(&token));
    }

    #[test]
    fn the_feed_applies_once_in_order_and_a_gap_clears_the_caches() {
        let guard = Guard::default();
        guard.reset(&[], 10);
        assert!(!guard.apply_feed(&[change(11, ChangeKind::GrantRevoked, "g")]));
        assert!(!guard.apply_feed(&[change(11, ChangeKind::GrantRevoked, "g")]));
        assert_eq!(guard.seq(), 11);
        let mut client = Client {
            client_id: "c".into(),
            name: "C".into(),
            secret_hash: None,
            redirect_uris: vec!["https://c.example/cb".into()],
            scopes: tessera_proto::Scope::parse("api").unwrap(),
            refresh_token_policy: crate::policy::RefreshTokenPolicy::Infinite,
            access_token_ttl_secs: 60,
            rotate_refresh_tokens: false,
            allow_user_agent_flow: false,
            refresh_retry_window_secs: 0,
            created_at: Timestamp(0),
            openid: Default::default(),
            dpop: Default::default(),
            controls: Default::default(),
        };
        guard.keep_client(&client);
        assert!(guard.read_client("c", Client::clone).is_some());
        assert!(guard.apply_feed(&[change(15, ChangeKind::UserChanged, "u")]));
        assert!(
            guard.read_client("c", Client::clone).is_none(),
            "a gap clears the caches"
        );
        guard.keep_client(&client);
        client.name = "renamed".into();
        guard.apply_feed(&[change(16, ChangeKind::ClientChanged, "c")]);
        assert!(guard.read_client("c", Client::clone).is_none());
    }

    #[test]
    fn knowledge_goes_stale_only_after_a_failed_read_and_the_bound() {
        let freshness = FeedFreshness::new(Timestamp(0), std::time::Duration::from_secs(10));
        assert!(
            freshness.check(Timestamp(3_600_000)).is_ok(),
            "no failed read: the clock alone never makes it stale"
        );
        freshness.read(Timestamp(1_000));
        freshness.read_failed();
        assert!(
            freshness.check(Timestamp(11_000)).is_ok(),
            "within the bound"
        );
        assert_eq!(
            freshness.check(Timestamp(11_001)),
            Err(ChangeFeedStale {
                unread_for_secs: 10
            })
        );
        freshness.read(Timestamp(12_000));
        assert!(freshness.check(Timestamp(60_000)).is_ok(), "read again");
    }
}
