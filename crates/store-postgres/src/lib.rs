//! Tessera's [`Store`] on PostgreSQL: several server processes, on several nodes, share one
//! database.
//!
//! Every method runs on a connection from a pool (`deadpool-postgres`, statements prepared once
//! per connection). A method of one statement runs it alone, which PostgreSQL makes its own
//! transaction; a method of several runs them in one transaction (`client.transaction()`), so
//! each [`Store`] method happens whole or not at all. PostgreSQL's default isolation, READ
//! COMMITTED, is what the contract needs: a conditional `UPDATE … WHERE` that finds its row
//! locked by a concurrent one waits for it, then re-checks its condition against the committed
//! row, so of concurrent refreshes (or redemptions) of one token exactly one applies. A
//! transaction rolled back by a deadlock or a serialization failure is run again, a few times,
//! before the caller sees `Unavailable`.
//!
//! The change feed must be gap-free in commit order across processes: a follower that read up
//! to `seq` must never later find a smaller `seq` commit. Sequence numbers are handed out at
//! insert, not at commit, so every transaction that appends to the feed first takes an advisory
//! lock ([`FEED_LOCK`]) held until it commits: appends are serialized, and a number is visible
//! before any larger one is given out. The same transaction notifies the channel
//! `tessera_changes`, which [`Store::change_notices`] listens to on a connection of its own.
//!
//! The audit trail is not serialized that way (every refresh appends to it): event ids follow
//! insertion, and concurrent transactions may commit them out of order, so a reader following
//! the trail by `after_id` should stay a few seconds behind its head.
//!
//! Only hashes of tokens, codes and secrets reach this crate, and nothing here logs them or
//! puts them in an error (see `error.rs`); the URL's password is never printed.

mod error;
mod listener;
mod rows;
mod schema;
mod sql;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Client as Connection, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction,
};
use rand::Rng;
use tessera_core::model::{
    AccessTokenRecord, AuthCode, Change, ChangeKind, Client, Event, Family, Grant, Note, Org,
    StoredEvent, User,
};
use tessera_core::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use tessera_core::policy::{effective_refresh_policy, RefreshTokenPolicy};
use tessera_core::store::{AppUsage, TokenUsage, Usage, UsageDelta, UserUsage};
use tessera_core::store::{
    Audit, BrowserSessions, ChangeNotice, CodeRedemption, Directory, DpopProofs, EventFilter,
    Grants, Inventory, Issuance, IssueOutcome, Operations, PurgeCounts, PurgePlan, PurgeRound,
    Records, RefreshCommit, RefreshOutcome, SigningKeys, StoreError,
};
use tessera_core::time::Timestamp;
use tessera_core::tokens::hash::Hash;
use tessera_core::tokens::signing_keys::SigningKey;
use tokio::sync::broadcast;
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls};

use crate::error::DbError;
use crate::listener::Listener;
use crate::rows::{
    all, execute, optional, ClientValues, EventColumns, EventValues, Params, RowMap,
};

pub use crate::schema::SCHEMA_VERSION;

/// The advisory lock that serializes appends to the change feed until each commits (see the
/// crate's documentation). "Tessera" in ASCII, then 2; the migrations' lock is the same with 1.
pub const FEED_LOCK: i64 = 0x5465_7373_6572_6102;

/// How long connecting may take, and how long a request waits for a pooled connection: a
/// database that is down makes requests `Unavailable` after this, not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How many times a transaction rolled back by concurrent ones is run in all.
const ATTEMPTS: u32 = 5;
/// Change notices held for a follower that has not read them yet; one further behind is told
/// to read the feed instead.
const NOTICES_BUFFERED: usize = 1024;
/// What `events` returns when the filter's limit is 0.
const DEFAULT_EVENT_LIMIT: u32 = 1000;

/// Runs `$body`, an expression of type `Result<T, DbError>` in which `$tx` names a transaction
/// on a pooled connection, and commits it; see [`retrying`] for when it is run again. An `Err`
/// rolls the transaction back (it is dropped uncommitted). Since `$body` may run more than once,
/// what it uses from outside must be references or `Copy`.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        retrying(move || async move {
            let mut connection = $store.connection().await?;
            let $tx = connection.transaction().await?;
            let value: Result<_, DbError> = $body;
            let value = value?;
            $tx.commit().await?;
            Ok(value)
        })
        .await
    };
}

/// The PostgreSQL store. Cheap to clone: clones share the pool and the change signal. Dropping
/// the last clone closes the pool's connections and stops listening.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `user@host:port/database`, for `Debug`: never the password.
    database: String,
    signal: Arc<broadcast::Sender<ChangeNotice>>,
    _listener: Listener,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.inner.database)
            .field("pool", &self.inner.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// libpq's `key=value` form), with a pool of at most `pool_size` connections, brings its
    /// schema up to date (once, if several processes connect at once), and starts listening to
    /// the change feed. Must be called inside a Tokio runtime. A database that cannot be
    /// reached is `Unavailable`; one whose schema is newer than this build's is `Internal`.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        // The URL is not quoted back: it may hold a password.
        let mut config: Config = url
            .parse()
            .map_err(|_| StoreError::Internal("the PostgreSQL URL is malformed".to_owned()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tessera");
        }
        let database = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A broken connection is found by the statement that uses it, which fails
                // `Unavailable`; a test query on every checkout would cost a round trip each.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the PostgreSQL pool: {e}")))?;
        {
            let mut connection = pool.get().await.map_err(DbError::from)?;
            schema::migrate(&mut connection).await?;
        }
        let signal = Arc::new(broadcast::channel(NOTICES_BUFFERED).0);
        let listener = listener::spawn(config, Arc::clone(&signal));
        // The database is named once, by whoever opened the store (`tessera serve` logs the URL,
        // its password redacted), not in a second form here.
        tracing::info!(pool_size, "connected to PostgreSQL");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                database,
                signal,
                _listener: listener,
            }),
        })
    }

    async fn connection(&self) -> Result<Connection, DbError> {
        Ok(self.inner.pool.get().await?)
    }

    /// One statement on a pooled connection (its own transaction); returns how many rows it
    /// changed.
    async fn change(&self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        retrying(move || async move { execute(&self.connection().await?, sql, params).await }).await
    }

    /// The one row of a query, if any.
    async fn find<T>(
        &self,
        sql: &str,
        params: &Params<'_>,
        map: RowMap<T>,
    ) -> Result<Option<T>, StoreError> {
        retrying(move || async move { optional(&self.connection().await?, sql, params, map).await })
            .await
    }

    /// Every row of a query.
    async fn list<T>(
        &self,
        sql: &str,
        params: &Params<'_>,
        map: RowMap<T>,
    ) -> Result<Vec<T>, StoreError> {
        retrying(move || async move { all(&self.connection().await?, sql, params, map).await })
            .await
    }

    /// Revokes, in one transaction, every grant `select` lists by its parameters `keys`;
    /// returns their ids in the order listed.
    async fn revoke_listed(
        &self,
        select: &'static str,
        keys: &Params<'_>,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            let ids: Vec<String> = all(&tx, select, keys, rows::first).await?;
            let mut revoked = Vec::with_capacity(ids.len());
            for id in ids {
                // Every revoker holds the feed's lock: none can have revoked it since it was
                // listed. Checked all the same.
                if revoke_grant(&feed, &id, now).await? {
                    revoked.push(id);
                }
            }
            Ok(revoked)
        }
        .await)
    }
}

/// Runs `attempt` until it succeeds or fails for good: a failure that only concurrency caused
/// (a deadlock, a serialization failure: nothing was written) is tried again after a short,
/// jittered pause, so that the transactions that collided do not collide again, up to
/// [`ATTEMPTS`] times in all; then it is `Unavailable`.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && tries < ATTEMPTS => {
                // The error's details name rows and processes: its kind says enough.
                tracing::debug!(tries, "transaction rolled back by a concurrent one; again");
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
            }
            outcome => return outcome.map_err(StoreError::from),
        }
    }
}

/// The pause before try `tries + 1`: 2-4 ms, then 4-8, 8-16, 16-32.
fn backoff(tries: u32) -> Duration {
    let ceiling = 2u64 << tries.min(10);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

/// `user@host:port/database`.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or_default(),
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// A transaction that holds the change feed's lock: the only way to append to the feed, so
/// that no append can forget the lock.
struct Feed<'t>(&'t Transaction<'t>);

impl<'t> Feed<'t> {
    /// Takes [`FEED_LOCK`] until `tx` ends, waiting for the append in flight, if any, to commit.
    /// Taken before `tx` locks any row, so that the lock is never part of a deadlock: a
    /// transaction waits for it holding nothing another may wait for.
    async fn lock(tx: &'t Transaction<'t>) -> Result<Feed<'t>, DbError> {
        execute(tx, sql::FEED_LOCK, &[&FEED_LOCK]).await?;
        Ok(Feed(tx))
    }

    fn tx(&self) -> &'t Transaction<'t> {
        self.0
    }

    /// Appends an entry, announced to every listener when the transaction commits.
    async fn append(&self, kind: ChangeKind, key: &str, until: i64) -> Result<(), DbError> {
        execute(self.0, sql::CHANGE_INSERT, &[&kind.name(), &key, &until]).await?;
        Ok(())
    }
}

/// Until when a change stays in the feed (a revocation: as long as an access token it affects
/// could be unexpired; a client or user change: as long, after which a process that has not
/// read the feed finds a gap and resets its caches).
fn change_until(now: Timestamp) -> i64 {
    now.plus_secs(MAX_ACCESS_TOKEN_TTL_SECS).0
}

/// Revokes a live grant: its refresh tokens stop working with it, its stored access tokens (of
/// the earlier format) are marked, and the change feed says so, for every process's access
/// tokens. Revoking again changes nothing; returns whether this call revoked it.
async fn revoke_grant(feed: &Feed<'_>, grant_id: &str, now: Timestamp) -> Result<bool, DbError> {
    let tx = feed.tx();
    if execute(tx, sql::GRANT_REVOKE, &[&now.0, &grant_id]).await? == 0 {
        return Ok(false);
    }
    execute(tx, sql::ACCESS_REVOKE_FAMILY, &[&now.0, &grant_id]).await?;
    feed.append(ChangeKind::GrantRevoked, grant_id, change_until(now))
        .await?;
    Ok(true)
}

/// The approval limit: revokes the live refresh-token grants of `grant`'s user and client
/// beyond the newest `max`, `grant` itself (just issued) always counting as the newest; returns
/// the revoked ids, oldest first. `max` 0 is taken as 1: an issuance never revokes itself.
async fn enforce_approval_limit(
    feed: &Feed<'_>,
    grant: &Grant,
    max: u32,
) -> Result<Vec<String>, DbError> {
    let others_kept = i64::from(max.saturating_sub(1));
    let over_limit: &Params<'_> = &[&grant.user_id, &grant.client_id, &grant.id, &others_kept];
    let mut evicted: Vec<String> =
        all(feed.tx(), sql::GRANTS_OVER_LIMIT, over_limit, rows::first).await?;
    evicted.reverse();
    for id in &evicted {
        revoke_grant(feed, id, grant.created_at).await?;
    }
    Ok(evicted)
}

async fn insert_events(tx: &Transaction<'_>, events: &[Event]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::new(events);
    execute(tx, sql::EVENTS_INSERT, &columns.params()).await?;
    Ok(())
}

/// A redemption (see [`Store::redeem_code`]).
async fn redeem(
    tx: &Transaction<'_>,
    code_hash: &[u8],
    now: Timestamp,
) -> Result<CodeRedemption, DbError> {
    if let Some(code) = optional(tx, sql::CODE_SPEND, &[&now.0, &code_hash], rows::code).await? {
        return Ok(CodeRedemption::Redeemed(Box::new(code)));
    }
    // A code never issued takes no lock; one presented again may revoke what it issued, so
    // the feed's lock comes first, before the code's row.
    if optional(tx, sql::CODE_EXISTS, &[&code_hash], |_| Ok(()))
        .await?
        .is_none()
    {
        return Ok(CodeRedemption::NotFound);
    }
    let feed = Feed::lock(tx).await?;
    let Some(revoked_grant) = optional(
        tx,
        sql::CODE_PRESENTED_AGAIN,
        &[&code_hash],
        rows::first::<Option<String>>,
    )
    .await?
    else {
        // Purged meanwhile.
        return Ok(CodeRedemption::NotFound);
    };
    if let Some(id) = &revoked_grant {
        revoke_grant(&feed, id, now).await?;
    }
    Ok(CodeRedemption::AlreadyUsed { revoked_grant })
}

/// An issuance (see [`Store::issue`]).
async fn issue(tx: &Transaction<'_>, issuance: &Issuance) -> Result<IssueOutcome, DbError> {
    let Issuance {
        grant,
        refresh_token_hash,
        idle_expires_at,
        events,
        code_hash,
        max_live_grants,
    } = issuance;
    // Only an issuance with a refresh token adds a grant that counts toward the limit. One that
    // may evict appends to the feed: it takes the feed's lock before any row.
    let limit = match (max_live_grants, refresh_token_hash) {
        (Some(max), Some(_)) => Some((Feed::lock(tx).await?, *max)),
        _ => None,
    };
    // A code presented again since its redemption issues nothing. The code's row stays locked
    // from this check to the commit, so that a presentation now waits for the link below.
    if let Some(code_hash) = code_hash {
        let may_issue = optional(
            tx,
            sql::CODE_MAY_ISSUE,
            &[&code_hash.as_slice()],
            |_| Ok(()),
        )
        .await?;
        if may_issue.is_none() {
            return Ok(IssueOutcome::CodePresentedAgain);
        }
    }
    let scope = grant.scope.to_string();
    let values: &Params<'_> = &[
        &grant.id,
        &grant.client_id,
        &grant.user_id,
        &grant.org_id,
        &scope,
        &grant.created_at.0,
        &grant.last_used_at.0,
        &grant.revoked_at.map(|t| t.0),
        &grant.has_refresh_token,
        &grant.auth_time.map(|t| t.0),
        &grant.nonce,
        &grant.dpop_jkt,
        &refresh_token_hash.as_ref().map(|hash| hash.as_slice()),
        &idle_expires_at.map(|t| t.0),
    ];
    execute(tx, sql::GRANT_INSERT, values).await?;
    if let Some(code_hash) = code_hash {
        execute(tx, sql::CODE_LINK, &[&grant.id, &code_hash.as_slice()]).await?;
    }
    insert_events(tx, events).await?;
    let evicted = match limit {
        Some((feed, max)) => enforce_approval_limit(&feed, grant, max).await?,
        None => Vec::new(),
    };
    Ok(IssueOutcome::Issued { evicted })
}

/// One round of housekeeping (see [`Store::purge`]).
async fn purge(tx: &Transaction<'_>, plan: &PurgePlan) -> Result<PurgeRound, DbError> {
    let batch = plan.batch.max(1);
    let limit = i64::from(batch);
    let mut complete = true;
    let mut counts = PurgeCounts::default();
    for (statement, cut_off, count) in [
        (
            sql::PURGE_ACCESS_TOKENS,
            plan.access_expired_before,
            &mut counts.access_tokens,
        ),
        (
            sql::PURGE_CODES,
            plan.codes_expired_before,
            &mut counts.codes,
        ),
        (sql::PURGE_EVENTS, plan.events_before, &mut counts.events),
        (sql::PURGE_CHANGES, plan.changes_before, &mut counts.changes),
        (
            sql::PURGE_DPOP_PROOFS,
            plan.dpop_proofs_expired_before,
            &mut counts.dpop_proofs,
        ),
    ] {
        let removed = execute(tx, statement, &[&cut_off.0, &limit]).await?;
        complete &= removed < u64::from(batch);
        *count = removed;
    }
    for (select, cut_off) in [
        (sql::PURGE_REVOKED_GRANTS, plan.revoked_before),
        (sql::PURGE_IDLE_GRANTS, plan.idle_expired_before),
    ] {
        let ids = all(tx, select, &[&cut_off.0, &limit], rows::first).await?;
        complete &= purge_grants(tx, ids, batch, &mut counts).await?;
    }
    for client in &plan.clients {
        let cut_offs = [
            (sql::PURGE_EXPIRED_GRANTS, client.created_before),
            (
                sql::PURGE_ACCESS_ONLY_GRANTS,
                Some(client.access_only_created_before),
            ),
        ];
        for (select, cut_off) in cut_offs {
            let Some(cut_off) = cut_off else {
                continue;
            };
            let values: &Params<'_> = &[&client.client_id, &cut_off.0, &limit];
            let ids = all(tx, select, values, rows::first).await?;
            complete &= purge_grants(tx, ids, batch, &mut counts).await?;
        }
    }
    Ok(PurgeRound { counts, complete })
}

/// Deletes the grants `ids` (at most a batch, listed by one rule), each with what hangs off it;
/// adds what it deleted to `counts`. Returns whether fewer than the batch were listed.
async fn purge_grants(
    tx: &Transaction<'_>,
    ids: Vec<String>,
    batch: u32,
    counts: &mut PurgeCounts,
) -> Result<bool, DbError> {
    if !ids.is_empty() {
        let [access_tokens, grants] = sql::PURGE_GRANTS;
        counts.access_tokens += execute(tx, access_tokens, &[&ids]).await?;
        counts.grants += execute(tx, grants, &[&ids]).await?;
    }
    Ok(ids.len() < batch as usize)
}

/// A client's idle limit in milliseconds: the later of its policy's inactivity limit and its
/// access-token lifetime (an access token outlives no idle grant), if its policy has one.
fn idle_limit(policy: &RefreshTokenPolicy, ttl_secs: u64) -> Option<i64> {
    policy
        .idle_secs()
        .map(|idle| i64::try_from(idle.max(ttl_secs)).map_or(i64::MAX, |s| s.saturating_mul(1000)))
}

/// Errors of a readiness check are all "not ready".
fn not_ready(error: StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(_) => error,
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Operations for PostgresStore {
    /// deadpool's status: `waiting` above zero for long means the pool is too small for the
    /// load (`database_pool_size`) or the database too slow.
    fn publish_gauges(&self) {
        let status = self.inner.pool.status();
        tessera_core::operations::metrics::pool_status(
            status.size,
            status.available,
            status.waiting,
        );
    }

    /// A `SELECT` of the schema version over a pooled connection: `Ok` only if the database
    /// answers with this build's version. Tried once: a probe does not wait out retries.
    async fn ready(&self) -> Result<(), StoreError> {
        let connection = self.connection().await.map_err(|e| not_ready(e.into()))?;
        let version = schema::version(&connection).await.map_err(not_ready)?;
        if version == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "the database's schema is version {version}, this build's {SCHEMA_VERSION}"
            )))
        }
    }

    /// The database server's clock: every node stamps and judges time by the same one.
    async fn database_time(&self) -> Result<Option<Timestamp>, StoreError> {
        let millis: Option<i64> = self.find(sql::DATABASE_TIME, &[], rows::first).await?;
        Ok(millis.map(Timestamp))
    }

    /// Woken by every commit that appended to the change feed, from any process, and whenever
    /// the listening connection was lost or made again.
    fn change_notices(&self) -> Option<broadcast::Receiver<ChangeNotice>> {
        Some(self.inner.signal.subscribe())
    }

    /// One round, in one transaction: each rule removes at most `plan.batch` rows (grants with
    /// their tokens). The counts are exact for every kind of row: the tokens of a deleted grant
    /// are deleted, and counted, before the grant itself (not left to `ON DELETE CASCADE`,
    /// which no count includes). A token that several rules match is counted once, by the
    /// first.
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeRound, StoreError> {
        transaction!(self, |tx| purge(&tx, plan).await)
    }

    /// Counts by walking each table (PostgreSQL keeps no exact row count), in time
    /// proportional to the rows: for operators and measurements, not per request.
    async fn row_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.list(sql::ROW_COUNTS, &[], rows::row_count).await
    }

    /// Counted as [`Self::row_counts`] is.
    async fn inventory(&self) -> Result<Inventory, StoreError> {
        Inventory::from_named(&self.list(sql::INVENTORY, &[], rows::row_count).await?)
    }
}

#[async_trait]
impl Directory for PostgresStore {
    async fn insert_org(&self, org: &Org) -> Result<(), StoreError> {
        self.change(sql::ORG_INSERT, &[&org.id, &org.name])
            .await
            .map(drop)
    }

    async fn default_org(&self) -> Result<Option<Org>, StoreError> {
        self.find(sql::ORG_FIRST, &[], rows::org).await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let values: &Params<'_> = &[
            &user.id,
            &user.org_id,
            &user.username,
            &user.email,
            &user.password_hash,
            &user.disabled,
            &user.created_at.0,
            &user.admin,
            &user.session_epoch,
        ];
        self.change(sql::USER_INSERT, values).await.map(drop)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.find(sql::USER_BY_ID, &[&id], rows::user).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.find(sql::USER_BY_USERNAME, &[&username], rows::user)
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.list(sql::USER_LIST, &[], rows::user).await
    }

    async fn update_user(
        &self,
        user: &User,
        sessions: BrowserSessions,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let epoch_step = i64::from(sessions == BrowserSessions::End);
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            let values: &Params<'_> = &[
                &user.email,
                &user.password_hash,
                &user.disabled,
                &user.id,
                &user.admin,
                &epoch_step,
            ];
            if execute(&tx, sql::USER_UPDATE, values).await? == 0 {
                return Ok(false);
            }
            feed.append(ChangeKind::UserChanged, &user.id, change_until(now))
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn end_sessions(&self, user_id: &str) -> Result<bool, StoreError> {
        let changed = self.change(sql::USER_END_SESSIONS, &[&user_id]).await?;
        Ok(changed > 0)
    }

    async fn disable_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            if execute(&tx, sql::USER_DISABLE, &[&user_id]).await? == 0 {
                return Ok(None);
            }
            feed.append(ChangeKind::UserChanged, user_id, change_until(now))
                .await?;
            let ids: Vec<String> =
                all(&tx, sql::GRANTS_LIVE_OF_USER, &[&user_id], rows::first).await?;
            let mut revoked = Vec::with_capacity(ids.len());
            for id in ids {
                if revoke_grant(&feed, &id, now).await? {
                    revoked.push(id);
                }
            }
            Ok(Some(revoked))
        }
        .await)
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let values = ClientValues::new(client)?;
        self.change(sql::CLIENT_INSERT, &values.params())
            .await
            .map(drop)
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.find(sql::CLIENT_BY_ID, &[&client_id], rows::client)
            .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.list(sql::CLIENT_LIST, &[], rows::client).await
    }

    async fn update_client(&self, client: &Client, now: Timestamp) -> Result<bool, StoreError> {
        let values = ClientValues::new(client)?;
        let values = values.params();
        // created_at, the last, never changes.
        let values = &values[..24];
        let id = &client.client_id;
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            let before = optional(&tx, sql::CLIENT_IDLE_TERMS, &[id], |row| {
                Ok((
                    row.try_get::<_, String>(0)?,
                    row.try_get::<_, i64>(1)?,
                    row.try_get::<_, Option<i64>>(2)?,
                ))
            })
            .await?;
            let Some((policy, ttl, cap)) = before else {
                return Ok(false);
            };
            execute(&tx, sql::CLIENT_UPDATE, values).await?;
            let cap = cap.and_then(|secs| u64::try_from(secs).ok());
            let old = policy.parse::<RefreshTokenPolicy>().ok().and_then(|p| {
                idle_limit(
                    &effective_refresh_policy(p, cap),
                    u64::try_from(ttl).unwrap_or_default(),
                )
            });
            let new = idle_limit(
                &client.effective_refresh_policy(),
                client.access_token_ttl_secs,
            );
            if old != new {
                execute(&tx, sql::CLIENT_GRANTS_IDLE, &[id, &new]).await?;
            }
            feed.append(ChangeKind::ClientChanged, id, change_until(now))
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn delete_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            if execute(&tx, sql::CLIENT_DELETE, &[&client_id]).await? == 0 {
                return Ok(false);
            }
            feed.append(ChangeKind::ClientChanged, client_id, change_until(now))
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn approved_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.find(sql::APPROVAL_SCOPE, &[&user_id, &client_id], rows::first)
            .await
    }

    async fn record_approval(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let values: &Params<'_> = &[&user_id, &client_id, &scope, &now.0];
        self.change(sql::APPROVAL_UPSERT, values).await.map(drop)
    }
}

#[async_trait]
impl Grants for PostgresStore {
    async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let scope = code.scope.to_string();
        let values: &Params<'_> = &[
            &code.code_hash.as_slice(),
            &code.client_id,
            &code.user_id,
            &code.redirect_uri,
            &scope,
            &code.code_challenge,
            &code.created_at.0,
            &code.expires_at.0,
            &code.nonce,
            &code.auth_time.map(|t| t.0),
            &code.dpop_jkt,
        ];
        self.change(sql::CODE_INSERT, values).await.map(drop)
    }

    async fn redeem_code(
        &self,
        code_hash: &Hash,
        now: Timestamp,
    ) -> Result<CodeRedemption, StoreError> {
        let code_hash = code_hash.as_slice();
        transaction!(self, |tx| redeem(&tx, code_hash, now).await)
    }

    async fn issue(&self, issuance: &Issuance) -> Result<IssueOutcome, StoreError> {
        transaction!(self, |tx| issue(&tx, issuance).await)
    }

    async fn family(&self, grant_id: &str) -> Result<Option<Family>, StoreError> {
        self.find(sql::FAMILY_BY_ID, &[&grant_id], rows::family)
            .await
    }

    async fn legacy_refresh_grant(&self, token_hash: &Hash) -> Result<Option<String>, StoreError> {
        self.find(
            sql::LEGACY_REFRESH_GRANT,
            &[&token_hash.as_slice()],
            rows::first,
        )
        .await
    }

    /// One statement: the conditional update and, only if it changed the row, the event (see
    /// `sql::FAMILY_ROTATE`); or, without rotation and without a recorded use, the event alone,
    /// only if the token is current and the grant live.
    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError> {
        let presented = commit.presented_hash.as_slice();
        let successor = commit.successor_hash.as_ref().map(|hash| hash.as_slice());
        let now = commit.now.0;
        let idle = commit.idle_expires_at.map(|t| t.0);
        let event = EventValues::new(&commit.event);
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&commit.grant_id, &presented];
        let statement = match &successor {
            Some(successor) => {
                values.extend::<[&(dyn ToSql + Sync); 4]>([
                    successor,
                    &now,
                    &idle,
                    &commit.successor_jkt,
                ]);
                sql::FAMILY_ROTATE
            }
            None if commit.record_use => {
                values.extend::<[&(dyn ToSql + Sync); 2]>([&now, &idle]);
                sql::FAMILY_TOUCH
            }
            None => sql::FAMILY_IS_CURRENT,
        };
        values.extend(event.params());
        // The number of events written: 1 if the refresh applied.
        match self.change(statement, &values).await? {
            0 => Ok(RefreshOutcome::Stale),
            _ => Ok(RefreshOutcome::Committed),
        }
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            revoke_grant(&feed, grant_id, now).await
        }
        .await)
    }

    async fn access_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        self.find(
            sql::ACCESS_BY_HASH,
            &[&token_hash.as_slice()],
            rows::access_token,
        )
        .await
    }

    async fn revoke_access_token(
        &self,
        token_hash: &Hash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let key = hex_string(token_hash);
        let key = key.as_str();
        let token_hash = token_hash.as_slice();
        transaction!(self, |tx| async {
            let feed = Feed::lock(&tx).await?;
            execute(&tx, sql::ACCESS_REVOKE_ONE, &[&now.0, &token_hash]).await?;
            feed.append(ChangeKind::AccessTokenRevoked, key, expires_at.0)
                .await
        }
        .await)
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        self.find(sql::GRANT_BY_ID, &[&grant_id], rows::grant).await
    }

    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.list(sql::GRANTS_OF_USER, &[&user_id], rows::grant)
            .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(sql::GRANTS_LIVE_OF_USER, &[&user_id], now)
            .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_user_and_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(
            sql::GRANTS_LIVE_OF_USER_AND_CLIENT,
            &[&user_id, &client_id],
            now,
        )
        .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(sql::GRANTS_LIVE_OF_CLIENT, &[&client_id], now)
            .await
    }

    /// No entry after the last one returned commits later with a smaller number (appends are
    /// serialized until commit): a reader that goes on from the last `seq` misses nothing.
    async fn changes_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let limit = i64::from(limit);
        self.list(sql::CHANGES_SINCE, &[&after_seq, &limit], rows::change)
            .await
    }

    /// Read once no append is in flight (the feed's lock, shared): every number up to the
    /// newest returned has committed or never will, and what has is in the live entries if in
    /// force.
    async fn live_changes(&self, now: Timestamp) -> Result<(Vec<Change>, i64), StoreError> {
        transaction!(self, |tx| async {
            execute(&tx, sql::FEED_READ_LOCK, &[&FEED_LOCK]).await?;
            let newest = optional(&tx, sql::CHANGES_NEWEST, &[], rows::first::<i64>).await?;
            let live = all(&tx, sql::CHANGES_LIVE, &[&now.0], rows::change).await?;
            Ok((live, newest.unwrap_or_default()))
        }
        .await)
    }
}

#[async_trait]
impl Usage for PostgresStore {
    /// One statement (so one transaction) for the whole batch, whatever its size.
    async fn record_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = deltas.iter().map(|d| d.grant_id.as_str()).collect();
        let uses: Vec<i64> = deltas
            .iter()
            .map(|d| i64::try_from(d.uses).unwrap_or(i64::MAX))
            .collect();
        let last_used: Vec<i64> = deltas.iter().map(|d| d.last_used_at.0).collect();
        self.change(sql::USAGE_ADD, &[&ids, &uses, &last_used])
            .await?;
        Ok(())
    }

    async fn app_usage(&self, now: Timestamp) -> Result<Vec<AppUsage>, StoreError> {
        self.list(sql::USAGE_APPS, &[&now.0], rows::app_usage).await
    }

    async fn app_users_usage(
        &self,
        client_id: &str,
        after_user_id: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<UserUsage>, StoreError> {
        // Every user id sorts after the empty string.
        let after = after_user_id.unwrap_or_default();
        let limit = i64::from(limit);
        self.list(
            sql::USAGE_APP_USERS,
            &[&client_id, &after, &now.0, &limit],
            rows::user_usage,
        )
        .await
    }

    async fn user_tokens_usage(
        &self,
        client_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<TokenUsage>, StoreError> {
        self.list(
            sql::USAGE_USER_TOKENS,
            &[&client_id, &user_id, &now.0],
            rows::token_usage,
        )
        .await
    }
}

#[async_trait]
impl Audit for PostgresStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let columns = EventColumns::new(events);
        self.change(sql::EVENTS_INSERT, &columns.params())
            .await
            .map(drop)
    }

    /// A limit of 0 reads at most 1000 events.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::from(match filter.limit {
            0 => DEFAULT_EVENT_LIMIT,
            limit => limit,
        });
        // Events are not indexed by grant: a grant's are found among its user's. Those of a
        // grant already purged are looked for in the whole trail.
        let mut user_id = filter.user_id.clone();
        if let (Some(grant_id), None) = (&filter.grant_id, &filter.user_id) {
            user_id = self.find(sql::GRANT_USER, &[grant_id], rows::first).await?;
        }
        let query = sql::events_query(
            user_id.is_some(),
            filter.client_id.is_some(),
            filter.grant_id.is_some(),
            filter.kind.is_some(),
            filter.since.is_some(),
            filter.newest_first,
        );
        let kind = filter.kind.map(|kind| kind.name().to_owned());
        let since = filter.since.map(|since| since.0);
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&filter.after_id];
        for value in [&user_id, &filter.client_id, &filter.grant_id, &kind]
            .into_iter()
            .flatten()
        {
            values.push(value);
        }
        if let Some(since) = &since {
            values.push(since);
        }
        values.push(&limit);
        self.list(&query, &values, rows::event).await
    }
}

#[async_trait]
impl Records for PostgresStore {
    async fn insert_note(&self, note: &Note) -> Result<(), StoreError> {
        let values: &Params<'_> = &[
            &note.id,
            &note.owner_id,
            &note.title,
            &note.body,
            &note.created_at.0,
            &note.modified_at.0,
        ];
        self.change(sql::NOTE_INSERT, values).await.map(drop)
    }

    async fn note(&self, id: &str) -> Result<Option<Note>, StoreError> {
        self.find(sql::NOTE_BY_ID, &[&id], rows::note).await
    }

    async fn list_notes(&self, owner_id: &str, limit: u32) -> Result<Vec<Note>, StoreError> {
        let limit = i64::from(limit);
        self.list(sql::NOTE_LIST, &[&owner_id, &limit], rows::note)
            .await
    }

    async fn update_note(&self, note: &Note) -> Result<bool, StoreError> {
        let values: &Params<'_> = &[&note.title, &note.body, &note.modified_at.0, &note.id];
        Ok(self.change(sql::NOTE_UPDATE, values).await? > 0)
    }

    async fn delete_note(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.change(sql::NOTE_DELETE, &[&id]).await? > 0)
    }
}

/// Every node on this database sees the proofs every other node has seen: a proof replayed to
/// another node is refused there (RFC 9449 §11.1), with no cache server and no sticky sessions.
#[async_trait]
impl DpopProofs for PostgresStore {
    fn shares_dpop_proofs(&self) -> bool {
        true
    }

    /// One statement, one round trip: the primary key decides between nodes that remember the
    /// same key at once.
    async fn remember_dpop_proof(
        &self,
        key: &Hash,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let values: &Params<'_> = &[&key.as_slice(), &expires_at.0, &now.0];
        Ok(self.change(sql::DPOP_PROOF_REMEMBER, values).await? > 0)
    }
}

#[async_trait]
impl SigningKeys for PostgresStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let retire_at = key.retire_at.map(|at| at.0);
        let private_key = key.private_key.as_bytes();
        let values: &Params<'_> = &[
            &key.kid,
            &key.alg,
            &key.created_at.0,
            &key.publish_at.0,
            &key.sign_from.0,
            &retire_at,
            &private_key,
        ];
        self.change(sql::SIGNING_KEY_INSERT, values).await.map(drop)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.list(sql::SIGNING_KEY_LIST, &[], rows::signing_key)
            .await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        retire_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let values: &Params<'_> = &[&retire_at.0, &kid];
        Ok(self.change(sql::SIGNING_KEY_RETIRE, values).await? > 0)
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
