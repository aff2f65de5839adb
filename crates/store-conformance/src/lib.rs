//! The behaviour every [`Store`] backend must show, written once and run against each.
//!
//! Each behaviour is a public async function taking a fresh, empty store. A backend runs them
//! all from its integration tests with one macro call; the factory returns the store and a
//! guard (a temporary directory, a schema to drop) kept alive until the behaviour ends:
//!
//! ```ignore
//! async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) { /* ... */ }
//! tessera_store_conformance::store_conformance_tests!(fresh);
//! ```
//!
//! [`data_survives_reopen`] needs to open the same database twice, so it takes an opener instead
//! and is called by hand.

// This crate is a test suite: an `unwrap` that fails is a behaviour that fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tessera_core::ids::secret_hash;
use tessera_core::model::{
    AccessTokenRecord, AuthCode, Client, Event, EventKind, Grant, Hash, Note, Org, User,
};
use tessera_core::policy::RefreshTokenPolicy;
use tessera_core::store::{
    ClientPurge, CodeRedemption, EventFilter, Issuance, IssueOutcome, PurgeCounts, PurgePlan,
    PurgeRound, RefreshCommit, RefreshOutcome, RefreshTokenView, Store, StoreError,
};
use tessera_core::time::Timestamp;
use tessera_proto::Scope;

/// Generates one `#[tokio::test]` per behaviour of this crate, each on a store from `$fresh`,
/// an async function returning `(Arc<dyn Store>, guard)`. The calling crate needs `tokio` (with
/// `macros` and `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fresh:path) => {
        $crate::__behaviours!(
            $fresh;
            default_org_is_the_first_created,
            org_ids_are_unique,
            users_are_created_found_listed_and_updated,
            duplicate_username_is_a_conflict,
            clients_round_trip_every_field,
            clients_are_listed_updated_and_unknown_updates_report_false,
            approval_is_recorded_and_replaced,
            code_is_redeemed_once_then_revokes_what_it_issued,
            a_code_presented_again_before_its_issuance_issues_nothing,
            concurrent_uses_of_one_code_leave_no_live_grant,
            unknown_code_is_not_found,
            usernames_are_case_insensitive,
            issuance_is_found_by_every_hash,
            issuance_without_refresh_token_stores_none,
            rotation_commits_once_and_a_second_commit_writes_nothing,
            refresh_without_rotation_keeps_the_token_and_records_the_use,
            refresh_of_a_revoked_grant_is_stale,
            refresh_naming_another_grant_is_stale,
            concurrent_refreshes_of_one_token_commit_exactly_once,
            revoking_a_grant_revokes_its_tokens_and_is_idempotent,
            revoking_one_access_token_leaves_the_others,
            deleting_a_client_removes_everything_issued_to_it,
            rotation_keeps_the_sealed_successor_until_the_successor_is_used,
            successor_unused_is_false_without_a_successor,
            approval_limit_revokes_the_oldest_grants_beyond_it,
            approval_limit_counts_only_live_refresh_grants_of_the_user_and_client,
            grants_of_user_lists_every_grant_newest_first,
            revoking_a_users_grants_revokes_the_live_ones_once,
            revoking_a_clients_grants_revokes_the_live_ones_once,
            events_are_appended_and_read_back_by_filter_in_order,
            events_are_paged_by_after_id_and_limit,
            row_counts_name_every_table,
            purge_removes_exactly_what_the_plan_names,
            purge_works_in_bounded_rounds,
            events_keep_their_source_and_user_agent,
            notes_are_listed_newest_first_and_updated_and_deleted,
            a_failed_issuance_writes_nothing,
            a_failed_refresh_commit_writes_nothing,
            a_failing_write_does_not_disturb_concurrent_ones,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __behaviours {
    ($fresh:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $fresh().await;
                $crate::$name(store).await;
            }
        )+
    };
}

// ------------------------------------------------------------------------------------ fixtures

/// An arbitrary "now" for the fixtures: 2023-11-14.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus_secs(secs)
}

/// The hash a fixture token called `label` is stored under.
pub fn hash(label: &str) -> Hash {
    secret_hash(label)
}

fn scope(text: &str) -> Scope {
    Scope::parse(text).expect("fixture scopes are well formed")
}

pub fn org(id: &str) -> Org {
    Org {
        id: id.to_owned(),
        name: format!("Org {id}"),
    }
}

pub fn user(id: &str, org_id: &str, username: &str) -> User {
    User {
        id: id.to_owned(),
        org_id: org_id.to_owned(),
        username: username.to_owned(),
        email: Some(format!("{username}@example.com")),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        disabled: false,
        created_at: T0,
    }
}

/// A confidential client that rotates, allowed `api refresh_token`.
pub fn client(client_id: &str) -> Client {
    Client {
        client_id: client_id.to_owned(),
        name: format!("App {client_id}"),
        secret_hash: Some(hash(&format!("secret of {client_id}"))),
        redirect_uris: vec![
            "https://app.example.com/callback".to_owned(),
            "myapp://cb".to_owned(),
        ],
        scopes: scope("api refresh_token"),
        refresh_token_policy: RefreshTokenPolicy::Infinite,
        access_token_ttl_secs: 7200,
        rotate_refresh_tokens: true,
        allow_user_agent_flow: false,
        refresh_retry_window_secs: 60,
        created_at: T0,
    }
}

/// One org, one user and one client, on one store: what every grant needs.
#[derive(Debug, Clone)]
pub struct World {
    pub store: Arc<dyn Store>,
    pub org: Org,
    pub user: User,
    pub client: Client,
}

impl World {
    pub async fn create(store: &Arc<dyn Store>) -> World {
        let world = World {
            store: Arc::clone(store),
            org: org("00D000000000001AAA"),
            user: user(
                "005000000000001AAA",
                "00D000000000001AAA",
                "ada@example.com",
            ),
            client: client("app-one"),
        };
        store.insert_org(&world.org).await.expect("insert org");
        store.insert_user(&world.user).await.expect("insert user");
        store
            .insert_client(&world.client)
            .await
            .expect("insert client");
        world
    }

    pub fn grant(&self, id: &str, client: &Client, with_refresh: bool) -> Grant {
        Grant {
            id: id.to_owned(),
            client_id: client.client_id.clone(),
            user_id: self.user.id.clone(),
            org_id: self.org.id.clone(),
            scope: scope("api refresh_token"),
            created_at: T0,
            last_used_at: T0,
            revoked_at: None,
            has_refresh_token: with_refresh,
        }
    }

    /// The access token `label` of `grant`, issued at `issued_at`, for two hours.
    pub fn access_token(
        &self,
        label: &str,
        grant: &Grant,
        issued_at: Timestamp,
    ) -> AccessTokenRecord {
        AccessTokenRecord {
            token_hash: hash(label),
            grant_id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            user_id: grant.user_id.clone(),
            org_id: grant.org_id.clone(),
            scope: scope("api"),
            issued_at,
            expires_at: issued_at.plus_secs(7200),
            revoked_at: None,
        }
    }

    pub fn code(&self, label: &str, client: &Client) -> AuthCode {
        AuthCode {
            code_hash: hash(label),
            client_id: client.client_id.clone(),
            user_id: self.user.id.clone(),
            redirect_uri: "https://app.example.com/callback".to_owned(),
            scope: scope("api refresh_token"),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
            created_at: T0,
            expires_at: at(900),
        }
    }

    /// Adds another client, `app-two`, and another user, bob, to the world's store: what a
    /// behaviour limited to one client or one user must leave alone.
    pub async fn neighbours(&self) -> (Client, User) {
        let other_client = client("app-two");
        self.store.insert_client(&other_client).await.unwrap();
        let bob = user("005000000000002AAA", &self.org.id, "bob@example.com");
        self.store.insert_user(&bob).await.unwrap();
        (other_client, bob)
    }

    /// Issues grant `grant_id` of the world's client with refresh token `{grant_id}/rt0` and
    /// access token `{grant_id}/at0`.
    pub async fn issue(&self, grant_id: &str) -> Grant {
        let issuance = self.issuance(grant_id, &self.client, None);
        issued(&self.store, &issuance).await;
        issuance.grant
    }

    /// Grant `grant_id` of `client`, issued at [`T0`] with refresh token `{grant_id}/rt0` and
    /// access token `{grant_id}/at0`, redeeming `code` when given.
    pub fn issuance(&self, grant_id: &str, client: &Client, code: Option<&AuthCode>) -> Issuance {
        Issuance {
            code_hash: code.map(|code| code.code_hash),
            ..self.issuance_at(grant_id, client, true, T0)
        }
    }

    /// Grant `grant_id` of the world's user and `client`, issued (and last used) at `when`, with
    /// refresh token `{grant_id}/rt0` if `with_refresh`, and access token `{grant_id}/at0`; no
    /// code, no approval limit.
    pub fn issuance_at(
        &self,
        grant_id: &str,
        client: &Client,
        with_refresh: bool,
        when: Timestamp,
    ) -> Issuance {
        let grant = Grant {
            created_at: when,
            last_used_at: when,
            ..self.grant(grant_id, client, with_refresh)
        };
        Issuance {
            refresh_token_hash: with_refresh.then(|| hash(&format!("{grant_id}/rt0"))),
            access_token: self.access_token(&format!("{grant_id}/at0"), &grant, when),
            code_hash: None,
            max_live_grants: None,
            grant,
        }
    }

    /// Issues grant `grant_id` (see [`World::issue`]) and rotates it once, 60 s later:
    /// `{grant_id}/rt0` is replaced by `{grant_id}/rt1`, with access token `{grant_id}/at1`.
    pub async fn issue_rotated(&self, grant_id: &str) -> Grant {
        let grant = self.issue(grant_id).await;
        let label = |name: &str| format!("{grant_id}/{name}");
        let outcome = self
            .commit(
                &grant,
                &label("rt0"),
                Some(&label("rt1")),
                &label("at1"),
                at(60),
            )
            .await;
        assert_eq!(
            outcome,
            RefreshOutcome::Committed,
            "first rotation of {grant_id}"
        );
        grant
    }

    /// A refresh of `presented` in `grant` at `now`, rotating to `successor` when given, with
    /// access token `access`.
    pub fn refresh(
        &self,
        grant: &Grant,
        presented: &str,
        successor: Option<&str>,
        access: &str,
        now: Timestamp,
    ) -> RefreshCommit {
        RefreshCommit {
            presented_hash: hash(presented),
            grant_id: grant.id.clone(),
            successor_hash: successor.map(hash),
            sealed_successor: None,
            access_token: self.access_token(access, grant, now),
            now,
        }
    }

    /// Commits [`World::refresh`] and returns the outcome.
    pub async fn commit(
        &self,
        grant: &Grant,
        presented: &str,
        successor: Option<&str>,
        access: &str,
        now: Timestamp,
    ) -> RefreshOutcome {
        let commit = self.refresh(grant, presented, successor, access, now);
        self.store.commit_refresh(&commit).await.unwrap()
    }

    /// Whether the refresh token `label` is stored (used or not).
    pub async fn has_refresh_token(&self, label: &str) -> bool {
        self.store
            .refresh_token(&hash(label))
            .await
            .unwrap()
            .is_some()
    }

    /// Whether the access token `label` is stored (revoked or not).
    pub async fn has_access_token(&self, label: &str) -> bool {
        self.store
            .access_token(&hash(label))
            .await
            .unwrap()
            .is_some()
    }

    /// `None` when the refresh token `label` is unknown, else when it was used.
    pub async fn refresh_used_at(&self, label: &str) -> Option<Option<Timestamp>> {
        let view = self.store.refresh_token(&hash(label)).await.unwrap();
        view.map(|view| view.token.used_at)
    }

    /// The stored refresh token `label`, which must exist.
    pub async fn refresh_view(&self, label: &str) -> RefreshTokenView {
        let view = self.store.refresh_token(&hash(label)).await.unwrap();
        view.unwrap_or_else(|| panic!("refresh token {label} is not stored"))
    }

    /// When grant `grant_id`, which must exist, was revoked.
    pub async fn grant_revoked_at(&self, grant_id: &str) -> Option<Timestamp> {
        let grant = self.store.grant(grant_id).await.unwrap();
        grant
            .unwrap_or_else(|| panic!("grant {grant_id} is not stored"))
            .revoked_at
    }

    /// When the access token `label`, which must exist, was revoked.
    pub async fn access_revoked_at(&self, label: &str) -> Option<Timestamp> {
        let token = self.store.access_token(&hash(label)).await.unwrap();
        token
            .unwrap_or_else(|| panic!("access token {label} is not stored"))
            .revoked_at
    }
}

/// Issues, requiring the issuance to be written; returns the grants the approval limit evicted.
pub async fn issued(store: &Arc<dyn Store>, issuance: &Issuance) -> Vec<String> {
    match store.issue(issuance).await.expect("issue") {
        IssueOutcome::Issued { evicted } => evicted,
        other => panic!("issuance of {} not written: {other:?}", issuance.grant.id),
    }
}

/// `issuance` made for `user` instead of the world's user.
pub fn issued_to(mut issuance: Issuance, user: &User) -> Issuance {
    issuance.grant.user_id = user.id.clone();
    issuance.access_token.user_id = user.id.clone();
    issuance
}

/// The ids of `grants`, in order.
fn ids(grants: &[Grant]) -> Vec<&str> {
    grants.iter().map(|grant| grant.id.as_str()).collect()
}

/// `ids`, sorted: for results whose order the contract leaves open.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Every table's row count, by name.
pub async fn row_counts(store: &Arc<dyn Store>) -> BTreeMap<String, u64> {
    store.row_counts().await.unwrap().into_iter().collect()
}

pub fn note(id: &str, owner_id: &str, created_at: Timestamp) -> Note {
    Note {
        id: id.to_owned(),
        owner_id: owner_id.to_owned(),
        title: format!("Note {id}"),
        body: Some("body".to_owned()),
        created_at,
        modified_at: created_at,
    }
}

// ------------------------------------------------------------------------- orgs, users, clients

pub async fn default_org_is_the_first_created(store: Arc<dyn Store>) {
    assert_eq!(store.default_org().await.unwrap(), None);
    // Ids sorting the other way round: "first" is the order of creation, not of ids.
    store.insert_org(&org("00D00000000000ZAAA")).await.unwrap();
    store.insert_org(&org("00D000000000001AAA")).await.unwrap();
    assert_eq!(
        store.default_org().await.unwrap(),
        Some(org("00D00000000000ZAAA"))
    );
}

pub async fn org_ids_are_unique(store: Arc<dyn Store>) {
    store.insert_org(&org("00D000000000001AAA")).await.unwrap();
    let again = store.insert_org(&org("00D000000000001AAA")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

pub async fn users_are_created_found_listed_and_updated(store: Arc<dyn Store>) {
    store.insert_org(&org("00D000000000001AAA")).await.unwrap();
    let ada = user(
        "005000000000001AAA",
        "00D000000000001AAA",
        "ada@example.com",
    );
    let mut bob = user(
        "005000000000002AAA",
        "00D000000000001AAA",
        "bob@example.com",
    );
    bob.email = None;
    bob.created_at = at(1);
    store.insert_user(&ada).await.unwrap();
    store.insert_user(&bob).await.unwrap();

    let found = store.user_by_id(&ada.id).await.unwrap().unwrap();
    assert_eq!(found, ada);
    assert_eq!(
        store.user_by_username("bob@example.com").await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(store.user_by_id("005000000000009AAA").await.unwrap(), None);
    assert_eq!(
        store.user_by_username("nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![ada.clone(), bob.clone()]
    );

    let mut changed = ada.clone();
    changed.email = Some("lovelace@example.com".to_owned());
    changed.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned();
    changed.disabled = true;
    assert!(store.update_user(&changed).await.unwrap());
    assert_eq!(store.user_by_id(&ada.id).await.unwrap(), Some(changed));

    let mut ghost = ada.clone();
    ghost.id = "005000000000009AAA".to_owned();
    assert!(!store.update_user(&ghost).await.unwrap());
}

pub async fn duplicate_username_is_a_conflict(store: Arc<dyn Store>) {
    store.insert_org(&org("00D000000000001AAA")).await.unwrap();
    store
        .insert_user(&user(
            "005000000000001AAA",
            "00D000000000001AAA",
            "ada@example.com",
        ))
        .await
        .unwrap();
    let twin = user(
        "005000000000002AAA",
        "00D000000000001AAA",
        "ada@example.com",
    );
    let result = store.insert_user(&twin).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.user_by_id(&twin.id).await.unwrap(), None);
}

pub async fn clients_round_trip_every_field(store: Arc<dyn Store>) {
    let confidential = client("app-one");
    let public = Client {
        client_id: "app-two".to_owned(),
        name: "Public app".to_owned(),
        secret_hash: None,
        redirect_uris: vec!["http://localhost:1717/OauthRedirect".to_owned()],
        scopes: scope("api web refresh_token offline_access"),
        refresh_token_policy: "specific_lifetime:3:MONTHS".parse().unwrap(),
        access_token_ttl_secs: 0,
        rotate_refresh_tokens: false,
        allow_user_agent_flow: true,
        refresh_retry_window_secs: 0,
        created_at: at(5),
    };
    let inactive = Client {
        client_id: "app-three".to_owned(),
        refresh_token_policy: "specific_inactivity:30:MINUTES".parse().unwrap(),
        redirect_uris: Vec::new(),
        refresh_retry_window_secs: 86_400,
        ..client("app-three")
    };
    for c in [&confidential, &public, &inactive] {
        store.insert_client(c).await.unwrap();
        assert_eq!(
            store.client_by_id(&c.client_id).await.unwrap().as_ref(),
            Some(c)
        );
    }
    assert_eq!(store.client_by_id("unknown").await.unwrap(), None);
    let again = store.insert_client(&confidential).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

pub async fn clients_are_listed_updated_and_unknown_updates_report_false(store: Arc<dyn Store>) {
    let first = client("app-one");
    let second = Client {
        created_at: at(1),
        ..client("app-two")
    };
    store.insert_client(&first).await.unwrap();
    store.insert_client(&second).await.unwrap();
    assert_eq!(
        store.list_clients().await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let changed = Client {
        name: "Renamed".to_owned(),
        secret_hash: None,
        redirect_uris: vec!["https://new.example.com/cb".to_owned()],
        scopes: scope("api"),
        refresh_token_policy: RefreshTokenPolicy::Zero,
        access_token_ttl_secs: 60,
        rotate_refresh_tokens: false,
        allow_user_agent_flow: true,
        refresh_retry_window_secs: 5,
        ..first.clone()
    };
    assert!(store.update_client(&changed).await.unwrap());
    assert_eq!(store.client_by_id("app-one").await.unwrap(), Some(changed));
    assert!(!store.update_client(&client("unknown")).await.unwrap());
}

pub async fn approval_is_recorded_and_replaced(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let (user_id, client_id) = (world.user.id.as_str(), world.client.client_id.as_str());
    assert_eq!(
        store.approved_scope(user_id, client_id).await.unwrap(),
        None
    );
    // A later approval replaces the earlier one.
    for (scope, when) in [("api", T0), ("api refresh_token", at(1))] {
        store
            .record_approval(user_id, client_id, scope, when)
            .await
            .unwrap();
        let approved = store.approved_scope(user_id, client_id).await.unwrap();
        assert_eq!(approved.as_deref(), Some(scope));
    }
}

// ------------------------------------------------------------------------ authorization codes

/// The first presentation spends the code; a later one is `AlreadyUsed` and revokes what the
/// code issued, in the same transaction (RFC 6749 §4.1.2).
pub async fn code_is_redeemed_once_then_revokes_what_it_issued(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    assert_eq!(
        store.redeem_code(&code.code_hash, at(10)).await.unwrap(),
        CodeRedemption::Redeemed(code.clone())
    );
    issued(
        &store,
        &world.issuance("grant-1", &world.client, Some(&code)),
    )
    .await;
    for secs in [11, 12] {
        assert_eq!(
            store.redeem_code(&code.code_hash, at(secs)).await.unwrap(),
            CodeRedemption::AlreadyUsed {
                revoked_grant: Some("grant-1".to_owned())
            }
        );
    }
    assert_eq!(world.grant_revoked_at("grant-1").await, Some(at(11)));
    assert_eq!(world.access_revoked_at("grant-1/at0").await, Some(at(11)));
}

/// A second presentation that arrives while the first is still issuing is recorded on the code,
/// and the first's issuance then writes nothing.
pub async fn a_code_presented_again_before_its_issuance_issues_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    store.redeem_code(&code.code_hash, at(10)).await.unwrap();
    assert_eq!(
        store.redeem_code(&code.code_hash, at(11)).await.unwrap(),
        CodeRedemption::AlreadyUsed {
            revoked_grant: None
        }
    );
    let late = world.issuance("late", &world.client, Some(&code));
    assert_eq!(
        store.issue(&late).await.unwrap(),
        IssueOutcome::CodePresentedAgain
    );
    assert_eq!(store.grant("late").await.unwrap(), None);
    assert!(!world.has_access_token("late/at0").await);
    assert!(!world.has_refresh_token("late/rt0").await);
}

/// Eight presentations of one code race, each issuing when it redeemed: at most one issuance is
/// written, and none is left live.
pub async fn concurrent_uses_of_one_code_leave_no_live_grant(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let issuance = world.issuance(&format!("race-{i}"), &world.client, Some(&code));
            tokio::spawn(async move {
                match store.redeem_code(&hash("code-1"), at(i)).await.unwrap() {
                    CodeRedemption::Redeemed(_) => Some(store.issue(&issuance).await.unwrap()),
                    _ => None,
                }
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut redeemed = 0;
    for (i, attempt) in attempts.into_iter().enumerate() {
        match attempt.await.unwrap() {
            Some(IssueOutcome::Issued { .. }) => {
                redeemed += 1;
                written.push(format!("race-{i}"));
            }
            Some(IssueOutcome::CodePresentedAgain) => redeemed += 1,
            None => {}
        }
    }
    assert_eq!(redeemed, 1, "the code is redeemed once");
    for grant_id in written {
        assert!(
            world.grant_revoked_at(&grant_id).await.is_some(),
            "{grant_id} is live"
        );
    }
}

pub async fn unknown_code_is_not_found(store: Arc<dyn Store>) {
    assert_eq!(
        store.redeem_code(&hash("never issued"), T0).await.unwrap(),
        CodeRedemption::NotFound
    );
}

pub async fn usernames_are_case_insensitive(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let found = store.user_by_username("ADA@Example.COM").await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(world.user.id.clone()));
    let twin = user("005000000000009AAA", &world.org.id, "Ada@Example.com");
    assert!(matches!(
        store.insert_user(&twin).await,
        Err(StoreError::Conflict(_))
    ));
}

// --------------------------------------------------------------------------- grants and tokens

pub async fn issuance_is_found_by_every_hash(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;

    assert_eq!(store.grant("grant-1").await.unwrap(), Some(grant.clone()));
    let view = store
        .refresh_token(&hash("grant-1/rt0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.grant, grant);
    assert_eq!(view.token.token_hash, hash("grant-1/rt0"));
    assert_eq!(view.token.grant_id, "grant-1");
    assert_eq!(view.token.created_at, T0);
    assert_eq!(view.token.used_at, None);
    assert_eq!(
        store.access_token(&hash("grant-1/at0")).await.unwrap(),
        Some(world.access_token("grant-1/at0", &grant, T0))
    );

    assert_eq!(store.grant("unknown").await.unwrap(), None);
    assert!(!world.has_refresh_token("unknown").await);
    assert!(!world.has_access_token("unknown").await);
}

pub async fn issuance_without_refresh_token_stores_none(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.grant("grant-1", &world.client, false);
    let issuance = Issuance {
        grant: grant.clone(),
        refresh_token_hash: None,
        access_token: world.access_token("grant-1/at0", &grant, T0),
        code_hash: None,
        max_live_grants: None,
    };
    issued(&store, &issuance).await;
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(grant));
    assert!(world.has_access_token("grant-1/at0").await);
    assert!(!world.has_refresh_token("grant-1/rt0").await);
}

pub async fn rotation_commits_once_and_a_second_commit_writes_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue_rotated("grant-1").await;
    assert_eq!(
        world.refresh_used_at("grant-1/rt0").await,
        Some(Some(at(60)))
    );
    let successor = store
        .refresh_token(&hash("grant-1/rt1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(successor.token.used_at, None);
    assert_eq!(successor.token.created_at, at(60));
    assert_eq!(successor.grant.last_used_at, at(60));
    // The lifetime counts from the grant: rotation does not restart it.
    assert_eq!(successor.grant.created_at, T0);
    assert!(world.has_access_token("grant-1/at1").await);

    assert_eq!(
        world
            .commit(
                &grant,
                "grant-1/rt0",
                Some("grant-1/rt2"),
                "grant-1/at2",
                at(61)
            )
            .await,
        RefreshOutcome::Stale
    );
    assert!(!world.has_refresh_token("grant-1/rt2").await);
    assert!(!world.has_access_token("grant-1/at2").await);
    assert_eq!(
        world.refresh_used_at("grant-1/rt0").await,
        Some(Some(at(60)))
    );
    assert_eq!(world.refresh_used_at("grant-1/rt1").await, Some(None));
    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().last_used_at,
        at(60)
    );

    // The successor rotates in turn.
    assert_eq!(
        world
            .commit(
                &grant,
                "grant-1/rt1",
                Some("grant-1/rt3"),
                "grant-1/at3",
                at(120)
            )
            .await,
        RefreshOutcome::Committed
    );
}

pub async fn refresh_without_rotation_keeps_the_token_and_records_the_use(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    for (n, secs) in [(1, 60), (2, 120)] {
        assert_eq!(
            world
                .commit(
                    &grant,
                    "grant-1/rt0",
                    None,
                    &format!("grant-1/at{n}"),
                    at(secs)
                )
                .await,
            RefreshOutcome::Committed
        );
        assert!(world.has_access_token(&format!("grant-1/at{n}")).await);
    }
    let view = store
        .refresh_token(&hash("grant-1/rt0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.token.used_at, None);
    assert_eq!(view.grant.last_used_at, at(120));

    // An unknown presented token changes nothing.
    assert_eq!(
        world
            .commit(&grant, "not-a-token", None, "grant-1/at9", at(180))
            .await,
        RefreshOutcome::Stale
    );
    assert!(!world.has_access_token("grant-1/at9").await);
}

pub async fn refresh_of_a_revoked_grant_is_stale(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    store.revoke_grant("grant-1", at(30)).await.unwrap();
    for successor in [Some("grant-1/rt1"), None] {
        assert_eq!(
            world
                .commit(&grant, "grant-1/rt0", successor, "grant-1/at1", at(60))
                .await,
            RefreshOutcome::Stale,
            "{successor:?}"
        );
    }
    assert!(!world.has_refresh_token("grant-1/rt1").await);
    assert!(!world.has_access_token("grant-1/at1").await);
    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().last_used_at,
        T0
    );
}

pub async fn refresh_naming_another_grant_is_stale(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    let other = world.issue("grant-2").await;
    // grant-1's token presented as if it were grant-2's.
    for successor in [Some("grant-2/rt1"), None] {
        assert_eq!(
            world
                .commit(&other, "grant-1/rt0", successor, "grant-2/at1", at(60))
                .await,
            RefreshOutcome::Stale,
            "{successor:?}"
        );
    }
    assert_eq!(world.refresh_used_at("grant-1/rt0").await, Some(None));
    assert!(!world.has_access_token("grant-2/at1").await);
}

pub async fn concurrent_refreshes_of_one_token_commit_exactly_once(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 50;
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|n| {
            let commit = world.refresh(
                &grant,
                "grant-1/rt0",
                Some(&format!("rt-{n}")),
                &format!("at-{n}"),
                at(60),
            );
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.commit_refresh(&commit).await })
        })
        .collect();
    let mut committed = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(RefreshOutcome::Committed) => committed.push(n),
            Ok(RefreshOutcome::Stale) => {}
            Err(e) => panic!("a concurrent refresh failed instead of being stale: {e}"),
        }
    }
    assert_eq!(committed.len(), 1, "committed: {committed:?}");
    let winner = committed[0];
    let mut live_successors = Vec::new();
    let mut access_tokens = Vec::new();
    for n in 0..CONTENDERS {
        if world.has_refresh_token(&format!("rt-{n}")).await {
            live_successors.push(n);
        }
        if world.has_access_token(&format!("at-{n}")).await {
            access_tokens.push(n);
        }
    }
    assert_eq!(live_successors, vec![winner]);
    assert_eq!(access_tokens, vec![winner]);
}

pub async fn revoking_a_grant_revokes_its_tokens_and_is_idempotent(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue_rotated("grant-1").await;
    world.issue("bystander").await;

    store.revoke_grant("grant-1", at(100)).await.unwrap();
    store.revoke_grant("grant-1", at(200)).await.unwrap();
    store.revoke_grant("never-issued", at(200)).await.unwrap();

    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().revoked_at,
        Some(at(100))
    );
    // Already rotated out at 60; the live one is spent by the revocation at 100.
    assert_eq!(
        world.refresh_used_at("grant-1/rt0").await,
        Some(Some(at(60)))
    );
    assert_eq!(
        world.refresh_used_at("grant-1/rt1").await,
        Some(Some(at(100)))
    );
    for label in ["grant-1/at0", "grant-1/at1"] {
        let token = store.access_token(&hash(label)).await.unwrap().unwrap();
        assert_eq!(token.revoked_at, Some(at(100)), "{label}");
    }
    assert_eq!(
        world
            .commit(
                &grant,
                "grant-1/rt1",
                Some("grant-1/rt2"),
                "grant-1/at2",
                at(300)
            )
            .await,
        RefreshOutcome::Stale
    );

    // Another grant of the same user and client is untouched.
    assert_eq!(
        store.grant("bystander").await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(world.refresh_used_at("bystander/rt0").await, Some(None));
    assert_eq!(
        store
            .access_token(&hash("bystander/at0"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

pub async fn revoking_one_access_token_leaves_the_others(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    assert_eq!(
        world
            .commit(&grant, "grant-1/rt0", None, "grant-1/at1", at(60))
            .await,
        RefreshOutcome::Committed
    );

    assert!(store
        .revoke_access_token(&hash("grant-1/at0"), at(70))
        .await
        .unwrap());
    assert!(store
        .revoke_access_token(&hash("grant-1/at0"), at(80))
        .await
        .unwrap());
    assert!(!store
        .revoke_access_token(&hash("unknown"), at(80))
        .await
        .unwrap());

    assert_eq!(
        store
            .access_token(&hash("grant-1/at0"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(70))
    );
    assert_eq!(
        store
            .access_token(&hash("grant-1/at1"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(world.refresh_used_at("grant-1/rt0").await, Some(None));
}

pub async fn deleting_a_client_removes_everything_issued_to_it(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let other = client("app-two");
    store.insert_client(&other).await.unwrap();
    let (user_id, client_id) = (world.user.id.as_str(), world.client.client_id.as_str());

    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    store.redeem_code(&code.code_hash, at(1)).await.unwrap();
    let issuance = world.issuance("doomed", &world.client, Some(&code));
    issued(&store, &issuance).await;
    let doomed = issuance.grant;
    assert_eq!(
        world
            .commit(
                &doomed,
                "doomed/rt0",
                Some("doomed/rt1"),
                "doomed/at1",
                at(60)
            )
            .await,
        RefreshOutcome::Committed
    );
    store
        .insert_code(&world.code("code-2", &world.client))
        .await
        .unwrap();
    store
        .record_approval(user_id, client_id, "api", T0)
        .await
        .unwrap();

    // What belongs to the other client must survive.
    let kept = world.issuance("kept", &other, None);
    issued(&store, &kept).await;
    store
        .insert_code(&world.code("code-3", &other))
        .await
        .unwrap();
    store
        .record_approval(user_id, "app-two", "api", T0)
        .await
        .unwrap();

    assert!(store.delete_client(client_id).await.unwrap());
    assert!(!store.delete_client(client_id).await.unwrap());

    assert_eq!(store.client_by_id(client_id).await.unwrap(), None);
    assert_eq!(store.grant("doomed").await.unwrap(), None);
    for label in ["doomed/rt0", "doomed/rt1"] {
        assert_eq!(
            store.refresh_token(&hash(label)).await.unwrap(),
            None,
            "{label}"
        );
    }
    for label in ["doomed/at0", "doomed/at1"] {
        assert_eq!(
            store.access_token(&hash(label)).await.unwrap(),
            None,
            "{label}"
        );
    }
    for label in ["code-1", "code-2"] {
        assert_eq!(
            store.redeem_code(&hash(label), at(90)).await.unwrap(),
            CodeRedemption::NotFound,
            "{label}"
        );
    }
    assert_eq!(
        store.approved_scope(user_id, client_id).await.unwrap(),
        None
    );

    assert!(store.client_by_id("app-two").await.unwrap().is_some());
    assert_eq!(store.grant("kept").await.unwrap(), Some(kept.grant));
    assert!(world.has_refresh_token("kept/rt0").await);
    assert!(world.has_access_token("kept/at0").await);
    assert!(matches!(
        store.redeem_code(&hash("code-3"), at(90)).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    assert_eq!(
        store
            .approved_scope(user_id, "app-two")
            .await
            .unwrap()
            .as_deref(),
        Some("api")
    );
    assert!(store.user_by_id(user_id).await.unwrap().is_some());
}

// ------------------------------------------------------------------------------- retry window

/// A rotation keeps the successor's sealed response on the presented token, where a replay
/// inside the retry window finds it while the successor is unused. Rotating the successor closes
/// that window: the predecessor's successor is used, and its sealed response is gone.
pub async fn rotation_keeps_the_sealed_successor_until_the_successor_is_used(
    store: Arc<dyn Store>,
) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    // Rotates grant-1/rt{from} to grant-1/rt{to} with access token grant-1/at{to}, keeping
    // "sealed rt{to}" as the sealed response.
    let rotate = |from: &str, to: &str, secs: u64| {
        let commit = RefreshCommit {
            sealed_successor: Some(format!("sealed rt{to}").into_bytes()),
            ..world.refresh(
                &grant,
                &format!("grant-1/rt{from}"),
                Some(&format!("grant-1/rt{to}")),
                &format!("grant-1/at{to}"),
                at(secs),
            )
        };
        let store = Arc::clone(&store);
        async move { store.commit_refresh(&commit).await.unwrap() }
    };

    assert_eq!(rotate("0", "1", 60).await, RefreshOutcome::Committed);
    let rotated = world.refresh_view("grant-1/rt0").await;
    assert_eq!(rotated.token.used_at, Some(at(60)));
    assert_eq!(rotated.token.replaced_by, Some(hash("grant-1/rt1")));
    assert_eq!(
        rotated.token.sealed_successor.as_deref(),
        Some(&b"sealed rt1"[..])
    );
    assert!(rotated.successor_unused);
    let current = world.refresh_view("grant-1/rt1").await;
    assert_eq!(current.token.replaced_by, None);
    assert_eq!(current.token.sealed_successor, None);
    assert!(!current.successor_unused);

    // A concurrent rotation of the same token that lost is stale and leaves the first's
    // response for the replays.
    assert_eq!(rotate("0", "X", 61).await, RefreshOutcome::Stale);
    assert_eq!(world.refresh_view("grant-1/rt0").await, rotated);

    let second = rotate("1", "2", 120).await;
    assert_eq!(second, RefreshOutcome::Committed);
    let closed = world.refresh_view("grant-1/rt0").await;
    assert!(!closed.successor_unused);
    assert_eq!(closed.token.sealed_successor, None);
    assert_eq!(closed.token.replaced_by, Some(hash("grant-1/rt1")));
    let open = world.refresh_view("grant-1/rt1").await;
    assert!(open.successor_unused);
    assert_eq!(
        open.token.sealed_successor.as_deref(),
        Some(&b"sealed rt2"[..])
    );

    // Revoking the family spends the successor too: no replay is served any more.
    store.revoke_grant("grant-1", at(130)).await.unwrap();
    assert!(!world.refresh_view("grant-1/rt1").await.successor_unused);
}

/// A token never rotated has no successor; a rotation without a sealed response (retry window
/// 0) stores none; a refresh without rotation ignores one.
pub async fn successor_unused_is_false_without_a_successor(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let kept = world.issue("kept").await;
    let view = world.refresh_view("kept/rt0").await;
    assert!(!view.successor_unused);
    assert_eq!(view.token.replaced_by, None);

    let unrotated = RefreshCommit {
        sealed_successor: Some(b"stray".to_vec()),
        ..world.refresh(&kept, "kept/rt0", None, "kept/at1", at(60))
    };
    assert_eq!(
        store.commit_refresh(&unrotated).await.unwrap(),
        RefreshOutcome::Committed
    );
    let view = world.refresh_view("kept/rt0").await;
    assert_eq!(
        (
            view.token.used_at,
            view.token.sealed_successor,
            view.successor_unused
        ),
        (None, None, false)
    );

    world.issue_rotated("strict").await;
    let view = world.refresh_view("strict/rt0").await;
    assert_eq!(view.token.sealed_successor, None);
    // The successor exists and is unused, though no response was kept for a replay.
    assert!(view.successor_unused);
}

// ----------------------------------------------------------------------------- approval limit

/// With a limit of 5 the sixth issuance revokes exactly the oldest grant with its tokens; no
/// limit revokes nothing; a later limited issuance catches up, oldest first.
pub async fn approval_limit_revokes_the_oldest_grants_beyond_it(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let issue = |grant_id: &str, secs: u64, max_live_grants: Option<u32>| {
        let issuance = Issuance {
            max_live_grants,
            ..world.issuance_at(grant_id, &world.client, true, at(secs))
        };
        let store = Arc::clone(&store);
        async move { issued(&store, &issuance).await }
    };
    for n in 1..=5 {
        assert!(issue(&format!("g{n}"), n, Some(5)).await.is_empty(), "g{n}");
    }

    assert_eq!(issue("g6", 6, Some(5)).await, ["g1"]);
    assert_eq!(world.grant_revoked_at("g1").await, Some(at(6)));
    assert_eq!(world.refresh_used_at("g1/rt0").await, Some(Some(at(6))));
    assert_eq!(world.access_revoked_at("g1/at0").await, Some(at(6)));
    for n in 2..=6 {
        assert_eq!(world.grant_revoked_at(&format!("g{n}")).await, None, "g{n}");
        assert_eq!(
            world.refresh_used_at(&format!("g{n}/rt0")).await,
            Some(None)
        );
        assert_eq!(world.access_revoked_at(&format!("g{n}/at0")).await, None);
    }

    assert!(issue("g7", 7, None).await.is_empty());
    // Six live before, seven with this one: the two oldest go, oldest first.
    assert_eq!(issue("g8", 8, Some(5)).await, ["g2", "g3"]);
    // Issued in the same millisecond as the newest, under an id that sorts first: the grant
    // being issued is the newest all the same, never its own victim.
    assert_eq!(issue("a-tie", 8, Some(5)).await, ["g4"]);
    for grant_id in ["g5", "g6", "g7", "g8", "a-tie"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, None, "{grant_id}");
    }
}

/// Only the live refresh-token grants of the same user and client count: grants without a
/// refresh token neither evict nor are evicted, and revoked grants and other clients' and
/// users' grants are left alone.
pub async fn approval_limit_counts_only_live_refresh_grants_of_the_user_and_client(
    store: Arc<dyn Store>,
) {
    let world = World::create(&store).await;
    let (other_client, bob) = world.neighbours().await;
    let limited = |issuance: Issuance| {
        let issuance = Issuance {
            max_live_grants: Some(1),
            ..issuance
        };
        let store = Arc::clone(&store);
        async move { issued(&store, &issuance).await }
    };
    let app = &world.client;

    assert!(limited(world.issuance_at("access-1", app, false, at(1)))
        .await
        .is_empty());
    store
        .issue(&world.issuance_at("revoked", app, true, at(2)))
        .await
        .unwrap();
    store.revoke_grant("revoked", at(3)).await.unwrap();
    assert!(
        limited(world.issuance_at("elsewhere", &other_client, true, at(3)))
            .await
            .is_empty()
    );
    assert!(
        limited(issued_to(world.issuance_at("bobs", app, true, at(4)), &bob))
            .await
            .is_empty()
    );
    // The only live refresh-token grant of this user and client.
    assert!(limited(world.issuance_at("mine-1", app, true, at(5)))
        .await
        .is_empty());
    // Over the limit, but issuing no refresh token: nothing is revoked.
    assert!(limited(world.issuance_at("access-2", app, false, at(6)))
        .await
        .is_empty());
    assert_eq!(
        limited(world.issuance_at("mine-2", app, true, at(7))).await,
        ["mine-1"]
    );

    for grant_id in ["access-1", "access-2", "elsewhere", "bobs", "mine-2"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, None, "{grant_id}");
    }
    assert_eq!(world.grant_revoked_at("revoked").await, Some(at(3)));
}

// ----------------------------------------------------------------- grants of users and clients

pub async fn grants_of_user_lists_every_grant_newest_first(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let (other_client, bob) = world.neighbours().await;
    let app = &world.client;
    let issuances = [
        world.issuance_at("a", app, true, at(1)),
        world.issuance_at("b", app, false, at(2)),
        world.issuance_at("c", &other_client, true, at(3)),
        // Same time as "c": the larger id comes first.
        world.issuance_at("d", app, true, at(3)),
        issued_to(world.issuance_at("z", app, true, at(5)), &bob),
    ];
    for issuance in &issuances {
        issued(&store, issuance).await;
    }
    store.revoke_grant("a", at(10)).await.unwrap();

    let grants = store.grants_of_user(&world.user.id).await.unwrap();
    assert_eq!(ids(&grants), ["d", "c", "b", "a"]);
    assert_eq!(grants[0], issuances[3].grant);
    assert_eq!(grants[3].revoked_at, Some(at(10)));
    assert_eq!(ids(&store.grants_of_user(&bob.id).await.unwrap()), ["z"]);
    assert!(store.grants_of_user("nobody").await.unwrap().is_empty());
}

/// Revoking a user's grants revokes each live one like `revoke_grant` and returns their ids;
/// revoked grants keep their first revocation and are not returned; a second call revokes
/// nothing.
pub async fn revoking_a_users_grants_revokes_the_live_ones_once(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let (other_client, bob) = world.neighbours().await;
    let app = &world.client;
    world.issue_rotated("rotated").await;
    for issuance in [
        world.issuance_at("elsewhere", &other_client, true, at(1)),
        world.issuance_at("access-only", app, false, at(2)),
        world.issuance_at("already", app, true, at(3)),
        issued_to(world.issuance_at("bobs", app, true, at(4)), &bob),
    ] {
        issued(&store, &issuance).await;
    }
    store.revoke_grant("already", at(5)).await.unwrap();

    let revoked = store
        .revoke_grants_of_user(&world.user.id, at(100))
        .await
        .unwrap();
    assert_eq!(sorted(revoked), ["access-only", "elsewhere", "rotated"]);
    for grant_id in ["rotated", "elsewhere", "access-only"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, Some(at(100)));
    }
    assert_eq!(world.grant_revoked_at("already").await, Some(at(5)));
    assert_eq!(world.grant_revoked_at("bobs").await, None);
    assert_eq!(
        world.refresh_used_at("rotated/rt0").await,
        Some(Some(at(60)))
    );
    assert_eq!(
        world.refresh_used_at("rotated/rt1").await,
        Some(Some(at(100)))
    );
    for label in ["rotated/at0", "rotated/at1", "access-only/at0"] {
        assert_eq!(
            world.access_revoked_at(label).await,
            Some(at(100)),
            "{label}"
        );
    }
    assert_eq!(world.access_revoked_at("bobs/at0").await, None);

    let again = store.revoke_grants_of_user(&world.user.id, at(200)).await;
    assert!(again.unwrap().is_empty());
    assert!(store
        .revoke_grants_of_user("nobody", at(200))
        .await
        .unwrap()
        .is_empty());
}

/// Revoking a client's grants revokes the live ones of every user, and only that client's.
pub async fn revoking_a_clients_grants_revokes_the_live_ones_once(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let (other_client, bob) = world.neighbours().await;
    let app = &world.client;
    world.issue("mine").await;
    store
        .issue(&issued_to(
            world.issuance_at("bobs", app, true, at(1)),
            &bob,
        ))
        .await
        .unwrap();
    store
        .issue(&world.issuance_at("elsewhere", &other_client, true, at(2)))
        .await
        .unwrap();
    world.issue("already").await;
    store.revoke_grant("already", at(5)).await.unwrap();

    let revoked = store
        .revoke_grants_of_client(&app.client_id, at(100))
        .await
        .unwrap();
    assert_eq!(sorted(revoked), ["bobs", "mine"]);
    for grant_id in ["mine", "bobs"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, Some(at(100)));
        let refresh = format!("{grant_id}/rt0");
        assert_eq!(world.refresh_used_at(&refresh).await, Some(Some(at(100))));
        let access = format!("{grant_id}/at0");
        assert_eq!(world.access_revoked_at(&access).await, Some(at(100)));
    }
    assert_eq!(world.grant_revoked_at("already").await, Some(at(5)));
    assert_eq!(world.grant_revoked_at("elsewhere").await, None);
    assert_eq!(world.refresh_used_at("elsewhere/rt0").await, Some(None));

    let again = store.revoke_grants_of_client(&app.client_id, at(200)).await;
    assert!(again.unwrap().is_empty());
}

// -------------------------------------------------------------------------------- audit trail

/// An event of `kind` at `secs`, naming what is given.
pub fn event(
    secs: u64,
    kind: EventKind,
    client_id: Option<&str>,
    user_id: Option<&str>,
    grant_id: Option<&str>,
    detail: &str,
) -> Event {
    Event {
        at: at(secs),
        kind,
        client_id: client_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        grant_id: grant_id.map(str::to_owned),
        detail: detail.to_owned(),
        source: None,
        user_agent: None,
    }
}

/// The events `filter` reads.
async fn read_events(store: &Arc<dyn Store>, filter: EventFilter) -> Vec<Event> {
    let stored = store.events(&filter).await.unwrap();
    stored.into_iter().map(|stored| stored.event).collect()
}

pub async fn events_are_appended_and_read_back_by_filter_in_order(store: Arc<dyn Store>) {
    use EventKind::*;
    let (ada, bob) = (Some("005A"), Some("005B"));
    let (app, other) = (Some("app-one"), Some("app-two"));
    let batch = [
        event(1, Issued, app, ada, Some("g1"), "code"),
        event(2, Rotated, app, ada, Some("g1"), ""),
        event(3, ClientAuthFailed, app, None, None, "203.0.113.7"),
        event(4, LoginFailed, None, bob, None, "198.51.100.2"),
        event(5, Issued, other, ada, Some("g2"), "user-agent"),
        event(
            6,
            ReuseDetected,
            app,
            ada,
            Some("g1"),
            "outside the retry window",
        ),
    ];
    store.append_events(&batch).await.unwrap();
    store.append_events(&[]).await.unwrap();

    let stored = store.events(&EventFilter::default()).await.unwrap();
    let events: Vec<Event> = stored.iter().map(|s| s.event.clone()).collect();
    assert_eq!(events, batch);
    assert!(stored.windows(2).all(|pair| pair[0].id < pair[1].id));

    let pick =
        |indexes: &[usize]| -> Vec<Event> { indexes.iter().map(|&i| batch[i].clone()).collect() };
    let filter = |user: Option<&str>, client: Option<&str>, grant: Option<&str>| EventFilter {
        user_id: user.map(str::to_owned),
        client_id: client.map(str::to_owned),
        grant_id: grant.map(str::to_owned),
        ..EventFilter::default()
    };
    let cases = [
        (filter(ada, None, None), pick(&[0, 1, 4, 5])),
        (filter(bob, None, None), pick(&[3])),
        (filter(None, app, None), pick(&[0, 1, 2, 5])),
        (filter(None, None, Some("g1")), pick(&[0, 1, 5])),
        (filter(ada, other, None), pick(&[4])),
        (filter(ada, app, Some("g1")), pick(&[0, 1, 5])),
        (filter(None, other, Some("g1")), Vec::new()),
        (filter(Some("nobody"), None, None), Vec::new()),
    ];
    for (filter, expected) in cases {
        let label = format!("{filter:?}");
        assert_eq!(read_events(&store, filter).await, expected, "{label}");
    }

    // A later batch follows the first.
    let later = event(7, Revoked, app, ada, Some("g1"), "admin");
    store
        .append_events(std::slice::from_ref(&later))
        .await
        .unwrap();
    let after = EventFilter {
        after_id: stored.last().unwrap().id,
        ..EventFilter::default()
    };
    assert_eq!(read_events(&store, after).await, [later]);
}

/// Every kind is stored and read back; `after_id` and `limit` page through in id order; a limit
/// of 0 reads a default page that holds a small trail whole.
pub async fn events_are_paged_by_after_id_and_limit(store: Arc<dyn Store>) {
    let all: Vec<Event> = EventKind::ALL
        .iter()
        .enumerate()
        .map(|(n, &kind)| event(n as u64, kind, Some("app-one"), None, None, kind.name()))
        .collect();
    store.append_events(&all).await.unwrap();

    let mut pages = Vec::new();
    let mut after_id = 0;
    loop {
        let page = store
            .events(&EventFilter {
                after_id,
                limit: 3,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        pages.push(page);
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    let expected: Vec<usize> = all.chunks(3).map(<[Event]>::len).collect();
    assert_eq!(sizes, expected);
    let read: Vec<Event> = pages.into_iter().flatten().map(|s| s.event).collect();
    assert_eq!(read, all);

    let whole = EventFilter {
        client_id: Some("app-one".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(read_events(&store, whole).await, all);
}

// ------------------------------------------------------------------------------- housekeeping

pub async fn row_counts_name_every_table(store: Arc<dyn Store>) {
    let empty = row_counts(&store).await;
    let tables: Vec<&str> = empty.keys().map(String::as_str).collect();
    assert_eq!(
        tables,
        [
            "access_tokens",
            "approvals",
            "auth_codes",
            "clients",
            "events",
            "grants",
            "notes",
            "orgs",
            "refresh_tokens",
            "users"
        ]
    );
    assert!(empty.values().all(|&count| count == 0), "{empty:?}");

    let world = World::create(&store).await;
    world.issue_rotated("grant-1").await;
    let counts = row_counts(&store).await;
    for (table, count) in [("grants", 1), ("refresh_tokens", 2), ("access_tokens", 2)] {
        assert_eq!(counts[table], count, "{table}");
    }
}

/// A world with something on either side of every cut-off of a purge plan: the purge removes
/// exactly what the plan names, counts it, and a second purge finds nothing. The counts include
/// the tokens deleted with their grants, each row counted once.
pub async fn purge_removes_exactly_what_the_plan_names(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let app = world.client.clone();
    let other_client = client("app-two");
    store.insert_client(&other_client).await.unwrap();
    store
        .record_approval(&world.user.id, &app.client_id, "api", T0)
        .await
        .unwrap();
    store
        .insert_note(&note("002A", &world.user.id, T0))
        .await
        .unwrap();

    // Codes: two expired (one used), one valid, one valid and linked to a grant purged below.
    let expired = world.code("code-expired", &app);
    let expired_used = world.code("code-expired-used", &app);
    let valid = AuthCode {
        created_at: at(9_900),
        expires_at: at(10_500),
        ..world.code("code-valid", &app)
    };
    let linked = AuthCode {
        created_at: at(2_900),
        expires_at: at(10_800),
        ..world.code("code-linked", &app)
    };
    for code in [&expired, &expired_used, &valid, &linked] {
        store.insert_code(code).await.unwrap();
    }
    store
        .redeem_code(&expired_used.code_hash, at(100))
        .await
        .unwrap();
    store
        .redeem_code(&linked.code_hash, at(3_000))
        .await
        .unwrap();

    // Grants (each with access token `<id>/at0`, valid two hours from its creation).
    let issuances = [
        ("fresh", &app, true, 9_000),
        ("steady", &app, true, 2_500),
        ("ancient", &app, true, 1_000),
        ("idle", &app, true, 3_000),
        ("access-only-old", &app, false, 6_000),
        ("access-only-recent", &app, false, 8_000),
        ("revoked-old", &app, true, 8_000),
        ("revoked-new", &app, true, 8_000),
        ("other", &other_client, true, 1_000),
    ];
    let mut grants = BTreeMap::new();
    for (grant_id, client, with_refresh, secs) in issuances {
        let mut issuance = world.issuance_at(grant_id, client, with_refresh, at(secs));
        if grant_id == "idle" {
            issuance.code_hash = Some(linked.code_hash);
        }
        issued(&store, &issuance).await;
        grants.insert(grant_id, issuance.grant);
    }
    let refreshes = [
        ("fresh", "rt0", Some("rt1"), "at1", 9_500),
        ("fresh", "rt1", Some("rt2"), "at2", 9_970),
        ("steady", "rt0", None, "at1", 9_950),
        ("ancient", "rt0", None, "at1", 9_990),
        ("other", "rt0", Some("rt1"), "at1", 5_000),
    ];
    for (grant_id, presented, successor, access, secs) in refreshes {
        let label = |name: &str| format!("{grant_id}/{name}");
        let successor = successor.map(label);
        let outcome = world
            .commit(
                &grants[grant_id],
                &label(presented),
                successor.as_deref(),
                &label(access),
                at(secs),
            )
            .await;
        assert_eq!(outcome, RefreshOutcome::Committed, "{grant_id} {presented}");
    }
    store.revoke_grant("revoked-old", at(8_500)).await.unwrap();
    store.revoke_grant("revoked-new", at(9_000)).await.unwrap();

    let trail: Vec<Event> = [1_000, 4_000, 6_000, 9_000]
        .into_iter()
        .map(|secs| event(secs, EventKind::Issued, None, None, None, ""))
        .collect();
    store.append_events(&trail).await.unwrap();

    let before = row_counts(&store).await;
    let expected_before = [
        ("auth_codes", 4),
        ("grants", 9),
        ("refresh_tokens", 10),
        ("access_tokens", 14),
        ("events", 4),
    ];
    for (table, count) in expected_before {
        assert_eq!(before[table], count, "{table} before");
    }

    let plan = PurgePlan {
        batch: 1000,
        access_expired_before: at(10_000),
        codes_expired_before: at(10_000),
        revoked_before: at(9_000),
        events_before: at(5_000),
        clients: vec![ClientPurge {
            client_id: app.client_id.clone(),
            rotated_before: at(9_940),
            created_before: Some(at(2_000)),
            idle_before: Some(at(5_000)),
            access_only_idle_before: at(7_000),
        }],
    };
    let round = store.purge(&plan).await.unwrap();
    assert_eq!(
        round,
        PurgeRound {
            counts: PurgeCounts {
                access_tokens: 7,
                codes: 2,
                refresh_tokens: 5,
                grants: 4,
                events: 2,
            },
            complete: true,
        }
    );

    let after = row_counts(&store).await;
    let expected_after: BTreeMap<String, u64> = [
        ("orgs", 1),
        ("users", 1),
        ("clients", 2),
        ("approvals", 1),
        ("auth_codes", 2),
        ("grants", 5),
        ("refresh_tokens", 5),
        ("access_tokens", 7),
        ("notes", 1),
        ("events", 2),
    ]
    .into_iter()
    .map(|(table, count)| (table.to_owned(), count))
    .collect();
    assert_eq!(after, expected_after);

    // Past the lifetime, idle, access-only and idle, revoked long ago: gone with their tokens.
    for grant_id in ["ancient", "idle", "access-only-old", "revoked-old"] {
        assert_eq!(store.grant(grant_id).await.unwrap(), None, "{grant_id}");
    }
    for grant_id in [
        "fresh",
        "steady",
        "access-only-recent",
        "revoked-new",
        "other",
    ] {
        assert!(store.grant(grant_id).await.unwrap().is_some(), "{grant_id}");
    }
    let kept_refresh = [
        "fresh/rt1",
        "fresh/rt2",
        "steady/rt0",
        "other/rt0",
        "other/rt1",
    ];
    for label in kept_refresh {
        assert!(world.has_refresh_token(label).await, "{label} kept");
    }
    // Rotated out before the window (fresh/rt0), spent by a recent revocation (revoked-new/rt0),
    // or of a deleted grant.
    let gone_refresh = [
        "fresh/rt0",
        "revoked-new/rt0",
        "ancient/rt0",
        "idle/rt0",
        "revoked-old/rt0",
    ];
    for label in gone_refresh {
        assert!(!world.has_refresh_token(label).await, "{label} purged");
    }
    let kept_access = [
        "fresh/at0",
        "fresh/at1",
        "fresh/at2",
        "steady/at1",
        "access-only-recent/at0",
        "revoked-new/at0",
        "other/at1",
    ];
    for label in kept_access {
        assert!(world.has_access_token(label).await, "{label} kept");
    }
    // The rotation inside the window still serves its replay.
    assert!(world.refresh_view("fresh/rt1").await.successor_unused);
    let kept_events: Vec<Event> = trail[2..].to_vec();
    assert_eq!(
        read_events(&store, EventFilter::default()).await,
        kept_events
    );

    assert_eq!(
        store.purge(&plan).await.unwrap(),
        PurgeRound {
            counts: PurgeCounts::default(),
            complete: true
        }
    );
    assert_eq!(row_counts(&store).await, expected_after);
    // The code outlives its deleted grant, unlinked; the valid one is still redeemable.
    assert_eq!(
        store
            .redeem_code(&linked.code_hash, at(10_001))
            .await
            .unwrap(),
        CodeRedemption::AlreadyUsed {
            revoked_grant: None
        }
    );
    assert_eq!(
        store
            .redeem_code(&valid.code_hash, at(10_001))
            .await
            .unwrap(),
        CodeRedemption::Redeemed(valid)
    );
}

/// Housekeeping runs in rounds: each removes at most the batch per rule, and says whether
/// anything may be left, so that a backlog never becomes one huge write.
pub async fn purge_works_in_bounded_rounds(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    for n in 0..12 {
        world.issue(&format!("g{n}")).await;
    }
    let old: Vec<Event> = (1..=25)
        .map(|secs| event(secs, EventKind::Issued, None, None, None, ""))
        .collect();
    store.append_events(&old).await.unwrap();
    let plan = PurgePlan {
        batch: 10,
        access_expired_before: at(10_000),
        codes_expired_before: T0,
        revoked_before: T0,
        events_before: at(5_000),
        clients: Vec::new(),
    };
    let mut rounds = Vec::new();
    loop {
        let round = store.purge(&plan).await.unwrap();
        rounds.push((
            round.counts.access_tokens,
            round.counts.events,
            round.complete,
        ));
        if round.complete || rounds.len() > 5 {
            break;
        }
    }
    assert_eq!(
        rounds,
        [(10, 10, false), (2, 10, false), (0, 5, true)],
        "(access tokens, events, complete) per round"
    );
    let left = row_counts(&store).await;
    assert_eq!(
        (left["access_tokens"], left["events"], left["grants"]),
        (0, 0, 12)
    );
}

pub async fn events_keep_their_source_and_user_agent(store: Arc<dyn Store>) {
    let sourced = Event {
        source: Some("203.0.113.5".to_owned()),
        user_agent: Some("jsforce/3".to_owned()),
        ..event(
            1,
            EventKind::ReuseDetected,
            Some("app"),
            None,
            Some("g"),
            "",
        )
    };
    store
        .append_events(std::slice::from_ref(&sourced))
        .await
        .unwrap();
    assert_eq!(read_events(&store, EventFilter::default()).await, [sourced]);
}

// ------------------------------------------------------------------------------------- notes

pub async fn notes_are_listed_newest_first_and_updated_and_deleted(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let other = user("005000000000002AAA", &world.org.id, "bob@example.com");
    store.insert_user(&other).await.unwrap();
    let owner = world.user.id.as_str();
    for (id, secs) in [("002A", 1), ("002B", 3), ("002C", 2)] {
        store.insert_note(&note(id, owner, at(secs))).await.unwrap();
    }
    store
        .insert_note(&note("002Z", &other.id, at(9)))
        .await
        .unwrap();

    let newest: Vec<String> = store
        .list_notes(owner, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(newest, ["002B", "002C"]);
    assert_eq!(store.list_notes(owner, 10).await.unwrap().len(), 3);
    assert_eq!(
        store.note("002A").await.unwrap(),
        Some(note("002A", owner, at(1)))
    );
    assert_eq!(store.note("002Q").await.unwrap(), None);

    let edited = Note {
        title: "Edited".to_owned(),
        body: None,
        modified_at: at(50),
        ..note("002A", owner, at(1))
    };
    assert!(store.update_note(&edited).await.unwrap());
    assert_eq!(store.note("002A").await.unwrap(), Some(edited));
    assert!(!store
        .update_note(&note("002Q", owner, at(1)))
        .await
        .unwrap());

    assert!(store.delete_note("002A").await.unwrap());
    assert!(!store.delete_note("002A").await.unwrap());
    assert_eq!(store.note("002A").await.unwrap(), None);
    assert_eq!(store.list_notes(&other.id, 10).await.unwrap().len(), 1);
}

// --------------------------------------------------------------------------------- atomicity

/// An issuance whose last write fails (its access token's hash is taken) leaves no grant and no
/// refresh token behind, and does not link the code.
pub async fn a_failed_issuance_writes_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let first = world.issue("grant-1").await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    store.redeem_code(&code.code_hash, at(1)).await.unwrap();

    let grant = world.grant("grant-2", &world.client, true);
    let clashing = Issuance {
        grant,
        refresh_token_hash: Some(hash("grant-2/rt0")),
        access_token: world.access_token("grant-1/at0", &first, at(1)),
        code_hash: Some(code.code_hash),
        max_live_grants: None,
    };
    assert!(store.issue(&clashing).await.is_err());
    assert_eq!(store.grant("grant-2").await.unwrap(), None);
    assert!(!world.has_refresh_token("grant-2/rt0").await);
    assert_eq!(
        store.redeem_code(&code.code_hash, at(2)).await.unwrap(),
        CodeRedemption::AlreadyUsed {
            revoked_grant: None
        },
        "the code was not linked"
    );
    assert_eq!(
        store
            .access_token(&hash("grant-1/at0"))
            .await
            .unwrap()
            .unwrap()
            .grant_id,
        "grant-1"
    );
}

/// A rotation whose access-token insert fails leaves the presented token current and stores no
/// successor: the refresh can be tried again.
pub async fn a_failed_refresh_commit_writes_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    let clashing = world.refresh(
        &grant,
        "grant-1/rt0",
        Some("grant-1/rt1"),
        "grant-1/at0",
        at(60),
    );
    assert!(store.commit_refresh(&clashing).await.is_err());
    assert_eq!(world.refresh_used_at("grant-1/rt0").await, Some(None));
    assert!(!world.has_refresh_token("grant-1/rt1").await);
    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().last_used_at,
        T0
    );

    assert_eq!(
        world
            .commit(
                &grant,
                "grant-1/rt0",
                Some("grant-1/rt1"),
                "grant-1/at1",
                at(61)
            )
            .await,
        RefreshOutcome::Committed
    );
}

/// Concurrent writes, some of which fail (a taken username): the failures write nothing and the
/// others all land.
pub async fn a_failing_write_does_not_disturb_concurrent_ones(store: Arc<dyn Store>) {
    const USERS: usize = 40;
    store.insert_org(&org("00D000000000001AAA")).await.unwrap();
    let tasks: Vec<_> = (0..USERS)
        .map(|n| {
            // Every third user takes the username of the one before it.
            let name = if n % 3 == 2 { n - 1 } else { n };
            let user = user(
                &format!("005{n:012}AAA"),
                "00D000000000001AAA",
                &format!("user{name}@example.com"),
            );
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert_user(&user).await })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len() + conflicts, USERS);
    assert_eq!(conflicts, USERS / 3);
    let names: std::collections::HashSet<&str> =
        users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names.len(), users.len());
}

// -------------------------------------------------------------------------------- durability

/// What a store acknowledged is still there when the database is opened again. `open` must open
/// the same database every time it is called.
pub async fn data_survives_reopen<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = open().await;
    let world = World::create(&store).await;
    let grant = world.issue_rotated("grant-1").await;
    store
        .insert_note(&note("002A", &world.user.id, at(5)))
        .await
        .unwrap();
    // Close the first store: no handle on it may stay behind (a `_` pattern would keep the
    // world's until the end of the function).
    let World {
        store: first,
        org,
        user,
        client,
    } = world;
    drop(first);
    drop(store);

    let store = open().await;
    let world = World {
        store: Arc::clone(&store),
        org,
        user,
        client,
    };
    assert_eq!(store.default_org().await.unwrap(), Some(world.org.clone()));
    assert_eq!(
        store.user_by_username(&world.user.username).await.unwrap(),
        Some(world.user.clone())
    );
    assert_eq!(
        store.client_by_id(&world.client.client_id).await.unwrap(),
        Some(world.client.clone())
    );
    assert_eq!(
        world.refresh_used_at("grant-1/rt0").await,
        Some(Some(at(60)))
    );
    assert_eq!(world.refresh_used_at("grant-1/rt1").await, Some(None));
    assert!(world.has_access_token("grant-1/at1").await);
    assert_eq!(
        store.note("002A").await.unwrap(),
        Some(note("002A", &world.user.id, at(5)))
    );
    // And it still works: the reopened store rotates the successor.
    assert_eq!(
        world
            .commit(
                &grant,
                "grant-1/rt1",
                Some("grant-1/rt2"),
                "grant-1/at2",
                at(120)
            )
            .await,
        RefreshOutcome::Committed
    );
}
