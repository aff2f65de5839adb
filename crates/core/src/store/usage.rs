//! The store's side of OAuth Usage (docs/usage.md): each grant's use count and last use, and
//! the listings an administrator reads — apps, an app's users, a user's tokens of an app.
//!
//! A *use* of a grant is its issuance (its first use: the grant's `created_at`) and every
//! refresh that answered tokens. Only live grants are listed: not revoked, and not past their
//! idle expiry.

use async_trait::async_trait;

use crate::store::StoreError;
use crate::time::Timestamp;

/// Uses of one grant not yet written (the usage ledger's coalesced entry): added to its count,
/// and its last use moved to `last_used_at` unless it is later already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub grant_id: String,
    pub uses: u64,
    pub last_used_at: Timestamp,
}

/// One app (client) in OAuth Usage, over its live grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUsage {
    pub client_id: String,
    pub name: String,
    /// Distinct users with a live grant.
    pub user_count: u64,
    /// Live grants (Salesforce counts tokens).
    pub token_count: u64,
    /// Uses of its live grants, summed.
    pub use_count: u64,
    /// The latest use of any of its live grants.
    pub last_used_at: Option<Timestamp>,
}

/// One user of an app, aggregated over the user's live grants of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    pub user_id: String,
    pub username: String,
    /// The oldest live grant's issuance.
    pub first_used_at: Timestamp,
    pub last_used_at: Timestamp,
    pub use_count: u64,
    pub token_count: u64,
}

/// One live grant (a "token" in Salesforce's OAuth Usage: one refresh-token family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUsage {
    pub grant_id: String,
    pub scope: String,
    /// Its issuance.
    pub first_used_at: Timestamp,
    pub last_used_at: Timestamp,
    pub use_count: u64,
    pub has_refresh_token: bool,
}

/// Usage counts and the OAuth Usage listings.
#[async_trait]
pub trait Usage: Send + Sync + std::fmt::Debug + 'static {
    /// Adds each delta to its grant in ONE transaction: `use_count + uses`, `last_used_at`
    /// the later of the two. Additive, so several nodes flushing their own deltas of one grant
    /// add up. A grant gone (purged, its client deleted) is skipped. Revoked grants are counted
    /// too: the uses happened.
    async fn record_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError>;
    /// Every client, with the counts of its live grants at `now` (zeros when it has none), by
    /// client id.
    async fn app_usage(&self, now: Timestamp) -> Result<Vec<AppUsage>, StoreError>;
    /// A page of a client's users with a live grant at `now`, by user id, those after
    /// `after_user_id` (keyset paging), at most `limit`.
    async fn app_users_usage(
        &self,
        client_id: &str,
        after_user_id: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<UserUsage>, StoreError>;
    /// A user's live grants of a client at `now`, oldest first.
    async fn user_tokens_usage(
        &self,
        client_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<TokenUsage>, StoreError>;
}
