//! A [`Store`] in memory, for tests: the domain's unit tests run on it, and the conformance
//! suite checks that it behaves as the real backends do. One mutex over all the state makes
//! every method one atomic step, as each is one transaction in a database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::{
    AccessTokenRecord, AuthCode, Change, ChangeKind, Client, Event, Family, Grant, Note, Org,
    StoredEvent, User,
};
use crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use crate::store::{AppUsage, TokenUsage, Usage, UsageDelta, UserUsage};
use crate::store::{
    Audit, BrowserSessions, CodeRedemption, Directory, DpopProofs, EventFilter, Grants, Inventory,
    Issuance, IssueOutcome, Operations, PurgeCounts, PurgePlan, PurgeRound, Records, RefreshCommit,
    RefreshOutcome, SigningKeys, StoreError,
};
use crate::time::Timestamp;
use crate::tokens::hash::Hash;
use crate::tokens::signing_keys::SigningKey;

#[derive(Debug, Default)]
struct State {
    orgs: Vec<Org>,
    users: BTreeMap<String, User>,
    clients: BTreeMap<String, Client>,
    approvals: HashMap<(String, String), String>,
    codes: HashMap<Hash, StoredCode>,
    grants: HashMap<String, StoredGrant>,
    /// Tokens of the earlier, unsigned refresh-token format, by hash.
    legacy_refresh: HashMap<Hash, String>,
    /// Access tokens of the earlier, stored format.
    access_tokens: HashMap<Hash, AccessTokenRecord>,
    changes: Vec<Change>,
    next_change: i64,
    events: Vec<StoredEvent>,
    next_event_id: i64,
    notes: HashMap<String, Note>,
    signing_keys: Vec<SigningKey>,
}

#[derive(Debug, Clone)]
struct StoredCode {
    code: AuthCode,
    used_at: Option<Timestamp>,
    grant_id: Option<String>,
    /// Presented again after its redemption.
    presented_again: bool,
}

#[derive(Debug, Clone)]
struct StoredGrant {
    family: Family,
    idle_expires_at: Option<Timestamp>,
    /// Its issuance and every refresh that answered tokens (docs/usage.md).
    use_count: u64,
}

impl StoredGrant {
    /// Whether OAuth Usage lists it at `now`: not revoked, not past its idle expiry.
    fn listed(&self, now: Timestamp) -> bool {
        self.family.grant.revoked_at.is_none() && self.idle_expires_at.is_none_or(|at| at > now)
    }
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }
}

/// Until when a change stays in the feed: a process that has not read the feed for longer
/// finds a gap, and resets its caches.
fn change_until(now: Timestamp) -> Timestamp {
    now.plus_secs(MAX_ACCESS_TOKEN_TTL_SECS)
}

fn same_username(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl State {
    fn feed(&mut self, kind: ChangeKind, key: &str, until: Timestamp) {
        self.next_change += 1;
        self.changes.push(Change {
            seq: self.next_change,
            kind,
            key: key.to_owned(),
            until,
        });
    }

    fn append(&mut self, events: &[Event]) {
        for event in events {
            self.next_event_id += 1;
            self.events.push(StoredEvent {
                id: self.next_event_id,
                event: event.clone(),
            });
        }
    }

    /// Revokes a live grant: its refresh tokens stop working, its access tokens with them.
    fn revoke_grant(&mut self, grant_id: &str, now: Timestamp) -> bool {
        let Some(stored) = self.grants.get_mut(grant_id) else {
            return false;
        };
        if stored.family.grant.revoked_at.is_some() {
            return false;
        }
        stored.family.grant.revoked_at = Some(now);
        for token in self.access_tokens.values_mut() {
            if token.grant_id == grant_id {
                token.revoked_at.get_or_insert(now);
            }
        }
        self.feed(ChangeKind::GrantRevoked, grant_id, change_until(now));
        true
    }

    /// Deletes a grant with what hangs off it; returns the stored access tokens it deleted.
    fn delete_grant(&mut self, grant_id: &str) -> u64 {
        self.grants.remove(grant_id);
        self.legacy_refresh.retain(|_, g| g != grant_id);
        let access = self.access_tokens.len();
        self.access_tokens.retain(|_, t| t.grant_id != grant_id);
        for stored in self.codes.values_mut() {
            if stored.grant_id.as_deref() == Some(grant_id) {
                stored.grant_id = None;
            }
        }
        (access - self.access_tokens.len()) as u64
    }

    /// Live grants matching `keep`, oldest first (created_at, id).
    fn live_grants(&self, keep: impl Fn(&Grant) -> bool) -> Vec<String> {
        let mut live: Vec<&Grant> = self
            .grants
            .values()
            .map(|s| &s.family.grant)
            .filter(|g| g.revoked_at.is_none() && keep(g))
            .collect();
        live.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        live.into_iter().map(|g| g.id.clone()).collect()
    }

    fn revoke_all(&mut self, ids: &[String], now: Timestamp) {
        for id in ids {
            self.revoke_grant(id, now);
        }
    }

    fn purge_grants(
        &mut self,
        batch: usize,
        matches: impl Fn(&StoredGrant) -> bool,
        counts: &mut PurgeCounts,
    ) -> bool {
        let ids: Vec<String> = self
            .grants
            .iter()
            .filter(|(_, g)| matches(g))
            .map(|(id, _)| id.clone())
            .take(batch)
            .collect();
        for id in &ids {
            counts.access_tokens += self.delete_grant(id);
            counts.grants += 1;
        }
        ids.len() < batch
    }
}

/// Removes at most `batch` entries of `map` matching `matches`; returns how many, and whether
/// fewer than the batch matched.
fn purge_map<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    batch: usize,
    matches: impl Fn(&V) -> bool,
) -> (u64, bool) {
    let keys: Vec<K> = map
        .iter()
        .filter(|(_, v)| matches(v))
        .map(|(k, _)| k.clone())
        .take(batch)
        .collect();
    for key in &keys {
        map.remove(key);
    }
    (keys.len() as u64, keys.len() < batch)
}

#[async_trait]
impl Operations for MemoryStore {
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeRound, StoreError> {
        let batch = plan.batch.max(1) as usize;
        Ok(self.with(|s| {
            let mut counts = PurgeCounts::default();
            let mut complete = true;
            let (n, done) = purge_map(&mut s.access_tokens, batch, |t| {
                t.expires_at < plan.access_expired_before
            });
            counts.access_tokens += n;
            complete &= done;
            let (n, done) = purge_map(&mut s.codes, batch, |c| {
                c.code.expires_at < plan.codes_expired_before
            });
            counts.codes += n;
            complete &= done;
            let old: Vec<i64> = s
                .events
                .iter()
                .filter(|e| e.event.at < plan.events_before)
                .map(|e| e.id)
                .take(batch)
                .collect();
            s.events.retain(|e| !old.contains(&e.id));
            counts.events += old.len() as u64;
            complete &= old.len() < batch;
            let stale: Vec<i64> = s
                .changes
                .iter()
                .filter(|c| c.until < plan.changes_before)
                .map(|c| c.seq)
                .take(batch)
                .collect();
            s.changes.retain(|c| !stale.contains(&c.seq));
            counts.changes += stale.len() as u64;
            complete &= stale.len() < batch;
            complete &= s.purge_grants(
                batch,
                |g| {
                    g.family
                        .grant
                        .revoked_at
                        .is_some_and(|t| t < plan.revoked_before)
                },
                &mut counts,
            );
            complete &= s.purge_grants(
                batch,
                |g| {
                    g.idle_expires_at
                        .is_some_and(|t| t < plan.idle_expired_before)
                },
                &mut counts,
            );
            for client in &plan.clients {
                let id = &client.client_id;
                if let Some(cut) = client.created_before {
                    complete &= s.purge_grants(
                        batch,
                        |g| &g.family.grant.client_id == id && g.family.grant.created_at < cut,
                        &mut counts,
                    );
                }
                let cut = client.access_only_created_before;
                complete &= s.purge_grants(
                    batch,
                    |g| {
                        let grant = &g.family.grant;
                        &grant.client_id == id && !grant.has_refresh_token && grant.created_at < cut
                    },
                    &mut counts,
                );
            }
            PurgeRound { counts, complete }
        }))
    }

    async fn inventory(&self) -> Result<Inventory, StoreError> {
        Ok(self.with(|s| {
            let grants = s.grants.values().map(|g| &g.family.grant);
            let count = |keep: fn(&&Grant) -> bool| grants.clone().filter(keep).count() as u64;
            Inventory {
                clients: s.clients.len() as u64,
                users: s.users.len() as u64,
                live_grants: count(|g| g.revoked_at.is_none()),
                live_refresh_tokens: count(|g| g.revoked_at.is_none() && g.has_refresh_token),
                revoked_refresh_tokens: count(|g| g.revoked_at.is_some() && g.has_refresh_token),
                events: s.events.len() as u64,
            }
        }))
    }

    async fn row_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.with(|s| {
            [
                ("orgs", s.orgs.len()),
                ("users", s.users.len()),
                ("clients", s.clients.len()),
                ("approvals", s.approvals.len()),
                ("auth_codes", s.codes.len()),
                ("grants", s.grants.len()),
                ("legacy_refresh_tokens", s.legacy_refresh.len()),
                ("access_tokens", s.access_tokens.len()),
                ("notes", s.notes.len()),
                ("signing_keys", s.signing_keys.len()),
                ("events", s.events.len()),
                ("changes", s.changes.len()),
            ]
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n as u64))
            .collect()
        }))
    }
}

#[async_trait]
impl Directory for MemoryStore {
    async fn insert_org(&self, org: &Org) -> Result<(), StoreError> {
        self.with(|s| {
            if s.orgs.iter().any(|o| o.id == org.id) {
                return Err(StoreError::Conflict("org id"));
            }
            s.orgs.push(org.clone());
            Ok(())
        })
    }

    async fn default_org(&self) -> Result<Option<Org>, StoreError> {
        Ok(self.with(|s| s.orgs.first().cloned()))
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        self.with(|s| {
            if s.users.contains_key(&user.id) {
                return Err(StoreError::Conflict("user id"));
            }
            if s.users
                .values()
                .any(|u| same_username(&u.username, &user.username))
            {
                return Err(StoreError::Conflict("username"));
            }
            s.users.insert(user.id.clone(), user.clone());
            Ok(())
        })
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| s.users.get(id).cloned()))
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| {
            s.users
                .values()
                .find(|u| same_username(&u.username, username))
                .cloned()
        }))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users: Vec<User> = self.with(|s| s.users.values().cloned().collect());
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    async fn update_user(
        &self,
        user: &User,
        sessions: BrowserSessions,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let Some(stored) = s.users.get_mut(&user.id) else {
                return false;
            };
            stored.email = user.email.clone();
            stored.password_hash = user.password_hash.clone();
            stored.disabled = user.disabled;
            stored.admin = user.admin;
            if sessions == BrowserSessions::End {
                stored.session_epoch += 1;
            }
            s.feed(ChangeKind::UserChanged, &user.id, change_until(now));
            true
        }))
    }

    async fn end_sessions(&self, user_id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            s.users
                .get_mut(user_id)
                .map(|stored| stored.session_epoch += 1)
                .is_some()
        }))
    }

    async fn disable_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.with(|s| {
            let stored = s.users.get_mut(user_id)?;
            stored.disabled = true;
            stored.session_epoch += 1;
            s.feed(ChangeKind::UserChanged, user_id, change_until(now));
            let ids = s.live_grants(|g| g.user_id == user_id);
            s.revoke_all(&ids, now);
            Some(ids)
        }))
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.with(|s| {
            if s.clients.contains_key(&client.client_id) {
                return Err(StoreError::Conflict("client id"));
            }
            s.clients.insert(client.client_id.clone(), client.clone());
            Ok(())
        })
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.with(|s| s.clients.get(client_id).cloned()))
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let mut clients: Vec<Client> = self.with(|s| s.clients.values().cloned().collect());
        clients.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(clients)
    }

    async fn update_client(&self, client: &Client, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let Some(stored) = s.clients.get_mut(&client.client_id) else {
                return false;
            };
            let idle_changed = stored.effective_refresh_policy().idle_secs()
                != client.effective_refresh_policy().idle_secs()
                || stored.access_token_ttl_secs != client.access_token_ttl_secs;
            *stored = Client {
                created_at: stored.created_at,
                ..client.clone()
            };
            if idle_changed {
                let idle = client.effective_refresh_policy().idle_secs();
                for g in s.grants.values_mut() {
                    if g.family.grant.client_id == client.client_id {
                        g.idle_expires_at = idle.map(|i| {
                            g.family
                                .grant
                                .last_used_at
                                .plus_secs(i.max(client.access_token_ttl_secs))
                        });
                    }
                }
            }
            s.feed(
                ChangeKind::ClientChanged,
                &client.client_id,
                change_until(now),
            );
            true
        }))
    }

    async fn delete_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            if s.clients.remove(client_id).is_none() {
                return false;
            }
            let grants: Vec<String> = s
                .grants
                .values()
                .filter(|g| g.family.grant.client_id == client_id)
                .map(|g| g.family.grant.id.clone())
                .collect();
            for id in grants {
                s.delete_grant(&id);
            }
            s.codes.retain(|_, c| c.code.client_id != client_id);
            s.approvals.retain(|(_, c), _| c != client_id);
            s.feed(ChangeKind::ClientChanged, client_id, change_until(now));
            true
        }))
    }

    async fn approved_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.with(|s| {
            s.approvals
                .get(&(user_id.to_owned(), client_id.to_owned()))
                .cloned()
        }))
    }

    async fn record_approval(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.approvals
                .insert((user_id.to_owned(), client_id.to_owned()), scope.to_owned());
        });
        Ok(())
    }
}

#[async_trait]
impl Grants for MemoryStore {
    async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.with(|s| {
            if s.codes.contains_key(&code.code_hash) {
                return Err(StoreError::Conflict("authorization code"));
            }
            s.codes.insert(
                code.code_hash,
                StoredCode {
                    code: code.clone(),
                    used_at: None,
                    grant_id: None,
                    presented_again: false,
                },
            );
            Ok(())
        })
    }

    async fn redeem_code(
        &self,
        code_hash: &Hash,
        now: Timestamp,
    ) -> Result<CodeRedemption, StoreError> {
        Ok(self.with(|s| {
            let Some(stored) = s.codes.get_mut(code_hash) else {
                return CodeRedemption::NotFound;
            };
            if stored.used_at.is_none() {
                stored.used_at = Some(now);
                return CodeRedemption::Redeemed(Box::new(stored.code.clone()));
            }
            stored.presented_again = true;
            let revoked_grant = stored.grant_id.clone();
            if let Some(id) = &revoked_grant {
                s.revoke_grant(id, now);
            }
            CodeRedemption::AlreadyUsed { revoked_grant }
        }))
    }

    async fn issue(&self, issuance: &Issuance) -> Result<IssueOutcome, StoreError> {
        self.with(|s| {
            let grant = &issuance.grant;
            if let Some(hash) = &issuance.code_hash {
                if s.codes.get(hash).is_none_or(|c| c.presented_again) {
                    return Ok(IssueOutcome::CodePresentedAgain);
                }
            }
            if s.grants.contains_key(&grant.id) {
                return Err(StoreError::Conflict("grant id"));
            }
            if let Some(stored) = issuance.code_hash.and_then(|h| s.codes.get_mut(&h)) {
                stored.grant_id = Some(grant.id.clone());
            }
            s.grants.insert(
                grant.id.clone(),
                StoredGrant {
                    family: Family {
                        grant: grant.clone(),
                        current: issuance.refresh_token_hash,
                        previous: None,
                        rotated_at: None,
                        rotated_jkt: None,
                    },
                    idle_expires_at: issuance.idle_expires_at,
                    use_count: 1,
                },
            );
            s.append(&issuance.events);
            let mut evicted = Vec::new();
            if let (Some(max), Some(_)) = (issuance.max_live_grants, issuance.refresh_token_hash) {
                let mut others = s.live_grants(|g| {
                    g.user_id == grant.user_id
                        && g.client_id == grant.client_id
                        && g.has_refresh_token
                        && g.id != grant.id
                });
                // Newest `max - 1` stay beside the new grant; the older ones go, oldest first.
                let keep = max.saturating_sub(1) as usize;
                let over = others.len().saturating_sub(keep);
                others.truncate(over);
                s.revoke_all(&others, grant.created_at);
                evicted = others;
            }
            Ok(IssueOutcome::Issued { evicted })
        })
    }

    async fn family(&self, grant_id: &str) -> Result<Option<Family>, StoreError> {
        Ok(self.with(|s| s.grants.get(grant_id).map(|g| g.family.clone())))
    }

    async fn legacy_refresh_grant(&self, token_hash: &Hash) -> Result<Option<String>, StoreError> {
        Ok(self.with(|s| s.legacy_refresh.get(token_hash).cloned()))
    }

    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError> {
        Ok(self.with(|s| {
            let Some(stored) = s.grants.get_mut(&commit.grant_id) else {
                return RefreshOutcome::Stale;
            };
            let family = &mut stored.family;
            if family.grant.revoked_at.is_some()
                || family.current.as_ref() != Some(&commit.presented_hash)
            {
                return RefreshOutcome::Stale;
            }
            // The use is counted where the row is written anyway (a rotation, a recorded use);
            // any other refresh's use reaches the row through the usage ledger.
            if commit.record_use || commit.successor_hash.is_some() {
                stored.use_count += 1;
            }
            if let Some(successor) = commit.successor_hash {
                family.previous = Some(commit.presented_hash);
                family.current = Some(successor);
                family.rotated_at = Some(commit.now);
                family.rotated_jkt = commit.successor_jkt.clone();
            }
            if commit.record_use || commit.successor_hash.is_some() {
                family.grant.last_used_at = commit.now;
                stored.idle_expires_at = commit.idle_expires_at;
            }
            s.append(std::slice::from_ref(&commit.event));
            RefreshOutcome::Committed
        }))
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.revoke_grant(grant_id, now)))
    }

    async fn access_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        Ok(self.with(|s| s.access_tokens.get(token_hash).cloned()))
    }

    async fn revoke_access_token(
        &self,
        token_hash: &Hash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(token) = s.access_tokens.get_mut(token_hash) {
                token.revoked_at.get_or_insert(now);
            }
            s.feed(
                ChangeKind::AccessTokenRevoked,
                &hex::encode(token_hash),
                expires_at,
            );
        });
        Ok(())
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(self.with(|s| s.grants.get(grant_id).map(|g| g.family.grant.clone())))
    }

    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        let mut grants: Vec<Grant> = self.with(|s| {
            s.grants
                .values()
                .map(|g| &g.family.grant)
                .filter(|g| g.user_id == user_id)
                .cloned()
                .collect()
        });
        grants.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(grants)
    }

    async fn revoke_grants_of_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            let ids = s.live_grants(|g| g.user_id == user_id);
            s.revoke_all(&ids, now);
            ids
        }))
    }

    async fn revoke_grants_of_user_and_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            let ids = s.live_grants(|g| g.user_id == user_id && g.client_id == client_id);
            s.revoke_all(&ids, now);
            ids
        }))
    }

    async fn revoke_grants_of_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            let ids = s.live_grants(|g| g.client_id == client_id);
            s.revoke_all(&ids, now);
            ids
        }))
    }

    async fn changes_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        Ok(self.with(|s| {
            s.changes
                .iter()
                .filter(|c| c.seq > after_seq)
                .take(limit as usize)
                .cloned()
                .collect()
        }))
    }

    async fn live_changes(&self, now: Timestamp) -> Result<(Vec<Change>, i64), StoreError> {
        Ok(self.with(|s| {
            let live = s
                .changes
                .iter()
                .filter(|c| c.until > now)
                .cloned()
                .collect();
            (live, s.next_change)
        }))
    }
}

#[async_trait]
impl Audit for MemoryStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.with(|s| s.append(events));
        Ok(())
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = match filter.limit {
            0 => 1000,
            limit => limit as usize,
        };
        let same =
            |wanted: &Option<String>, actual: &Option<String>| wanted.is_none() || wanted == actual;
        let wanted = |e: &&StoredEvent| {
            e.id > filter.after_id
                && same(&filter.user_id, &e.event.user_id)
                && same(&filter.client_id, &e.event.client_id)
                && same(&filter.grant_id, &e.event.grant_id)
                && filter.kind.is_none_or(|kind| kind == e.event.kind)
                && filter.since.is_none_or(|since| e.event.at >= since)
        };
        Ok(self.with(|s| {
            if filter.newest_first {
                s.events
                    .iter()
                    .rev()
                    .filter(wanted)
                    .take(limit)
                    .cloned()
                    .collect()
            } else {
                s.events
                    .iter()
                    .filter(wanted)
                    .take(limit)
                    .cloned()
                    .collect()
            }
        }))
    }
}

#[async_trait]
impl Records for MemoryStore {
    async fn insert_note(&self, note: &Note) -> Result<(), StoreError> {
        self.with(|s| {
            if s.notes.contains_key(&note.id) {
                return Err(StoreError::Conflict("note id"));
            }
            s.notes.insert(note.id.clone(), note.clone());
            Ok(())
        })
    }

    async fn note(&self, id: &str) -> Result<Option<Note>, StoreError> {
        Ok(self.with(|s| s.notes.get(id).cloned()))
    }

    async fn list_notes(&self, owner_id: &str, limit: u32) -> Result<Vec<Note>, StoreError> {
        let mut notes: Vec<Note> = self.with(|s| {
            s.notes
                .values()
                .filter(|n| n.owner_id == owner_id)
                .cloned()
                .collect()
        });
        notes.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        notes.truncate(limit as usize);
        Ok(notes)
    }

    async fn update_note(&self, note: &Note) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.notes.get_mut(&note.id) {
            Some(stored) => {
                stored.title = note.title.clone();
                stored.body = note.body.clone();
                stored.modified_at = note.modified_at;
                true
            }
            None => false,
        }))
    }

    async fn delete_note(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.notes.remove(id).is_some()))
    }
}

#[async_trait]
impl SigningKeys for MemoryStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        self.with(|s| {
            if s.signing_keys.iter().any(|k| k.kid == key.kid) {
                return Err(StoreError::Conflict("signing key id"));
            }
            s.signing_keys.push(key.clone());
            Ok(())
        })
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let mut keys = self.with(|s| s.signing_keys.clone());
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        retire_at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(
            self.with(|s| match s.signing_keys.iter_mut().find(|k| k.kid == kid) {
                Some(key) => {
                    key.retire_at = Some(retire_at);
                    true
                }
                None => false,
            }),
        )
    }
}

/// One test process: its proofs are the server's in-memory cache's to remember.
impl DpopProofs for MemoryStore {}

#[async_trait]
impl Usage for MemoryStore {
    async fn record_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        self.with(|s| {
            for delta in deltas {
                if let Some(stored) = s.grants.get_mut(&delta.grant_id) {
                    stored.use_count += delta.uses;
                    let grant = &mut stored.family.grant;
                    grant.last_used_at = grant.last_used_at.max(delta.last_used_at);
                }
            }
        });
        Ok(())
    }

    async fn app_usage(&self, now: Timestamp) -> Result<Vec<AppUsage>, StoreError> {
        Ok(self.with(|s| {
            s.clients
                .values()
                .map(|client| {
                    let listed: Vec<&StoredGrant> = s
                        .grants
                        .values()
                        .filter(|g| g.family.grant.client_id == client.client_id && g.listed(now))
                        .collect();
                    let users: std::collections::BTreeSet<&str> = listed
                        .iter()
                        .map(|g| g.family.grant.user_id.as_str())
                        .collect();
                    AppUsage {
                        client_id: client.client_id.clone(),
                        name: client.name.clone(),
                        user_count: users.len() as u64,
                        token_count: listed.len() as u64,
                        use_count: listed.iter().map(|g| g.use_count).sum(),
                        last_used_at: listed.iter().map(|g| g.family.grant.last_used_at).max(),
                    }
                })
                .collect()
        }))
    }

    async fn app_users_usage(
        &self,
        client_id: &str,
        after_user_id: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<UserUsage>, StoreError> {
        Ok(self.with(|s| {
            let mut users: BTreeMap<&str, UserUsage> = BTreeMap::new();
            for stored in s.grants.values() {
                let grant = &stored.family.grant;
                if grant.client_id != client_id
                    || !stored.listed(now)
                    || after_user_id.is_some_and(|after| grant.user_id.as_str() <= after)
                {
                    continue;
                }
                let Some(user) = s.users.get(&grant.user_id) else {
                    continue;
                };
                let entry = users.entry(&grant.user_id).or_insert_with(|| UserUsage {
                    user_id: grant.user_id.clone(),
                    username: user.username.clone(),
                    first_used_at: grant.created_at,
                    last_used_at: grant.last_used_at,
                    use_count: 0,
                    token_count: 0,
                });
                entry.first_used_at = entry.first_used_at.min(grant.created_at);
                entry.last_used_at = entry.last_used_at.max(grant.last_used_at);
                entry.use_count += stored.use_count;
                entry.token_count += 1;
            }
            users.into_values().take(limit as usize).collect()
        }))
    }

    async fn user_tokens_usage(
        &self,
        client_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<TokenUsage>, StoreError> {
        let mut tokens: Vec<TokenUsage> = self.with(|s| {
            s.grants
                .values()
                .filter(|g| {
                    g.family.grant.client_id == client_id
                        && g.family.grant.user_id == user_id
                        && g.listed(now)
                })
                .map(|stored| {
                    let grant = &stored.family.grant;
                    TokenUsage {
                        grant_id: grant.id.clone(),
                        scope: grant.scope.to_string(),
                        first_used_at: grant.created_at,
                        last_used_at: grant.last_used_at,
                        use_count: stored.use_count,
                        has_refresh_token: grant.has_refresh_token,
                    }
                })
                .collect()
        });
        tokens.sort_by(|a, b| (a.first_used_at, &a.grant_id).cmp(&(b.first_used_at, &b.grant_id)));
        Ok(tokens)
    }
}
