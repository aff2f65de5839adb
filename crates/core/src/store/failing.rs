//! A [`Store`] that fails on demand, for tests of what every endpoint answers when the
//! database is down: it passes each call to the store it wraps, or answers
//! `StoreError::Unavailable` while it is told to fail — every call, or the change feed's reads
//! alone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{
    AccessTokenRecord, AuthCode, Change, Client, Event, Family, Grant, Note, Org, StoredEvent, User,
};
use crate::store::{AppUsage, TokenUsage, Usage, UsageDelta, UserUsage};
use crate::store::{
    Audit, BrowserSessions, CodeRedemption, Directory, DpopProofs, EventFilter, Grants, Inventory,
    Issuance, IssueOutcome, Operations, PurgePlan, PurgeRound, Records, RefreshCommit,
    RefreshOutcome, SigningKeys, Store, StoreError,
};
use crate::time::Timestamp;
use crate::tokens::hash::Hash;
use crate::tokens::signing_keys::SigningKey;

#[derive(Debug)]
pub struct FailingStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    feed_failing: AtomicBool,
    signing_key_reads: AtomicU64,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
            feed_failing: AtomicBool::new(false),
            signing_key_reads: AtomicU64::new(0),
        }
    }

    /// From now on every call fails (`true`) or passes through (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on the change feed's reads fail (`true`) or pass through (`false`), whatever
    /// the rest of the store does.
    pub fn fail_change_feed(&self, failing: bool) {
        self.feed_failing.store(failing, Ordering::SeqCst);
    }

    /// How many times the signing keys were read: what a token with a made-up kid may cost.
    pub fn signing_key_reads(&self) -> u64 {
        self.signing_key_reads.load(Ordering::SeqCst)
    }

    fn check_feed(&self) -> Result<(), StoreError> {
        if self.feed_failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the change feed failing on demand".into(),
            ));
        }
        self.check()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("failing on demand".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Operations for FailingStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ready().await
    }

    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeRound, StoreError> {
        self.check()?;
        self.inner.purge(plan).await
    }

    async fn row_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.check()?;
        self.inner.row_counts().await
    }

    async fn inventory(&self) -> Result<Inventory, StoreError> {
        self.check()?;
        self.inner.inventory().await
    }
}

#[async_trait]
impl Directory for FailingStore {
    async fn insert_org(&self, org: &Org) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_org(org).await
    }

    async fn default_org(&self) -> Result<Option<Org>, StoreError> {
        self.check()?;
        self.inner.default_org().await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_user(user).await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.user_by_id(id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.user_by_username(username).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.check()?;
        self.inner.list_users().await
    }

    async fn update_user(
        &self,
        user: &User,
        sessions: BrowserSessions,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update_user(user, sessions, now).await
    }

    async fn end_sessions(&self, user_id: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.end_sessions(user_id).await
    }

    async fn disable_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.check()?;
        self.inner.disable_user(user_id, now).await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_client(client).await
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.check()?;
        self.inner.client_by_id(client_id).await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.check()?;
        self.inner.list_clients().await
    }

    async fn update_client(&self, client: &Client, now: Timestamp) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update_client(client, now).await
    }

    async fn delete_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_client(client_id, now).await
    }

    async fn approved_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.check()?;
        self.inner.approved_scope(user_id, client_id).await
    }

    async fn record_approval(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner
            .record_approval(user_id, client_id, scope, now)
            .await
    }
}

#[async_trait]
impl Grants for FailingStore {
    async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_code(code).await
    }

    async fn redeem_code(
        &self,
        code_hash: &Hash,
        now: Timestamp,
    ) -> Result<CodeRedemption, StoreError> {
        self.check()?;
        self.inner.redeem_code(code_hash, now).await
    }

    async fn issue(&self, issuance: &Issuance) -> Result<IssueOutcome, StoreError> {
        self.check()?;
        self.inner.issue(issuance).await
    }

    async fn family(&self, grant_id: &str) -> Result<Option<Family>, StoreError> {
        self.check()?;
        self.inner.family(grant_id).await
    }

    async fn legacy_refresh_grant(&self, token_hash: &Hash) -> Result<Option<String>, StoreError> {
        self.check()?;
        self.inner.legacy_refresh_grant(token_hash).await
    }

    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError> {
        self.check()?;
        self.inner.commit_refresh(commit).await
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.revoke_grant(grant_id, now).await
    }

    async fn access_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        self.check()?;
        self.inner.access_token(token_hash).await
    }

    async fn revoke_access_token(
        &self,
        token_hash: &Hash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner
            .revoke_access_token(token_hash, now, expires_at)
            .await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        self.check()?;
        self.inner.grant(grant_id).await
    }

    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.check()?;
        self.inner.grants_of_user(user_id).await
    }

    async fn revoke_grants_of_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.revoke_grants_of_user(user_id, now).await
    }

    async fn revoke_grants_of_user_and_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner
            .revoke_grants_of_user_and_client(user_id, client_id, now)
            .await
    }

    async fn revoke_grants_of_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.revoke_grants_of_client(client_id, now).await
    }

    async fn changes_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.check_feed()?;
        self.inner.changes_since(after_seq, limit).await
    }

    async fn live_changes(&self, now: Timestamp) -> Result<(Vec<Change>, i64), StoreError> {
        self.check_feed()?;
        self.inner.live_changes(now).await
    }
}

#[async_trait]
impl Audit for FailingStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.append_events(events).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.check()?;
        self.inner.events(filter).await
    }
}

#[async_trait]
impl Records for FailingStore {
    async fn insert_note(&self, note: &Note) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_note(note).await
    }

    async fn note(&self, id: &str) -> Result<Option<Note>, StoreError> {
        self.check()?;
        self.inner.note(id).await
    }

    async fn list_notes(&self, owner_id: &str, limit: u32) -> Result<Vec<Note>, StoreError> {
        self.check()?;
        self.inner.list_notes(owner_id, limit).await
    }

    async fn update_note(&self, note: &Note) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update_note(note).await
    }

    async fn delete_note(&self, id: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_note(id).await
    }
}

#[async_trait]
impl SigningKeys for FailingStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_signing_key(key).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.signing_key_reads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.signing_keys().await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        retire_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.retire_signing_key(kid, retire_at).await
    }
}

#[async_trait]
impl DpopProofs for FailingStore {
    fn shares_dpop_proofs(&self) -> bool {
        self.inner.shares_dpop_proofs()
    }

    async fn remember_dpop_proof(
        &self,
        key: &Hash,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.remember_dpop_proof(key, expires_at, now).await
    }
}

#[async_trait]
impl Usage for FailingStore {
    async fn record_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_usage(deltas).await
    }

    async fn app_usage(&self, now: Timestamp) -> Result<Vec<AppUsage>, StoreError> {
        self.check()?;
        self.inner.app_usage(now).await
    }

    async fn app_users_usage(
        &self,
        client_id: &str,
        after_user_id: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<UserUsage>, StoreError> {
        self.check()?;
        self.inner
            .app_users_usage(client_id, after_user_id, limit, now)
            .await
    }

    async fn user_tokens_usage(
        &self,
        client_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<TokenUsage>, StoreError> {
        self.check()?;
        self.inner.user_tokens_usage(client_id, user_id, now).await
    }
}
