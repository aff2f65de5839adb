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
// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tessera_core::identity::ip_allowlist::{IpAllowlist, MAX_IP_ALLOWLIST_RANGES};
use tessera_core::model::{
    AuthCode, ChangeKind, Client, ClientControls, DpopMode, DpopSettings, Event, EventKind, Family,
    Grant, Note, OpenIdSettings, Org, SigningAlg, User,
};
use tessera_core::policy::RefreshTokenPolicy;
use tessera_core::store::{
    AppUsage, BrowserSessions, ClientPurge, CodeRedemption, EventFilter, Inventory, Issuance,
    IssueOutcome, PurgeCounts, PurgePlan, PurgeRound, RefreshCommit, RefreshOutcome, Store,
    StoreError, UsageDelta, UserUsage,
};
use tessera_core::time::Timestamp;
use tessera_core::tokens::hash::secret_hash;
use tessera_core::tokens::hash::Hash;
use tessera_core::tokens::signing_keys::{SealedPrivateKey, SigningKey};
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
            issuance_is_found_by_its_grant_with_its_events,
            issuance_without_refresh_token_stores_none,
            rotation_commits_once_and_a_second_commit_writes_nothing,
            refresh_without_rotation_keeps_the_token_and_records_the_use,
            refresh_without_a_recorded_use_writes_only_its_event,
            refresh_of_a_revoked_grant_is_stale,
            refresh_naming_another_grant_is_stale,
            concurrent_refreshes_of_one_token_commit_exactly_once,
            revoking_a_grant_is_idempotent_and_fed_once,
            revoking_an_access_token_is_fed_until_it_expires,
            the_change_feed_records_revocations_and_changes_in_order,
            deleting_a_client_removes_everything_issued_to_it,
            rotation_keeps_the_previous_token_until_the_next_rotation,
            unknown_legacy_tokens_name_no_grant,
            an_idle_limit_reaches_existing_grants,
            an_idle_cap_reaches_the_grants_of_an_infinite_client_until_lifted,
            approval_limit_revokes_the_oldest_grants_beyond_it,
            approval_limit_counts_only_live_refresh_grants_of_the_user_and_client,
            grants_of_user_lists_every_grant_newest_first,
            revoking_a_users_grants_revokes_the_live_ones_once,
            a_session_epoch_only_goes_up_and_an_update_never_lowers_it,
            disabling_a_user_ends_their_sessions_and_revokes_their_grants_in_one_write,
            revoking_a_clients_grants_revokes_the_live_ones_once,
            events_are_appended_and_read_back_by_filter_in_order,
            events_since_an_instant_are_read_with_the_other_filters,
            events_are_paged_by_after_id_and_limit,
            row_counts_name_every_table,
            the_inventory_counts_live_grants_and_refresh_tokens_by_state,
            purge_removes_exactly_what_the_plan_names,
            purge_works_in_bounded_rounds,
            events_keep_their_source_and_user_agent,
            notes_are_listed_newest_first_and_updated_and_deleted,
            signing_keys_are_kept_whole_listed_oldest_first_and_retired,
            a_codes_dpop_key_is_kept_until_it_is_redeemed,
            a_grants_dpop_key_stays_with_its_family_across_rotations,
            a_rotation_records_the_key_its_access_token_was_bound_to,
            seen_dpop_proofs_are_remembered_once_until_they_expire,
            purge_forgets_expired_dpop_proofs,
            a_failed_issuance_writes_nothing,
            a_failing_write_does_not_disturb_concurrent_ones,
            every_refresh_that_writes_the_row_counts_a_use,
            recorded_usage_adds_up_and_keeps_the_latest_use,
            app_usage_counts_the_live_grants_of_every_client,
            an_apps_users_are_paged_by_user_id_with_their_grants_aggregated,
            a_users_tokens_of_an_app_are_its_live_grants_with_their_counts,
            revoking_a_user_of_one_client_leaves_the_others,
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
        admin: false,
        session_epoch: 0,
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
        openid: OpenIdSettings::default(),
        dpop: DpopSettings::default(),
        controls: ClientControls::default(),
    }
}

/// The RFC 7638 thumbprint of RFC 7638 §3.1's example key: what a DPoP binding stores.
pub const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
/// Another key's thumbprint.
pub const OTHER_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

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
            auth_time: Some(Timestamp(T0.0 - 30_000)),
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            dpop_jkt: None,
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
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            auth_time: Some(Timestamp(T0.0 - 30_000)),
            dpop_jkt: None,
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

    /// Grant `grant_id` of `client`, issued at [`T0`] with refresh token `{grant_id}/rt0`,
    /// redeeming `code` when given.
    pub fn issuance(&self, grant_id: &str, client: &Client, code: Option<&AuthCode>) -> Issuance {
        Issuance {
            code_hash: code.map(|code| code.code_hash),
            ..self.issuance_at(grant_id, client, true, T0)
        }
    }

    /// Grant `grant_id` of the world's user and `client`, issued (and last used) at `when`, with
    /// refresh token `{grant_id}/rt0` if `with_refresh`, and an `issued` event; no code, no
    /// approval limit, no idle expiry.
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
            idle_expires_at: None,
            events: vec![grant_event(&grant, EventKind::Issued, when)],
            code_hash: None,
            max_live_grants: None,
            grant,
        }
    }

    /// Issues grant `grant_id` (see [`World::issue`]) and rotates it once, 60 s later:
    /// `{grant_id}/rt0` is replaced by `{grant_id}/rt1`.
    pub async fn issue_rotated(&self, grant_id: &str) -> Grant {
        let grant = self.issue(grant_id).await;
        let label = |name: &str| format!("{grant_id}/{name}");
        let outcome = self
            .commit(&grant, &label("rt0"), Some(&label("rt1")), at(60))
            .await;
        assert_eq!(
            outcome,
            RefreshOutcome::Committed,
            "first rotation of {grant_id}"
        );
        grant
    }

    /// A refresh of `presented` in `grant` at `now`, rotating to `successor` when given.
    pub fn refresh(
        &self,
        grant: &Grant,
        presented: &str,
        successor: Option<&str>,
        now: Timestamp,
    ) -> RefreshCommit {
        let kind = if successor.is_some() {
            EventKind::Rotated
        } else {
            EventKind::Refreshed
        };
        RefreshCommit {
            presented_hash: hash(presented),
            grant_id: grant.id.clone(),
            successor_hash: successor.map(hash),
            successor_jkt: None,
            idle_expires_at: None,
            record_use: true,
            now,
            event: grant_event(grant, kind, now),
        }
    }

    /// Commits [`World::refresh`] and returns the outcome.
    pub async fn commit(
        &self,
        grant: &Grant,
        presented: &str,
        successor: Option<&str>,
        now: Timestamp,
    ) -> RefreshOutcome {
        let commit = self.refresh(grant, presented, successor, now);
        self.store.commit_refresh(&commit).await.unwrap()
    }

    /// Grant `grant_id`'s family, which must exist.
    pub async fn family(&self, grant_id: &str) -> Family {
        let family = self.store.family(grant_id).await.unwrap();
        family.unwrap_or_else(|| panic!("grant {grant_id} is not stored"))
    }

    /// Whether refresh token `label` is its family's current token.
    pub async fn is_current(&self, grant_id: &str, label: &str) -> bool {
        self.family(grant_id).await.current == Some(hash(label))
    }

    /// When grant `grant_id`, which must exist, was revoked.
    pub async fn grant_revoked_at(&self, grant_id: &str) -> Option<Timestamp> {
        self.family(grant_id).await.grant.revoked_at
    }
}

/// An event of `kind` about `grant` at `at`.
pub fn grant_event(grant: &Grant, kind: EventKind, at: Timestamp) -> Event {
    Event {
        at,
        kind,
        client_id: Some(grant.client_id.clone()),
        user_id: Some(grant.user_id.clone()),
        grant_id: Some(grant.id.clone()),
        detail: String::new(),
        source: None,
        user_agent: None,
    }
}

/// The whole change feed, as (kind, key) pairs in order.
pub async fn feed(store: &Arc<dyn Store>) -> Vec<(ChangeKind, String)> {
    let changes = store.changes_since(0, 10_000).await.unwrap();
    changes.into_iter().map(|c| (c.kind, c.key)).collect()
}

/// The events of `kind` stored.
pub async fn events_of(store: &Arc<dyn Store>, kind: EventKind) -> usize {
    let all = store
        .events(&EventFilter {
            limit: 100_000,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    all.iter().filter(|e| e.event.kind == kind).count()
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
    for event in &mut issuance.events {
        event.user_id = Some(user.id.clone());
    }
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
    bob.admin = true;
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
    changed.admin = true;
    assert!(store
        .update_user(&changed, BrowserSessions::Keep, at(1))
        .await
        .unwrap());
    assert_eq!(store.user_by_id(&ada.id).await.unwrap(), Some(changed));

    let mut ghost = ada.clone();
    ghost.id = "005000000000009AAA".to_owned();
    assert!(!store
        .update_user(&ghost, BrowserSessions::Keep, at(1))
        .await
        .unwrap());
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
        openid: OpenIdSettings {
            id_token_validity_secs: 600,
            id_token_audiences: vec!["https://api.example.com".to_owned(), "app-one".to_owned()],
            id_token_standard_claims: true,
            echo_nonce_on_refresh: true,
            id_token_alg: SigningAlg::Es256,
            jwt_access_tokens: true,
        },
        dpop: DpopSettings {
            mode: DpopMode::Required,
            require_nonce: true,
        },
        controls: ClientControls {
            pkce_required: true,
            rotation_required: true,
            idle_cap_secs: Some(30 * 86_400),
            blocked: true,
            rotation_audit: false,
            ip_allowlist: IpAllowlist::parse("203.0.113.0/24, 2001:db8::/32, 198.51.100.7, ::/0!")
                .unwrap(),
        },
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
        openid: OpenIdSettings {
            id_token_validity_secs: 3600,
            id_token_audiences: vec!["urn:example:api".to_owned()],
            id_token_standard_claims: true,
            echo_nonce_on_refresh: false,
            id_token_alg: SigningAlg::Es256,
            jwt_access_tokens: true,
        },
        dpop: DpopSettings {
            mode: DpopMode::Allowed,
            require_nonce: true,
        },
        controls: ClientControls {
            pkce_required: true,
            rotation_required: false,
            idle_cap_secs: Some(3600),
            blocked: true,
            rotation_audit: true,
            ip_allowlist: IpAllowlist::parse(&full_ip_allowlist()).unwrap(),
        },
        ..first.clone()
    };
    assert!(store.update_client(&changed, at(1)).await.unwrap());
    assert_eq!(
        store.client_by_id("app-one").await.unwrap().as_ref(),
        Some(&changed)
    );
    // An allowlist cleared is read back empty: no restriction.
    let mut cleared = changed.clone();
    cleared.controls.ip_allowlist = IpAllowlist::default();
    assert!(store.update_client(&cleared, at(2)).await.unwrap());
    assert_eq!(store.client_by_id("app-one").await.unwrap(), Some(cleared));
    assert!(!store
        .update_client(&client("unknown"), at(1))
        .await
        .unwrap());
}

/// The longest allowlist a client may have: 128 ranges, IPv6 and IPv4 alternately.
fn full_ip_allowlist() -> String {
    (0..MAX_IP_ALLOWLIST_RANGES)
        .map(|n| match n % 2 {
            0 => format!("2001:db8:{n:x}::/48"),
            _ => format!("10.{n}.0.0/16"),
        })
        .collect::<Vec<_>>()
        .join(",")
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
        CodeRedemption::Redeemed(Box::new(code.clone()))
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
    assert_eq!(
        feed(&store).await,
        [(ChangeKind::GrantRevoked, "grant-1".to_owned())]
    );
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
    assert_eq!(events_of(&store, EventKind::Issued).await, 0);
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

pub async fn issuance_is_found_by_its_grant_with_its_events(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;

    assert_eq!(store.grant("grant-1").await.unwrap(), Some(grant.clone()));
    let family = world.family("grant-1").await;
    assert_eq!(family.grant, grant);
    assert_eq!(family.current, Some(hash("grant-1/rt0")));
    assert_eq!((family.previous, family.rotated_at), (None, None));
    assert_eq!(events_of(&store, EventKind::Issued).await, 1);
    assert_eq!(store.grant("unknown").await.unwrap(), None);
    assert_eq!(store.family("unknown").await.unwrap(), None);
}

pub async fn issuance_without_refresh_token_stores_none(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    issued(
        &store,
        &world.issuance_at("grant-1", &world.client, false, T0),
    )
    .await;
    let family = world.family("grant-1").await;
    assert!(!family.grant.has_refresh_token);
    assert_eq!(family.current, None);
}

/// A rotation makes the successor current and the presented token the previous, in one
/// conditional update: presenting the old token again changes nothing.
pub async fn rotation_commits_once_and_a_second_commit_writes_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue_rotated("grant-1").await;
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt1")));
    assert_eq!(family.previous, Some(hash("grant-1/rt0")));
    assert_eq!(family.rotated_at, Some(at(60)));
    assert_eq!(family.grant.last_used_at, at(60));
    // The lifetime counts from the grant: rotation does not restart it.
    assert_eq!(family.grant.created_at, T0);
    assert_eq!(events_of(&store, EventKind::Rotated).await, 1);

    assert_eq!(
        world
            .commit(&grant, "grant-1/rt0", Some("grant-1/rt2"), at(61))
            .await,
        RefreshOutcome::Stale
    );
    assert_eq!(
        world.family("grant-1").await,
        family,
        "a stale commit writes nothing"
    );
    assert_eq!(
        events_of(&store, EventKind::Rotated).await,
        1,
        "nor its event"
    );

    // The successor rotates in turn, and the first token drops out of the family.
    assert_eq!(
        world
            .commit(&grant, "grant-1/rt1", Some("grant-1/rt3"), at(120))
            .await,
        RefreshOutcome::Committed
    );
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt3")));
    assert_eq!(family.previous, Some(hash("grant-1/rt1")));
}

pub async fn refresh_without_rotation_keeps_the_token_and_records_the_use(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    for secs in [60, 120] {
        assert_eq!(
            world.commit(&grant, "grant-1/rt0", None, at(secs)).await,
            RefreshOutcome::Committed
        );
    }
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt0")));
    assert_eq!(family.previous, None);
    assert_eq!(family.grant.last_used_at, at(120));
    assert_eq!(events_of(&store, EventKind::Refreshed).await, 2);

    // An unknown presented token changes nothing.
    assert_eq!(
        world.commit(&grant, "not-a-token", None, at(180)).await,
        RefreshOutcome::Stale
    );
    assert_eq!(world.family("grant-1").await.grant.last_used_at, at(120));
    assert_eq!(events_of(&store, EventKind::Refreshed).await, 2);
}

/// Without an idle limit, a refresh without rotation writes its event only, under the same
/// conditions: the presented token current, the grant live.
pub async fn refresh_without_a_recorded_use_writes_only_its_event(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    let unrecorded = |presented: &str, secs| RefreshCommit {
        record_use: false,
        ..world.refresh(&grant, presented, None, at(secs))
    };
    assert_eq!(
        store
            .commit_refresh(&unrecorded("grant-1/rt0", 60))
            .await
            .unwrap(),
        RefreshOutcome::Committed
    );
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt0")));
    assert_eq!(
        family.grant.last_used_at, T0,
        "the grant's row is not written"
    );
    assert_eq!(events_of(&store, EventKind::Refreshed).await, 1);
    assert_eq!(
        store
            .commit_refresh(&unrecorded("not-a-token", 90))
            .await
            .unwrap(),
        RefreshOutcome::Stale
    );
    store.revoke_grant("grant-1", at(100)).await.unwrap();
    assert_eq!(
        store
            .commit_refresh(&unrecorded("grant-1/rt0", 120))
            .await
            .unwrap(),
        RefreshOutcome::Stale
    );
    assert_eq!(events_of(&store, EventKind::Refreshed).await, 1);
}

pub async fn refresh_of_a_revoked_grant_is_stale(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    store.revoke_grant("grant-1", at(30)).await.unwrap();
    for successor in [Some("grant-1/rt1"), None] {
        assert_eq!(
            world.commit(&grant, "grant-1/rt0", successor, at(60)).await,
            RefreshOutcome::Stale,
            "{successor:?}"
        );
    }
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt0")));
    assert_eq!(family.grant.last_used_at, T0);
}

pub async fn refresh_naming_another_grant_is_stale(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    let other = world.issue("grant-2").await;
    // grant-1's token presented as if it were grant-2's.
    for successor in [Some("grant-2/rt1"), None] {
        assert_eq!(
            world.commit(&other, "grant-1/rt0", successor, at(60)).await,
            RefreshOutcome::Stale,
            "{successor:?}"
        );
    }
    assert!(world.is_current("grant-1", "grant-1/rt0").await);
    assert!(world.is_current("grant-2", "grant-2/rt0").await);
}

pub async fn concurrent_refreshes_of_one_token_commit_exactly_once(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 50;
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|n| {
            let commit = world.refresh(&grant, "grant-1/rt0", Some(&format!("rt-{n}")), at(60));
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
    assert!(world.is_current("grant-1", &format!("rt-{winner}")).await);
    assert_eq!(events_of(&store, EventKind::Rotated).await, 1);
}

pub async fn revoking_a_grant_is_idempotent_and_fed_once(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue_rotated("grant-1").await;
    world.issue("bystander").await;
    let rotated = world.refresh(&grant, "grant-1/rt1", Some("grant-1/rt2"), at(90));
    assert_eq!(
        store.commit_refresh(&rotated).await.unwrap(),
        RefreshOutcome::Committed
    );

    assert!(store.revoke_grant("grant-1", at(100)).await.unwrap());
    assert!(!store.revoke_grant("grant-1", at(200)).await.unwrap());
    assert!(!store.revoke_grant("never-issued", at(200)).await.unwrap());

    let family = world.family("grant-1").await;
    assert_eq!(family.grant.revoked_at, Some(at(100)));
    assert_eq!(
        world
            .commit(&grant, "grant-1/rt2", Some("grant-1/rt3"), at(300))
            .await,
        RefreshOutcome::Stale
    );
    assert_eq!(
        feed(&store).await,
        [(ChangeKind::GrantRevoked, "grant-1".to_owned())]
    );
    let live = store.live_changes(at(200)).await.unwrap().0;
    assert_eq!(live.len(), 1);
    assert!(
        live[0].until >= at(100).plus_secs(86_400),
        "in force as long as its access tokens"
    );

    // Another grant of the same user and client is untouched.
    assert_eq!(world.grant_revoked_at("bystander").await, None);
    assert!(world.is_current("bystander", "bystander/rt0").await);
}

/// Revoking one access token is an entry in the change feed until the token expires; the grant
/// is untouched.
pub async fn revoking_an_access_token_is_fed_until_it_expires(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    let token = hash("grant-1/at0");
    store
        .revoke_access_token(&token, at(70), at(7_270))
        .await
        .unwrap();
    let changes = store.changes_since(0, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::AccessTokenRevoked);
    assert_eq!(changes[0].key, hex(&token));
    assert_eq!(changes[0].until, at(7_270));
    assert_eq!(store.live_changes(at(7_270)).await.unwrap().0, []);
    assert_eq!(world.grant_revoked_at("grant-1").await, None);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The feed holds every revocation and every change to a client or a user, in order, with
/// increasing sequence numbers; a reader picks up where it left; entries out of force are not
/// live; the newest sequence number survives a purge.
pub async fn the_change_feed_records_revocations_and_changes_in_order(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("g1").await;
    world.issue("g2").await;
    let mut user = world.user.clone();
    user.email = Some("new@example.com".into());
    assert!(store
        .update_user(&user, BrowserSessions::Keep, at(1))
        .await
        .unwrap());
    let mut client = world.client.clone();
    client.name = "Renamed".into();
    assert!(store.update_client(&client, at(2)).await.unwrap());
    assert_eq!(
        store
            .revoke_grants_of_user(&world.user.id, at(3))
            .await
            .unwrap(),
        ["g1", "g2"]
    );
    assert!(!store
        .update_user(
            &User {
                id: "005nobody".into(),
                ..user.clone()
            },
            BrowserSessions::Keep,
            at(4)
        )
        .await
        .unwrap());
    let all = store.changes_since(0, 100).await.unwrap();
    let kinds: Vec<(ChangeKind, &str)> = all.iter().map(|c| (c.kind, c.key.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::UserChanged, world.user.id.as_str()),
            (ChangeKind::ClientChanged, world.client.client_id.as_str()),
            (ChangeKind::GrantRevoked, "g1"),
            (ChangeKind::GrantRevoked, "g2"),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let after_first = store.changes_since(all[0].seq, 2).await.unwrap();
    assert_eq!(after_first, all[1..3]);
    let (live, newest) = store.live_changes(at(5)).await.unwrap();
    assert_eq!(live.len(), 4);
    assert_eq!(newest, all[3].seq);
    // Purged once out of force, the entries go, and the sequence goes on from where it was.
    let far = at(10 * 86_400);
    let round = store
        .purge(&PurgePlan {
            batch: 100,
            access_expired_before: T0,
            codes_expired_before: T0,
            revoked_before: T0,
            events_before: T0,
            idle_expired_before: T0,
            changes_before: far,
            dpop_proofs_expired_before: T0,
            clients: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(round.counts.changes, 4);
    let (live, newest_after) = store.live_changes(far).await.unwrap();
    assert!(live.is_empty());
    assert_eq!(newest_after, newest);
    store.revoke_grant("g-none", far).await.unwrap();
    world.issue("g3").await;
    store.revoke_grant("g3", far).await.unwrap();
    let next = store.changes_since(newest, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].seq > newest);
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
            .commit(&doomed, "doomed/rt0", Some("doomed/rt1"), at(60))
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

    assert!(store.delete_client(client_id, at(70)).await.unwrap());
    assert!(!store.delete_client(client_id, at(71)).await.unwrap());

    assert_eq!(store.client_by_id(client_id).await.unwrap(), None);
    assert_eq!(store.family("doomed").await.unwrap(), None);
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
    assert_eq!(
        feed(&store).await,
        [(ChangeKind::ClientChanged, client_id.to_owned())]
    );

    assert!(store.client_by_id("app-two").await.unwrap().is_some());
    assert_eq!(store.grant("kept").await.unwrap(), Some(kept.grant));
    assert!(world.is_current("kept", "kept/rt0").await);
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

/// A rotation keeps the presented token as the family's previous one, with the time of the
/// rotation, for replays inside the retry window; the next rotation replaces it (the window of a
/// token closes once its successor is used).
pub async fn rotation_keeps_the_previous_token_until_the_next_rotation(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    let first = world.refresh(&grant, "grant-1/rt0", Some("grant-1/rt1"), at(60));
    assert_eq!(
        store.commit_refresh(&first).await.unwrap(),
        RefreshOutcome::Committed
    );
    let family = world.family("grant-1").await;
    assert_eq!(family.previous, Some(hash("grant-1/rt0")));
    assert_eq!(family.rotated_at, Some(at(60)));

    let second = world.refresh(&grant, "grant-1/rt1", Some("grant-1/rt2"), at(90));
    assert_eq!(
        store.commit_refresh(&second).await.unwrap(),
        RefreshOutcome::Committed
    );
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt2")));
    assert_eq!(family.previous, Some(hash("grant-1/rt1")));
    assert_eq!(family.rotated_at, Some(at(90)));
}

/// A token of the earlier, unsigned format is found by its hash only where the store has such
/// rows (an upgraded database); a fresh store has none.
pub async fn unknown_legacy_tokens_name_no_grant(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    assert_eq!(
        store
            .legacy_refresh_grant(&hash("grant-1/rt0"))
            .await
            .unwrap(),
        None
    );
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
    assert_eq!(
        feed(&store).await,
        [(ChangeKind::GrantRevoked, "g1".to_owned())]
    );
    for n in 2..=6 {
        assert_eq!(world.grant_revoked_at(&format!("g{n}")).await, None, "g{n}");
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
/// The epoch that ends a user's browser sessions: up by one per `end_sessions` and per update
/// that ends them; an update that keeps them, or carries a stale epoch, leaves it alone.
pub async fn a_session_epoch_only_goes_up_and_an_update_never_lowers_it(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let epoch = || async {
        store
            .user_by_id(&world.user.id)
            .await
            .unwrap()
            .unwrap()
            .session_epoch
    };
    assert_eq!(epoch().await, 0);
    assert!(store.end_sessions(&world.user.id).await.unwrap());
    assert!(store.end_sessions(&world.user.id).await.unwrap());
    assert_eq!(epoch().await, 2);
    // `world.user` still says 0: an update writes the other fields, never the epoch back.
    let mut renamed = world.user.clone();
    renamed.email = Some("renamed@example.com".into());
    assert!(store
        .update_user(&renamed, BrowserSessions::Keep, at(1))
        .await
        .unwrap());
    assert_eq!(epoch().await, 2);
    assert!(store
        .update_user(&renamed, BrowserSessions::End, at(2))
        .await
        .unwrap());
    let stored = store.user_by_id(&world.user.id).await.unwrap().unwrap();
    assert_eq!(stored.session_epoch, 3);
    assert_eq!(stored.email.as_deref(), Some("renamed@example.com"));
    assert!(!store.end_sessions("005nobody").await.unwrap());
}

/// Disabling is one write: the flag, the epoch and every live grant of the user, each grant in
/// the change feed; an unknown user writes nothing.
pub async fn disabling_a_user_ends_their_sessions_and_revokes_their_grants_in_one_write(
    store: Arc<dyn Store>,
) {
    let world = World::create(&store).await;
    let (_, bob) = world.neighbours().await;
    world.issue("g1").await;
    world.issue("g2").await;
    issued(
        &store,
        &issued_to(world.issuance_at("bobs", &world.client, true, at(1)), &bob),
    )
    .await;
    store.revoke_grant("g2", at(2)).await.unwrap();
    let before = feed(&store).await.len();

    let revoked = store.disable_user(&world.user.id, at(10)).await.unwrap();
    assert_eq!(revoked, Some(vec!["g1".to_owned()]));
    let stored = store.user_by_id(&world.user.id).await.unwrap().unwrap();
    assert!(stored.disabled);
    assert_eq!(stored.session_epoch, world.user.session_epoch + 1);
    assert_eq!(world.grant_revoked_at("g1").await, Some(at(10)));
    assert_eq!(world.grant_revoked_at("g2").await, Some(at(2)));
    assert_eq!(world.grant_revoked_at("bobs").await, None);
    let fed = feed(&store).await;
    let fed: Vec<&(ChangeKind, String)> = fed.iter().skip(before).collect();
    assert_eq!(
        fed,
        [
            &(ChangeKind::UserChanged, world.user.id.clone()),
            &(ChangeKind::GrantRevoked, "g1".to_owned()),
        ]
    );
    let bob_after = store.user_by_id(&bob.id).await.unwrap().unwrap();
    assert!(!bob_after.disabled);
    assert_eq!(bob_after.session_epoch, bob.session_epoch);

    let count = feed(&store).await.len();
    assert_eq!(store.disable_user("005nobody", at(20)).await.unwrap(), None);
    assert_eq!(feed(&store).await.len(), count);
}

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
    let mut fed: Vec<String> = feed(&store)
        .await
        .into_iter()
        .filter(|(kind, _)| *kind == ChangeKind::GrantRevoked)
        .map(|(_, key)| key)
        .collect();
    fed.sort();
    assert_eq!(fed, ["access-only", "already", "elsewhere", "rotated"]);

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
    }
    assert_eq!(world.grant_revoked_at("already").await, Some(at(5)));
    assert_eq!(world.grant_revoked_at("elsewhere").await, None);
    assert!(world.is_current("elsewhere", "elsewhere/rt0").await);

    let again = store.revoke_grants_of_client(&app.client_id, at(200)).await;
    assert!(again.unwrap().is_empty());
}

// ------------------------------------------------------------------------------ OAuth Usage

/// The use count and last use of grant `grant_id` of the world's user and client, as the
/// usage listing shows them.
async fn usage_of(world: &World, grant_id: &str, now: Timestamp) -> (u64, Timestamp) {
    let tokens = world
        .store
        .user_tokens_usage(&world.client.client_id, &world.user.id, now)
        .await
        .unwrap();
    let token = tokens
        .iter()
        .find(|t| t.grant_id == grant_id)
        .unwrap_or_else(|| panic!("{grant_id} is not listed"));
    (token.use_count, token.last_used_at)
}

/// Issuance is the first use; a rotation and a refresh that records its use each count one, in
/// the write they make anyway; a refresh that writes no row counts nothing (the usage ledger
/// brings its use); a stale commit counts nothing.
pub async fn every_refresh_that_writes_the_row_counts_a_use(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    assert_eq!(usage_of(&world, "grant-1", T0).await, (1, T0));

    let rotated = world
        .commit(&grant, "grant-1/rt0", Some("grant-1/rt1"), at(60))
        .await;
    assert_eq!(rotated, RefreshOutcome::Committed);
    assert_eq!(usage_of(&world, "grant-1", T0).await, (2, at(60)));

    let touched = world.commit(&grant, "grant-1/rt1", None, at(120)).await;
    assert_eq!(touched, RefreshOutcome::Committed);
    assert_eq!(usage_of(&world, "grant-1", T0).await, (3, at(120)));

    let unrecorded = RefreshCommit {
        record_use: false,
        ..world.refresh(&grant, "grant-1/rt1", None, at(180))
    };
    let outcome = store.commit_refresh(&unrecorded).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Committed);
    assert_eq!(usage_of(&world, "grant-1", T0).await, (3, at(120)));

    let stale = world
        .commit(&grant, "grant-1/rt0", Some("grant-1/rt2"), at(240))
        .await;
    assert_eq!(stale, RefreshOutcome::Stale);
    assert_eq!(usage_of(&world, "grant-1", T0).await, (3, at(120)));
}

/// `record_usage` adds each delta's uses and keeps the later of the two last uses (a delta
/// flushed late never moves a last use back); batches from two nodes add up; a grant gone is
/// skipped without failing the batch.
pub async fn recorded_usage_adds_up_and_keeps_the_latest_use(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("grant-1").await;
    world.issue("grant-2").await;
    let delta = |grant_id: &str, uses, secs| UsageDelta {
        grant_id: grant_id.to_owned(),
        uses,
        last_used_at: at(secs),
    };
    store
        .record_usage(&[
            delta("grant-1", 4, 300),
            delta("grant-2", 1, 100),
            delta("no-such-grant", 7, 100),
        ])
        .await
        .unwrap();
    // Another node's deltas, one of them older than what is stored.
    store
        .record_usage(&[delta("grant-1", 2, 200), delta("grant-2", 3, 400)])
        .await
        .unwrap();
    store.record_usage(&[]).await.unwrap();

    assert_eq!(usage_of(&world, "grant-1", T0).await, (7, at(300)));
    assert_eq!(usage_of(&world, "grant-2", T0).await, (5, at(400)));
}

/// A fixture: the world's user (ada) with grants `a1`, `a2` of the world's client, bob with
/// `b1` of it and `b2` of the other client, and a revoked grant of ada's; uses recorded.
async fn usage_world(store: &Arc<dyn Store>) -> (World, Client, User) {
    let world = World::create(store).await;
    let (other_client, bob) = world.neighbours().await;
    let app = world.client.clone();
    for (grant_id, client, user, secs) in [
        ("a1", &app, &world.user, 10),
        ("a2", &app, &world.user, 20),
        ("b1", &app, &bob, 30),
        ("b2", &other_client, &bob, 40),
        ("gone", &app, &world.user, 5),
    ] {
        let issuance = issued_to(world.issuance_at(grant_id, client, true, at(secs)), user);
        issued(store, &issuance).await;
    }
    store.revoke_grant("gone", at(50)).await.unwrap();
    let delta = |grant_id: &str, uses, secs| UsageDelta {
        grant_id: grant_id.to_owned(),
        uses,
        last_used_at: at(secs),
    };
    store
        .record_usage(&[
            delta("a1", 2, 500),
            delta("a2", 1, 300),
            delta("b1", 5, 100),
            delta("gone", 9, 900),
        ])
        .await
        .unwrap();
    (world, other_client, bob)
}

pub async fn app_usage_counts_the_live_grants_of_every_client(store: Arc<dyn Store>) {
    let (world, other_client, _) = usage_world(&store).await;
    let lonely = client("app-zero");
    store.insert_client(&lonely).await.unwrap();

    let apps = store.app_usage(at(1000)).await.unwrap();
    let by_id = |id: &str| -> AppUsage {
        apps.iter()
            .find(|a| a.client_id == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))
            .clone()
    };
    let app = by_id(&world.client.client_id);
    assert_eq!(app.name, world.client.name);
    // Ada's two live grants and bob's one; "gone" (revoked) not counted. Uses: 1 + 2, 1 + 1, 1 + 5.
    assert_eq!((app.user_count, app.token_count, app.use_count), (2, 3, 11));
    assert_eq!(app.last_used_at, Some(at(500)));
    let other = by_id(&other_client.client_id);
    assert_eq!(
        (other.user_count, other.token_count, other.use_count),
        (1, 1, 1)
    );
    assert_eq!(other.last_used_at, Some(at(40)));
    let zero = by_id("app-zero");
    assert_eq!(
        (zero.user_count, zero.token_count, zero.use_count),
        (0, 0, 0)
    );
    assert_eq!(zero.last_used_at, None);
    assert_eq!(apps.len(), 3);
}

pub async fn an_apps_users_are_paged_by_user_id_with_their_grants_aggregated(
    store: Arc<dyn Store>,
) {
    let (world, _, bob) = usage_world(&store).await;
    let app = &world.client.client_id;
    let now = at(1000);

    let everyone = store.app_users_usage(app, None, 10, now).await.unwrap();
    let ada = UserUsage {
        user_id: world.user.id.clone(),
        username: world.user.username.clone(),
        first_used_at: at(10),
        last_used_at: at(500),
        use_count: 5,
        token_count: 2,
    };
    let bobs = UserUsage {
        user_id: bob.id.clone(),
        username: bob.username.clone(),
        first_used_at: at(30),
        last_used_at: at(100),
        use_count: 6,
        token_count: 1,
    };
    assert_eq!(everyone, [ada.clone(), bobs.clone()]);

    // Keyset paging: a page of one, then the page after its last user id, then nothing.
    let first = store.app_users_usage(app, None, 1, now).await.unwrap();
    assert_eq!(first, [ada]);
    let second = store
        .app_users_usage(app, Some(&first[0].user_id), 1, now)
        .await
        .unwrap();
    assert_eq!(second, [bobs]);
    let after = store
        .app_users_usage(app, Some(&second[0].user_id), 1, now)
        .await
        .unwrap();
    assert!(after.is_empty());

    // A user whose every grant of the app is revoked is not listed.
    store
        .revoke_grants_of_user_and_client(&bob.id, app, at(600))
        .await
        .unwrap();
    let left = store.app_users_usage(app, None, 10, now).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user_id, world.user.id);
    assert!(store
        .app_users_usage("no-such-app", None, 10, now)
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_users_tokens_of_an_app_are_its_live_grants_with_their_counts(store: Arc<dyn Store>) {
    let (world, other_client, bob) = usage_world(&store).await;
    let app = &world.client.client_id;
    let tokens = store
        .user_tokens_usage(app, &world.user.id, at(1000))
        .await
        .unwrap();
    let summary: Vec<(&str, u64, Timestamp, Timestamp)> = tokens
        .iter()
        .map(|t| {
            (
                t.grant_id.as_str(),
                t.use_count,
                t.first_used_at,
                t.last_used_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("a1", 3, at(10), at(500)), ("a2", 2, at(20), at(300))]
    );
    assert!(tokens.iter().all(|t| t.has_refresh_token));
    assert_eq!(tokens[0].scope, world.client.scopes.to_string());

    let bobs_other = store
        .user_tokens_usage(&other_client.client_id, &bob.id, at(1000))
        .await
        .unwrap();
    assert_eq!(bobs_other.len(), 1);
    assert_eq!(bobs_other[0].grant_id, "b2");
    assert!(store
        .user_tokens_usage(&other_client.client_id, &world.user.id, at(1000))
        .await
        .unwrap()
        .is_empty());
}

/// OAuth Usage's "revoke this user of this app": every live grant of the user for that client,
/// each in the change feed once; the user's grants of other clients and the client's grants of
/// other users are left alone.
pub async fn revoking_a_user_of_one_client_leaves_the_others(store: Arc<dyn Store>) {
    let (world, other_client, bob) = usage_world(&store).await;
    let before = feed(&store).await.len();
    issued(
        &store,
        &issued_to(world.issuance_at("b3", &world.client, true, at(60)), &bob),
    )
    .await;

    let revoked = store
        .revoke_grants_of_user_and_client(&bob.id, &world.client.client_id, at(700))
        .await
        .unwrap();
    assert_eq!(revoked, ["b1", "b3"], "oldest first");
    for grant_id in ["b1", "b3"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, Some(at(700)));
    }
    for grant_id in ["a1", "a2", "b2"] {
        assert_eq!(world.grant_revoked_at(grant_id).await, None, "{grant_id}");
    }
    let fed: Vec<(ChangeKind, String)> = feed(&store).await.split_off(before);
    assert_eq!(
        fed,
        [
            (ChangeKind::GrantRevoked, "b1".to_owned()),
            (ChangeKind::GrantRevoked, "b3".to_owned()),
        ]
    );
    let again = store
        .revoke_grants_of_user_and_client(&bob.id, &world.client.client_id, at(800))
        .await
        .unwrap();
    assert!(again.is_empty());
    assert!(store
        .revoke_grants_of_user_and_client(&bob.id, &other_client.client_id, at(800))
        .await
        .map(|ids| ids == ["b2"])
        .unwrap());
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

    // By kind, and newest first (the admin console's list).
    let issued = EventFilter {
        kind: Some(Issued),
        ..EventFilter::default()
    };
    assert_eq!(read_events(&store, issued).await, pick(&[0, 4]));
    let newest = EventFilter {
        newest_first: true,
        limit: 2,
        ..filter(ada, None, None)
    };
    assert_eq!(read_events(&store, newest).await, pick(&[5, 4]));

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

/// `since` keeps the events at or after an instant, combined with the client, kind, order and
/// limit filters: the rotation audit summary's read (a client's `rotation_audit` events of the
/// last 30 days, newest first, bounded).
pub async fn events_since_an_instant_are_read_with_the_other_filters(store: Arc<dyn Store>) {
    use EventKind::*;
    let (app, other) = (Some("app-one"), Some("app-two"));
    let batch = [
        event(10, RotationAudit, app, Some("005A"), Some("g1"), "previous"),
        event(
            20,
            RotationAudit,
            other,
            Some("005A"),
            Some("g2"),
            "previous",
        ),
        event(30, Rotated, app, Some("005A"), Some("g1"), ""),
        event(40, RotationAudit, app, Some("005B"), Some("g3"), "older"),
        event(50, RotationAudit, app, Some("005A"), Some("g1"), "older"),
    ];
    store.append_events(&batch).await.unwrap();
    let summary = |since: u64, limit: u32| EventFilter {
        client_id: app.map(str::to_owned),
        kind: Some(RotationAudit),
        since: Some(at(since)),
        newest_first: true,
        limit,
        ..EventFilter::default()
    };
    let pick =
        |indexes: &[usize]| -> Vec<Event> { indexes.iter().map(|&i| batch[i].clone()).collect() };
    assert_eq!(read_events(&store, summary(0, 0)).await, pick(&[4, 3, 0]));
    // At the instant itself, included; a moment later, not.
    assert_eq!(read_events(&store, summary(40, 0)).await, pick(&[4, 3]));
    assert_eq!(read_events(&store, summary(41, 0)).await, pick(&[4]));
    assert_eq!(read_events(&store, summary(0, 2)).await, pick(&[4, 3]));
    assert!(read_events(&store, summary(51, 0)).await.is_empty());
    // Oldest first, without a client: every kind since the instant.
    let since = EventFilter {
        since: Some(at(20)),
        ..EventFilter::default()
    };
    assert_eq!(read_events(&store, since).await, pick(&[1, 2, 3, 4]));
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
            "changes",
            "clients",
            "events",
            "grants",
            "legacy_refresh_tokens",
            "notes",
            "orgs",
            "signing_keys",
            "users"
        ]
    );
    assert!(empty.values().all(|&count| count == 0), "{empty:?}");

    let world = World::create(&store).await;
    world.issue_rotated("grant-1").await;
    store.revoke_grant("grant-1", at(90)).await.unwrap();
    let counts = row_counts(&store).await;
    for (table, count) in [("grants", 1), ("events", 2), ("changes", 1)] {
        assert_eq!(counts[table], count, "{table}");
    }
}

/// `admin stats` counted tables (the earlier formats' among them) and every grant alike: the
/// inventory tells a live grant from a revoked one, and one with a refresh token from one
/// without, in any client and for any user.
pub async fn the_inventory_counts_live_grants_and_refresh_tokens_by_state(store: Arc<dyn Store>) {
    assert_eq!(store.inventory().await.unwrap(), Inventory::default());
    let world = World::create(&store).await;
    let (other_client, _bob) = world.neighbours().await;
    world.issue_rotated("live-1").await;
    world.issue("live-2").await;
    world.issue("revoked-1").await;
    store.revoke_grant("revoked-1", at(90)).await.unwrap();
    let access_only = world.issuance_at("access-only", &other_client, false, T0);
    issued(&store, &access_only).await;
    let revoked_access_only = world.issuance_at("revoked-access-only", &other_client, false, T0);
    issued(&store, &revoked_access_only).await;
    store
        .revoke_grant("revoked-access-only", at(90))
        .await
        .unwrap();
    assert_eq!(
        store.inventory().await.unwrap(),
        Inventory {
            clients: 2,
            users: 2,
            live_grants: 3,
            live_refresh_tokens: 2,
            revoked_refresh_tokens: 1,
            // One `issued` a grant, and the rotation's event.
            events: 6,
        }
    );
}

/// A world with something on either side of every cut-off of a purge plan: the purge removes
/// exactly what the plan names, counts it, and a second purge finds nothing.
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
        created_at: at(900),
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
    store.redeem_code(&linked.code_hash, at(950)).await.unwrap();

    // Grants: (id, client, with a refresh token, created at, idle expiry).
    let issuances = [
        ("ancient", &app, true, 1_000, None),
        ("steady", &app, true, 2_500, None),
        ("idle", &app, true, 3_000, Some(4_000)),
        ("active-idle", &app, true, 3_000, Some(20_000)),
        ("access-only-old", &app, false, 6_000, None),
        ("access-only-recent", &app, false, 8_000, None),
        ("revoked-old", &app, true, 8_000, None),
        ("revoked-new", &app, true, 8_000, None),
        ("rotated-old", &app, true, 9_000, None),
        ("rotated-new", &app, true, 9_000, None),
        ("other", &other_client, true, 1_000, None),
    ];
    let mut grants = BTreeMap::new();
    for (grant_id, client, with_refresh, secs, idle) in issuances {
        let mut issuance = world.issuance_at(grant_id, client, with_refresh, at(secs));
        issuance.events.clear();
        issuance.idle_expires_at = idle.map(at);
        if grant_id == "ancient" {
            issuance.code_hash = Some(linked.code_hash);
        }
        issued(&store, &issuance).await;
        grants.insert(grant_id, issuance.grant);
    }
    for (grant_id, secs) in [("rotated-old", 9_500), ("rotated-new", 9_970)] {
        let label = |name: &str| format!("{grant_id}/{name}");
        let commit = world.refresh(
            &grants[grant_id],
            &label("rt0"),
            Some(&label("rt1")),
            at(secs),
        );
        assert_eq!(
            store.commit_refresh(&commit).await.unwrap(),
            RefreshOutcome::Committed
        );
    }
    store.revoke_grant("revoked-old", at(8_500)).await.unwrap();
    store.revoke_grant("revoked-new", at(9_000)).await.unwrap();
    store
        .revoke_access_token(&hash("an access token"), at(100), at(5_000))
        .await
        .unwrap();

    let trail: Vec<Event> = [1_000, 4_000, 6_000, 9_000]
        .into_iter()
        .map(|secs| event(secs, EventKind::Issued, None, None, None, ""))
        .collect();
    store.append_events(&trail).await.unwrap();

    let before = row_counts(&store).await;
    for (table, count) in [
        ("auth_codes", 4),
        ("grants", 11),
        ("events", 6),
        ("changes", 3),
    ] {
        assert_eq!(before[table], count, "{table} before");
    }

    let plan = PurgePlan {
        batch: 1000,
        access_expired_before: at(10_000),
        codes_expired_before: at(10_000),
        revoked_before: at(9_000),
        events_before: at(5_000),
        idle_expired_before: at(10_000),
        changes_before: at(10_000),
        dpop_proofs_expired_before: at(10_000),
        clients: vec![ClientPurge {
            client_id: app.client_id.clone(),
            created_before: Some(at(2_000)),
            access_only_created_before: at(7_000),
        }],
    };
    let round = store.purge(&plan).await.unwrap();
    assert_eq!(
        round,
        PurgeRound {
            counts: PurgeCounts {
                access_tokens: 0,
                codes: 2,
                grants: 4,
                events: 2,
                changes: 1,
                dpop_proofs: 0,
            },
            complete: true,
        }
    );

    // Past the lifetime, idle, access-only and old, revoked long ago: gone.
    for grant_id in ["ancient", "idle", "access-only-old", "revoked-old"] {
        assert_eq!(store.grant(grant_id).await.unwrap(), None, "{grant_id}");
    }
    for grant_id in [
        "steady",
        "active-idle",
        "access-only-recent",
        "revoked-new",
        "rotated-old",
        "rotated-new",
        "other",
    ] {
        assert!(store.grant(grant_id).await.unwrap().is_some(), "{grant_id}");
    }
    // Rotated families keep their state, in their retry window or out of it.
    assert!(world.is_current("rotated-old", "rotated-old/rt1").await);
    assert_eq!(
        world.family("rotated-new").await.previous,
        Some(hash("rotated-new/rt0"))
    );
    let kept_events: Vec<Event> = read_events(&store, EventFilter::default())
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Issued)
        .collect();
    assert_eq!(kept_events, trail[2..].to_vec());
    let after = row_counts(&store).await;
    for (table, count) in [
        ("orgs", 1),
        ("users", 1),
        ("clients", 2),
        ("approvals", 1),
        ("auth_codes", 2),
        ("grants", 7),
        ("notes", 1),
        ("changes", 2),
    ] {
        assert_eq!(after[table], count, "{table} after");
    }

    assert_eq!(
        store.purge(&plan).await.unwrap(),
        PurgeRound {
            counts: PurgeCounts::default(),
            complete: true
        }
    );
    assert_eq!(row_counts(&store).await, after);
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
        CodeRedemption::Redeemed(Box::new(valid))
    );
}

/// Housekeeping runs in rounds: each removes at most the batch per rule, and says whether
/// anything may be left, so that a backlog never becomes one huge write.
pub async fn purge_works_in_bounded_rounds(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("g").await;
    for n in 0..12 {
        store
            .revoke_access_token(&hash(&format!("token {n}")), at(1), at(2))
            .await
            .unwrap();
    }
    let old: Vec<Event> = (1..=25)
        .map(|secs| event(secs, EventKind::Issued, None, None, None, ""))
        .collect();
    store.append_events(&old).await.unwrap();
    let plan = PurgePlan {
        batch: 10,
        access_expired_before: T0,
        codes_expired_before: T0,
        revoked_before: T0,
        events_before: at(5_000),
        idle_expired_before: T0,
        changes_before: at(5_000),
        dpop_proofs_expired_before: T0,
        clients: Vec::new(),
    };
    let mut rounds = Vec::new();
    loop {
        let round = store.purge(&plan).await.unwrap();
        rounds.push((round.counts.changes, round.counts.events, round.complete));
        if round.complete || rounds.len() > 5 {
            break;
        }
    }
    // The grant's issued event (at T0) is older than the cut-off too: 26 events in all.
    assert_eq!(
        rounds,
        [(10, 10, false), (2, 10, false), (0, 6, true)],
        "(changes, events, complete) per round"
    );
    let left = row_counts(&store).await;
    assert_eq!((left["changes"], left["events"], left["grants"]), (0, 0, 1));
}

/// A purge of the grants idle before `before`, and nothing else.
fn idle_purge_plan(before: Timestamp) -> PurgePlan {
    PurgePlan {
        batch: 10,
        access_expired_before: T0,
        codes_expired_before: T0,
        revoked_before: T0,
        events_before: T0,
        idle_expired_before: before,
        changes_before: T0,
        dpop_proofs_expired_before: T0,
        clients: Vec::new(),
    }
}

/// An idle limit set on a client after its grants were issued reaches them: they expire from
/// idleness like grants issued under it.
pub async fn an_idle_limit_reaches_existing_grants(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    world.issue("g").await;
    let mut limited = world.client.clone();
    limited.refresh_token_policy = "specific_inactivity:3:HOURS".parse().unwrap();
    assert!(store.update_client(&limited, at(1)).await.unwrap());
    let plan = idle_purge_plan;
    assert_eq!(
        store.purge(&plan(at(10_799))).await.unwrap().counts.grants,
        0
    );
    assert_eq!(
        store.purge(&plan(at(10_801))).await.unwrap().counts.grants,
        1
    );
}

/// The idle-limit cap makes an `infinite` client's grants expire from idleness, as the
/// inactivity limit it stands for would; lifting it makes them valid until revoked again.
pub async fn an_idle_cap_reaches_the_grants_of_an_infinite_client_until_lifted(
    store: Arc<dyn Store>,
) {
    let world = World::create(&store).await;
    world.issue("g").await;
    let plan = idle_purge_plan;
    let mut capped = world.client.clone();
    assert_eq!(capped.refresh_token_policy, RefreshTokenPolicy::Infinite);
    capped.controls.idle_cap_secs = Some(3 * 3600);
    assert!(store.update_client(&capped, at(1)).await.unwrap());
    assert_eq!(
        store.purge(&plan(at(10_799))).await.unwrap().counts.grants,
        0
    );

    let mut lifted = capped.clone();
    lifted.controls.idle_cap_secs = None;
    assert!(store.update_client(&lifted, at(2)).await.unwrap());
    assert_eq!(
        store.purge(&plan(at(10_801))).await.unwrap().counts.grants,
        0
    );

    assert!(store.update_client(&capped, at(3)).await.unwrap());
    assert_eq!(
        store.purge(&plan(at(10_801))).await.unwrap().counts.grants,
        1
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

// ------------------------------------------------------------------------------ signing keys

/// A key as the store sees it: the sealed bytes are opaque to it (every byte value, so that a
/// backend storing them as text would lose some).
fn signing_key(kid: &str, created_at: Timestamp) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg: "RS256".to_owned(),
        created_at,
        publish_at: created_at,
        sign_from: created_at.plus_secs(86_400),
        retire_at: None,
        private_key: SealedPrivateKey::from_stored((0..=255u8).chain(kid.bytes()).collect()),
    }
}

pub async fn signing_keys_are_kept_whole_listed_oldest_first_and_retired(store: Arc<dyn Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let (newer, older, same_time) = (
        signing_key("key-b", at(20)),
        signing_key("key-c", at(10)),
        signing_key("key-a", at(20)),
    );
    for key in [&newer, &older, &same_time] {
        store.insert_signing_key(key).await.unwrap();
    }
    assert_eq!(
        store.signing_keys().await.unwrap(),
        [older.clone(), same_time.clone(), newer.clone()]
    );
    assert!(matches!(
        store
            .insert_signing_key(&signing_key("key-b", at(30)))
            .await,
        Err(StoreError::Conflict(_))
    ));

    assert!(store.retire_signing_key("key-c", at(100)).await.unwrap());
    // A later retirement replaces the earlier date (retiring again recomputes it).
    assert!(store.retire_signing_key("key-c", at(200)).await.unwrap());
    assert!(!store.retire_signing_key("key-z", at(100)).await.unwrap());
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(
        keys,
        [
            SigningKey {
                retire_at: Some(at(200)),
                ..older
            },
            same_time,
            newer
        ]
    );
}

// ------------------------------------------------------------------------------------- DPoP

/// A code carries the `dpop_jkt` of its authorization request to its exchange.
pub async fn a_codes_dpop_key_is_kept_until_it_is_redeemed(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let bound = AuthCode {
        dpop_jkt: Some(JKT.to_owned()),
        ..world.code("code-bound", &world.client)
    };
    let unbound = world.code("code-unbound", &world.client);
    for code in [&bound, &unbound] {
        store.insert_code(code).await.unwrap();
        assert_eq!(
            store.redeem_code(&code.code_hash, at(10)).await.unwrap(),
            CodeRedemption::Redeemed(Box::new(code.clone()))
        );
    }
}

/// A public client's grant is bound to a key, and every rotated successor with it: the binding
/// is on the grant, which a rotation does not touch.
pub async fn a_grants_dpop_key_stays_with_its_family_across_rotations(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let mut issuance = world.issuance("grant-1", &world.client, None);
    issuance.grant.dpop_jkt = Some(JKT.to_owned());
    issued(&store, &issuance).await;
    assert_eq!(
        store.grant("grant-1").await.unwrap(),
        Some(issuance.grant.clone())
    );
    assert_eq!(world.family("grant-1").await.grant, issuance.grant);
    for (step, secs) in [(1, 60), (2, 120)] {
        let commit = world.refresh(
            &issuance.grant,
            &format!("grant-1/rt{}", step - 1),
            Some(&format!("grant-1/rt{step}")),
            at(secs),
        );
        assert_eq!(
            store.commit_refresh(&commit).await.unwrap(),
            RefreshOutcome::Committed
        );
        let family = world.family("grant-1").await;
        assert_eq!(
            family.grant.dpop_jkt.as_deref(),
            Some(JKT),
            "rotation {step}"
        );
    }
    let unbound = world.issue("grant-2").await;
    assert_eq!(world.family("grant-2").await.grant.dpop_jkt, None);
    assert_eq!(unbound.dpop_jkt, None);
}

/// A rotation writes the key its access token was bound to (or none) in its own update: what a
/// replay inside the retry window needs to rebuild the same pair. A refresh without rotation
/// leaves it, and a stale commit writes nothing.
pub async fn a_rotation_records_the_key_its_access_token_was_bound_to(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let grant = world.issue("grant-1").await;
    assert_eq!(world.family("grant-1").await.rotated_jkt, None);
    let rotate = |presented: &str, successor: &str, jkt: Option<&str>, secs: u64| RefreshCommit {
        successor_jkt: jkt.map(str::to_owned),
        ..world.refresh(&grant, presented, Some(successor), at(secs))
    };
    // (what is committed, its outcome, the family's rotated_jkt after it).
    let steps = [
        (
            rotate("grant-1/rt0", "grant-1/rt1", Some(JKT), 60),
            RefreshOutcome::Committed,
            Some(JKT),
        ),
        (
            rotate("grant-1/rt0", "grant-1/rt9", Some(OTHER_JKT), 61),
            RefreshOutcome::Stale,
            Some(JKT),
        ),
        (
            world.refresh(&grant, "grant-1/rt1", None, at(90)),
            RefreshOutcome::Committed,
            Some(JKT),
        ),
        (
            rotate("grant-1/rt1", "grant-1/rt2", Some(OTHER_JKT), 120),
            RefreshOutcome::Committed,
            Some(OTHER_JKT),
        ),
        (
            rotate("grant-1/rt2", "grant-1/rt3", None, 180),
            RefreshOutcome::Committed,
            None,
        ),
    ];
    for (step, (commit, outcome, rotated_jkt)) in steps.into_iter().enumerate() {
        assert_eq!(
            store.commit_refresh(&commit).await.unwrap(),
            outcome,
            "step {step}"
        );
        let family = world.family("grant-1").await;
        assert_eq!(family.rotated_jkt.as_deref(), rotated_jkt, "step {step}");
    }
}

/// A store that shares seen DPoP proofs between nodes remembers a key once: the first time is
/// new, the same key again while it lives is a replay, and once expired the key is new again
/// (its entry taken over, with the new expiry). A store that does not share them records
/// nothing: every key is new to it, and the server's own cache catches replays.
pub async fn seen_dpop_proofs_are_remembered_once_until_they_expire(store: Arc<dyn Store>) {
    let proof = hash("client|https://as.example.com/token|jti-1");
    let other = hash("client|https://as.example.com/token|jti-2");
    let remember = |key: Hash, expires: u64, now: u64| {
        let store = Arc::clone(&store);
        async move {
            store
                .remember_dpop_proof(&key, at(expires), at(now))
                .await
                .unwrap()
        }
    };
    if !store.shares_dpop_proofs() {
        assert!(remember(proof, 70, 0).await);
        assert!(
            remember(proof, 70, 1).await,
            "a store that does not share records nothing"
        );
        return;
    }
    assert!(remember(proof, 70, 0).await, "first seen");
    assert!(!remember(proof, 71, 1).await, "a replay while it lives");
    assert!(remember(other, 71, 1).await, "another proof is new");
    assert!(
        !remember(proof, 139, 69).await,
        "still alive just before it expires"
    );
    assert!(remember(proof, 140, 70).await, "new again once expired");
    assert!(
        !remember(proof, 141, 71).await,
        "the taken-over entry lives until its new expiry"
    );
}

/// Housekeeping deletes the seen proofs that expired before the plan's cut-off, and no other.
pub async fn purge_forgets_expired_dpop_proofs(store: Arc<dyn Store>) {
    for (label, expires) in [("old-1", 10), ("old-2", 20), ("live", 100)] {
        store
            .remember_dpop_proof(&hash(label), at(expires), T0)
            .await
            .unwrap();
    }
    let plan = PurgePlan {
        batch: 10,
        access_expired_before: T0,
        codes_expired_before: T0,
        revoked_before: T0,
        events_before: T0,
        idle_expired_before: T0,
        changes_before: T0,
        dpop_proofs_expired_before: at(50),
        clients: Vec::new(),
    };
    let round = store.purge(&plan).await.unwrap();
    let expected = if store.shares_dpop_proofs() { 2 } else { 0 };
    assert_eq!(round.counts.dpop_proofs, expected);
    assert!(round.complete);
    if store.shares_dpop_proofs() {
        // The live one is kept: still a replay.
        assert!(!store
            .remember_dpop_proof(&hash("live"), at(200), at(60))
            .await
            .unwrap());
    }
}

// --------------------------------------------------------------------------------- atomicity

/// An issuance that fails (its grant id is taken) writes nothing: no grant, no event, and the
/// code it redeemed stays unlinked.
pub async fn a_failed_issuance_writes_nothing(store: Arc<dyn Store>) {
    let world = World::create(&store).await;
    let first = world.issue("grant-1").await;
    let code = world.code("code-1", &world.client);
    store.insert_code(&code).await.unwrap();
    store.redeem_code(&code.code_hash, at(1)).await.unwrap();

    let clashing = world.issuance("grant-1", &world.client, Some(&code));
    assert!(store.issue(&clashing).await.is_err());
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(first));
    assert_eq!(events_of(&store, EventKind::Issued).await, 1);
    assert_eq!(
        store.redeem_code(&code.code_hash, at(2)).await.unwrap(),
        CodeRedemption::AlreadyUsed {
            revoked_grant: None
        },
        "the code was not linked"
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
    let family = world.family("grant-1").await;
    assert_eq!(family.current, Some(hash("grant-1/rt1")));
    assert_eq!(family.previous, Some(hash("grant-1/rt0")));
    assert_eq!(
        store.note("002A").await.unwrap(),
        Some(note("002A", &world.user.id, at(5)))
    );
    // And it still works: the reopened store rotates the successor.
    assert_eq!(
        world
            .commit(&grant, "grant-1/rt1", Some("grant-1/rt2"), at(120))
            .await,
        RefreshOutcome::Committed
    );
}
