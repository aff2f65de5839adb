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

use std::future::Future;
use std::sync::Arc;

use tessera_core::ids::secret_hash;
use tessera_core::model::{AccessTokenRecord, AuthCode, Client, Grant, Hash, Note, Org, User};
use tessera_core::policy::RefreshTokenPolicy;
use tessera_core::store::{
    CodeRedemption, Issuance, RefreshCommit, RefreshOutcome, Store, StoreError,
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
            code_is_redeemed_once_then_reported_used_with_its_grant,
            unknown_code_is_not_found,
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

    /// Issues grant `grant_id` of the world's client with refresh token `{grant_id}/rt0` and
    /// access token `{grant_id}/at0`.
    pub async fn issue(&self, grant_id: &str) -> Grant {
        let issuance = self.issuance(grant_id, &self.client, None);
        self.store.issue(&issuance).await.expect("issue");
        issuance.grant
    }

    /// Grant `grant_id` of `client`, issued at [`T0`] with refresh token `{grant_id}/rt0` and
    /// access token `{grant_id}/at0`, redeeming `code` when given.
    pub fn issuance(&self, grant_id: &str, client: &Client, code: Option<&AuthCode>) -> Issuance {
        let grant = self.grant(grant_id, client, true);
        Issuance {
            refresh_token_hash: Some(hash(&format!("{grant_id}/rt0"))),
            access_token: self.access_token(&format!("{grant_id}/at0"), &grant, T0),
            code_hash: code.map(|code| code.code_hash),
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
        created_at: at(5),
    };
    let inactive = Client {
        client_id: "app-three".to_owned(),
        refresh_token_policy: "specific_inactivity:30:MINUTES".parse().unwrap(),
        redirect_uris: Vec::new(),
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

pub async fn code_is_redeemed_once_then_reported_used_with_its_grant(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();

    assert_eq!(
        store.redeem_code(&code.code_hash, at(10)).await.unwrap(),
        CodeRedemption::Redeemed(code.clone())
    );
    // Used, but nothing issued from it yet.
    assert_eq!(
        store.redeem_code(&code.code_hash, at(11)).await.unwrap(),
        CodeRedemption::AlreadyUsed { grant_id: None }
    );

    let issuance = world.issuance("grant-1", &world.client, Some(&code));
    store.issue(&issuance).await.unwrap();
    assert_eq!(
        store.redeem_code(&code.code_hash, at(12)).await.unwrap(),
        CodeRedemption::AlreadyUsed {
            grant_id: Some("grant-1".to_owned())
        }
    );
}

pub async fn unknown_code_is_not_found(store: Arc<dyn Store>) {
    assert_eq!(
        store.redeem_code(&hash("never issued"), T0).await.unwrap(),
        CodeRedemption::NotFound
    );
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
    };
    store.issue(&issuance).await.unwrap();
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
    store.issue(&issuance).await.unwrap();
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
    store.issue(&kept).await.unwrap();
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
    };
    assert!(store.issue(&clashing).await.is_err());
    assert_eq!(store.grant("grant-2").await.unwrap(), None);
    assert!(!world.has_refresh_token("grant-2/rt0").await);
    assert_eq!(
        store.redeem_code(&code.code_hash, at(2)).await.unwrap(),
        CodeRedemption::AlreadyUsed { grant_id: None }
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
