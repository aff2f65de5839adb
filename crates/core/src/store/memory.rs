//! A [`Store`] in memory, for tests: the domain's unit tests run on it, and the conformance
//! suite checks that it behaves as the real backends do. One mutex over all the state makes
//! every method one atomic step, as each is one transaction in a database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::{
    AccessTokenRecord, AuthCode, Client, Event, Grant, Hash, Note, Org, RefreshTokenRecord,
    StoredEvent, User,
};
use crate::store::{
    CodeRedemption, EventFilter, Issuance, IssueOutcome, PurgeCounts, PurgePlan, PurgeRound,
    RefreshCommit, RefreshOutcome, RefreshTokenView, Store, StoreError,
};
use crate::time::Timestamp;

#[derive(Debug, Default)]
struct State {
    orgs: Vec<Org>,
    users: BTreeMap<String, User>,
    clients: BTreeMap<String, Client>,
    approvals: HashMap<(String, String), String>,
    codes: HashMap<Hash, StoredCode>,
    grants: HashMap<String, Grant>,
    refresh_tokens: HashMap<Hash, RefreshTokenRecord>,
    access_tokens: HashMap<Hash, AccessTokenRecord>,
    events: Vec<StoredEvent>,
    next_event_id: i64,
    notes: HashMap<String, Note>,
}

#[derive(Debug, Clone)]
struct StoredCode {
    code: AuthCode,
    used_at: Option<Timestamp>,
    grant_id: Option<String>,
    /// Presented again after its redemption.
    presented_again: bool,
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

fn same_username(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl State {
    fn revoke_grant(&mut self, grant_id: &str, now: Timestamp) {
        if let Some(grant) = self.grants.get_mut(grant_id) {
            grant.revoked_at.get_or_insert(now);
        }
        for token in self.refresh_tokens.values_mut() {
            if token.grant_id == grant_id {
                token.used_at.get_or_insert(now);
            }
        }
        for token in self.access_tokens.values_mut() {
            if token.grant_id == grant_id {
                token.revoked_at.get_or_insert(now);
            }
        }
    }

    /// Deletes a grant with its tokens; returns (refresh tokens, access tokens) deleted.
    fn delete_grant(&mut self, grant_id: &str) -> (u64, u64) {
        self.grants.remove(grant_id);
        let refresh = self.refresh_tokens.len();
        self.refresh_tokens.retain(|_, t| t.grant_id != grant_id);
        let access = self.access_tokens.len();
        self.access_tokens.retain(|_, t| t.grant_id != grant_id);
        for stored in self.codes.values_mut() {
            if stored.grant_id.as_deref() == Some(grant_id) {
                stored.grant_id = None;
            }
        }
        (
            (refresh - self.refresh_tokens.len()) as u64,
            (access - self.access_tokens.len()) as u64,
        )
    }

    /// Live grants matching `keep`, oldest first (created_at, id).
    fn live_grants(&self, keep: impl Fn(&Grant) -> bool) -> Vec<String> {
        let mut live: Vec<&Grant> = self
            .grants
            .values()
            .filter(|g| g.revoked_at.is_none() && keep(g))
            .collect();
        live.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        live.into_iter().map(|g| g.id.clone()).collect()
    }

    fn purge_grants(
        &mut self,
        batch: usize,
        matches: impl Fn(&Grant) -> bool,
        counts: &mut PurgeCounts,
    ) -> bool {
        let ids: Vec<String> = self
            .grants
            .values()
            .filter(|g| matches(g))
            .map(|g| g.id.clone())
            .take(batch)
            .collect();
        for id in &ids {
            let (refresh, access) = self.delete_grant(id);
            counts.refresh_tokens += refresh;
            counts.access_tokens += access;
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
impl Store for MemoryStore {
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

    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.users.get_mut(&user.id) {
            Some(stored) => {
                stored.email = user.email.clone();
                stored.password_hash = user.password_hash.clone();
                stored.disabled = user.disabled;
                true
            }
            None => false,
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

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.clients.get_mut(&client.client_id) {
            Some(stored) => {
                *stored = Client {
                    created_at: stored.created_at,
                    ..client.clone()
                };
                true
            }
            None => false,
        }))
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            if s.clients.remove(client_id).is_none() {
                return false;
            }
            let grants: Vec<String> = s
                .grants
                .values()
                .filter(|g| g.client_id == client_id)
                .map(|g| g.id.clone())
                .collect();
            for id in grants {
                s.delete_grant(&id);
            }
            s.codes.retain(|_, c| c.code.client_id != client_id);
            s.approvals.retain(|(_, c), _| c != client_id);
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
                return CodeRedemption::Redeemed(stored.code.clone());
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
            if s.grants.contains_key(&grant.id) {
                return Err(StoreError::Conflict("grant id"));
            }
            if let Some(hash) = &issuance.code_hash {
                if s.codes.get(hash).is_none_or(|c| c.presented_again) {
                    return Ok(IssueOutcome::CodePresentedAgain);
                }
            }
            // Every key is checked before anything changes: a failing issuance writes nothing.
            if issuance
                .refresh_token_hash
                .is_some_and(|h| s.refresh_tokens.contains_key(&h))
            {
                return Err(StoreError::Conflict("refresh token"));
            }
            if s.access_tokens
                .contains_key(&issuance.access_token.token_hash)
            {
                return Err(StoreError::Conflict("access token"));
            }
            if let Some(stored) = issuance.code_hash.and_then(|h| s.codes.get_mut(&h)) {
                stored.grant_id = Some(grant.id.clone());
            }
            s.grants.insert(grant.id.clone(), grant.clone());
            if let Some(hash) = issuance.refresh_token_hash {
                s.refresh_tokens.insert(
                    hash,
                    RefreshTokenRecord {
                        token_hash: hash,
                        grant_id: grant.id.clone(),
                        created_at: grant.created_at,
                        used_at: None,
                        replaced_by: None,
                        sealed_successor: None,
                    },
                );
            }
            s.access_tokens.insert(
                issuance.access_token.token_hash,
                issuance.access_token.clone(),
            );
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
                for id in &others {
                    s.revoke_grant(id, grant.created_at);
                }
                evicted = others;
            }
            Ok(IssueOutcome::Issued { evicted })
        })
    }

    async fn refresh_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<RefreshTokenView>, StoreError> {
        Ok(self.with(|s| {
            let token = s.refresh_tokens.get(token_hash)?.clone();
            let grant = s.grants.get(&token.grant_id)?.clone();
            let successor_unused = token
                .replaced_by
                .and_then(|next| s.refresh_tokens.get(&next))
                .is_some_and(|next| next.used_at.is_none());
            Some(RefreshTokenView {
                token,
                grant,
                successor_unused,
            })
        }))
    }

    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError> {
        self.with(|s| {
            let live_grant = s
                .grants
                .get(&commit.grant_id)
                .is_some_and(|g| g.revoked_at.is_none());
            let current = s
                .refresh_tokens
                .get(&commit.presented_hash)
                .is_some_and(|t| t.used_at.is_none() && t.grant_id == commit.grant_id);
            if !live_grant || !current {
                return Ok(RefreshOutcome::Stale);
            }
            if commit
                .successor_hash
                .is_some_and(|h| s.refresh_tokens.contains_key(&h))
            {
                return Err(StoreError::Conflict("refresh token"));
            }
            if s.access_tokens
                .contains_key(&commit.access_token.token_hash)
            {
                return Err(StoreError::Conflict("access token"));
            }
            if let Some(successor) = commit.successor_hash {
                if let Some(presented) = s.refresh_tokens.get_mut(&commit.presented_hash) {
                    presented.used_at = Some(commit.now);
                    presented.replaced_by = Some(successor);
                    presented.sealed_successor = commit.sealed_successor.clone();
                }
                for token in s.refresh_tokens.values_mut() {
                    if token.replaced_by == Some(commit.presented_hash) {
                        token.sealed_successor = None;
                    }
                }
                s.refresh_tokens.insert(
                    successor,
                    RefreshTokenRecord {
                        token_hash: successor,
                        grant_id: commit.grant_id.clone(),
                        created_at: commit.now,
                        used_at: None,
                        replaced_by: None,
                        sealed_successor: None,
                    },
                );
            }
            if let Some(grant) = s.grants.get_mut(&commit.grant_id) {
                grant.last_used_at = commit.now;
            }
            s.access_tokens
                .insert(commit.access_token.token_hash, commit.access_token.clone());
            Ok(RefreshOutcome::Committed)
        })
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.with(|s| s.revoke_grant(grant_id, now));
        Ok(())
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
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.access_tokens.get_mut(token_hash) {
            Some(token) => {
                token.revoked_at.get_or_insert(now);
                true
            }
            None => false,
        }))
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(self.with(|s| s.grants.get(grant_id).cloned()))
    }

    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        let mut grants: Vec<Grant> = self.with(|s| {
            s.grants
                .values()
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
            for id in &ids {
                s.revoke_grant(id, now);
            }
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
            for id in &ids {
                s.revoke_grant(id, now);
            }
            ids
        }))
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.with(|s| {
            for event in events {
                s.next_event_id += 1;
                s.events.push(StoredEvent {
                    id: s.next_event_id,
                    event: event.clone(),
                });
            }
        });
        Ok(())
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = match filter.limit {
            0 => 1000,
            limit => limit as usize,
        };
        let same =
            |wanted: &Option<String>, actual: &Option<String>| wanted.is_none() || wanted == actual;
        Ok(self.with(|s| {
            s.events
                .iter()
                .filter(|e| {
                    e.id > filter.after_id
                        && same(&filter.user_id, &e.event.user_id)
                        && same(&filter.client_id, &e.event.client_id)
                        && same(&filter.grant_id, &e.event.grant_id)
                })
                .take(limit)
                .cloned()
                .collect()
        }))
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
            complete &= s.purge_grants(
                batch,
                |g| g.revoked_at.is_some_and(|t| t < plan.revoked_before),
                &mut counts,
            );
            for client in &plan.clients {
                let grants_of_client: Vec<String> = s
                    .grants
                    .values()
                    .filter(|g| g.client_id == client.client_id)
                    .map(|g| g.id.clone())
                    .collect();
                let (n, done) = purge_map(&mut s.refresh_tokens, batch, |t| {
                    t.used_at.is_some_and(|u| u < client.rotated_before)
                        && grants_of_client.contains(&t.grant_id)
                });
                counts.refresh_tokens += n;
                complete &= done;
                let id = &client.client_id;
                if let Some(cut) = client.created_before {
                    complete &= s.purge_grants(
                        batch,
                        |g| &g.client_id == id && g.created_at < cut,
                        &mut counts,
                    );
                }
                if let Some(cut) = client.idle_before {
                    complete &= s.purge_grants(
                        batch,
                        |g| &g.client_id == id && g.last_used_at < cut,
                        &mut counts,
                    );
                }
                let cut = client.access_only_idle_before;
                complete &= s.purge_grants(
                    batch,
                    |g| &g.client_id == id && !g.has_refresh_token && g.last_used_at < cut,
                    &mut counts,
                );
            }
            PurgeRound { counts, complete }
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
                ("refresh_tokens", s.refresh_tokens.len()),
                ("access_tokens", s.access_tokens.len()),
                ("notes", s.notes.len()),
                ("events", s.events.len()),
            ]
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n as u64))
            .collect()
        }))
    }

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
